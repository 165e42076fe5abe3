"""The status projector as real OS processes (`Fleet`) and a shuffled stream of observations to feed it:
built, published, waited for, and checked against the pure merge."""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from paysync_core import topics
from paysync_core.contracts import Alert, DisputeFact, PaymentObservation, PaymentStatusChanged
from paysync_core.db.schema import observations, outbox, payments
from paysync_core.domain.merge import Expectation, merge_all
from paysync_core.domain.status import UnifiedStatus as S
from paysync_core.kafka import DurableProducer
from paysync_dev.payments import Registered, observation, register_payments
from paysync_dev.service_fixtures import fetch
from paysync_dev.stack import ServiceProcess, free_port
from paysync_dev.topic_reader import read_topic

DOMAINS = ("jobs", "bookings", "invoices", "referrals")


@dataclass
class Fleet:
    """Projector processes of one consumer group, each its own OS process."""

    env: dict[str, str]
    log_dir: Path
    procs: dict[str, ServiceProcess] = field(default_factory=dict)

    def start(self, name: str, **env: str) -> ServiceProcess:
        """Start (or restart) the projector called `name` and wait until it is ready."""
        proc = ServiceProcess(
            "status-projector", free_port(), {**self.env, **env}, self.log_dir / f"{name}.log"
        )
        proc.start()
        proc.wait_ready(60)
        self.procs[name] = proc
        return proc

    def kill(self, name: str) -> None:
        """SIGKILL: no goodbye to the group, no commit, no flush."""
        self.procs.pop(name).kill()

    def stop(self, name: str) -> None:
        """SIGTERM: leave the group and finish the batch in hand."""
        self.procs.pop(name).stop()

    def stop_all(self) -> None:
        """Stop whatever is still running."""
        for name in list(self.procs):
            self.stop(name)

    def logs(self) -> str:
        """The tail of every process's log, for a failure message."""
        return "\n".join(f"--- {p.log_path.name}\n{p.log_tail(15)}" for p in self.procs.values())


@dataclass
class Stream:
    """Payments registered for one tenant and a shuffled stream of observations of them."""

    tenant: str
    payments: list[Registered]
    records: list[tuple[bytes, bytes]]  # (key, value) in publishing order
    distinct: dict[Any, dict[str, PaymentObservation]]  # payment id -> observation id -> observation

    @property
    def distinct_count(self) -> int:
        """How many distinct observations the stream holds."""
        return sum(len(v) for v in self.distinct.values())


async def build_stream(engine: AsyncEngine, tenant: str, payments_count: int, size: int, seed: int) -> Stream:
    """Register payments and draw `size` observations of them: every status, stale, duplicate, mismatched."""
    rng = random.Random(seed)
    specs = []
    for i in range(payments_count):
        provider = ("stripe", "paystack", "mpesa")[i % 3]
        specs.append(
            {
                "provider": provider,
                "provider_ref": f"ref_{seed}_{i}_{uuid.uuid4().hex[:6]}",
                "domain": DOMAINS[i % len(DOMAINS)],
                "amount_minor": 5000,
                "currency": {"stripe": "USD", "paystack": "NGN", "mpesa": "KES"}[provider],
            }
        )
    registered = await register_payments(engine, tenant, specs)
    distinct: dict[Any, dict[str, PaymentObservation]] = defaultdict(dict)
    records: list[tuple[bytes, bytes]] = []
    while len(records) < size:
        payment = rng.choice(registered)
        known = distinct[payment.id]
        if known and rng.random() < 0.15:
            obs = rng.choice(list(known.values()))  # a redelivery
        else:
            obs = _random_observation(rng, payment, f"o-{seed}-{len(records)}")
            known[obs.observation_id] = obs
        records.append((topics.PAYMENT_OBSERVATIONS.key_for(obs), obs.to_bytes()))
    return Stream(tenant, registered, records, distinct)


def _random_observation(rng: random.Random, payment: Registered, oid: str) -> PaymentObservation:
    status = rng.choice([None, *S, S.SUCCEEDED, S.PENDING, S.PROCESSING])
    amount = 5000 if rng.random() < 0.95 else 4000
    refunded = {S.PARTIALLY_REFUNDED: rng.choice([1000, 2500]), S.REFUNDED: 5000}.get(status)
    dispute = (
        DisputeFact(dispute_id=f"dp_{rng.randint(1, 2)}", state=rng.choice(["open", "won", "lost"]))
        if status is S.DISPUTED and rng.random() < 0.8
        else None
    )
    obs = observation(
        payment,
        status,
        rng.randint(0, 60),
        oid=oid,
        amount=amount,
        currency=payment.currency,
        refunded=refunded,
        dispute=dispute,
        verified=rng.random() < 0.9,
        evidence={"detail": "declined"} if status is S.FAILED else {"receipt_number": f"R{oid}"},
    )
    return obs.model_copy(update={"provider_time": obs.provider_time + timedelta(seconds=rng.randint(0, 59))})


async def publish_records(bootstrap: str, records: list[tuple[bytes, bytes]]) -> None:
    """Publish records as webhook-ingest does (idempotent, acks=all), waiting for every acknowledgement."""
    producer = DurableProducer(bootstrap, client_id="paysync-tests", linger_ms=5)
    await producer.start()
    try:
        await producer.send_all(topics.PAYMENT_OBSERVATIONS.name, records)
    finally:
        await producer.stop()


async def work_left(engine: AsyncEngine, stream: Stream, upto: int) -> bool:
    """Whether observations published so far are still being applied, or their changes relayed."""
    published = {PaymentObservation.from_bytes(value).observation_id for _, value in stream.records[:upto]}
    applied, pending = await _progress(engine, stream.tenant)
    return applied < len(published) or pending > 0


async def applied_count(engine: AsyncEngine, tenant: str) -> int:
    """Observations of the tenant in the history so far."""
    return (await _progress(engine, tenant))[0]


async def wait_for_progress(engine: AsyncEngine, tenant: str, past: int, timeout: float) -> None:
    """Until the projector has applied more than `past` observations of the tenant: polled as fast as
    the database answers, so a caller learns of the first applied batch while the rest is in flight."""
    deadline = time.monotonic() + timeout
    while await applied_count(engine, tenant) <= past:
        if time.monotonic() > deadline:
            raise AssertionError(f"the projector applied nothing past {past} observations in {timeout} s")
        await asyncio.sleep(0.005)


async def _progress(engine: AsyncEngine, tenant: str) -> tuple[int, int]:
    applied = (
        await fetch(
            engine, select(func.count()).select_from(observations).where(observations.c.tenant_id == tenant)
        )
    )[0][0]
    pending = (
        await fetch(
            engine,
            select(func.count())
            .select_from(outbox)
            .where(outbox.c.published_at.is_(None), outbox.c.payload["tenant"].astext == tenant),
        )
    )[0][0]
    return applied, pending


async def wait_until_settled(engine: AsyncEngine, stream: Stream, fleet: Fleet, timeout: float) -> None:
    """Until every distinct observation is in the history and the tenant's outbox is all published."""
    deadline = time.monotonic() + timeout
    while True:
        applied, pending = await _progress(engine, stream.tenant)
        if applied == stream.distinct_count and pending == 0:
            return
        if time.monotonic() > deadline:
            raise AssertionError(
                f"not settled after {timeout}s: {applied}/{stream.distinct_count} applied, "
                f"{pending} unpublished\n"
                f"{fleet.logs()}"
            )
        await asyncio.sleep(0.2)


async def assert_projection_is_exact(engine: AsyncEngine, bootstrap: str, stream: Stream) -> None:
    """Final states equal the pure merge; every change published, none twice with different content."""
    rows = {
        r.id: r for r in await fetch(engine, select(payments).where(payments.c.tenant_id == stream.tenant))
    }
    for payment in stream.payments:
        expected = merge_all(
            [o.to_domain() for o in stream.distinct[payment.id].values()], Expectation(5000, payment.currency)
        )
        row = rows[payment.id]
        assert (row.status, row.merge_state) == (expected.status.value, expected.to_json()), payment
        assert row.flags == sorted(expected.flags)

    records = await read_topic(bootstrap, topics.PAYMENT_STATUS.name, timeout=60)
    mine = [r for r in records if r.key and r.key.startswith(f"{stream.tenant}:".encode())]
    by_event: dict[str, set[bytes]] = defaultdict(set)
    by_payment: dict[str, list[tuple[int, int, PaymentStatusChanged]]] = defaultdict(list)
    for r in mine:
        change = PaymentStatusChanged.from_bytes(r.value)
        by_event[change.event_id].add(r.value)
        by_payment[change.payment_id].append((r.partition, r.offset, change))
    assert all(len(contents) == 1 for contents in by_event.values()), (
        "a change was published with two contents"
    )
    for payment in stream.payments:
        row = rows[payment.id]
        published = sorted(by_payment[str(payment.id)], key=lambda item: item[:2])
        firsts: dict[int, PaymentStatusChanged] = {}
        for _, _, change in published:
            firsts.setdefault(change.sequence, change)
        assert list(firsts) == list(range(1, row.sequence + 1)), (
            f"changes missing or out of order for {payment}"
        )
        chain = [S.PENDING.value] + [firsts[n].new_status.value for n in sorted(firsts)]
        assert [_value(firsts[n].old_status) for n in sorted(firsts)] == chain[:-1]
        assert chain[-1] == row.status

    # Keyed by tenant: only this tenant's records are parsed (other tests put unparsable ones there).
    records = await read_topic(bootstrap, topics.ALERTS.name, timeout=60)
    alerts = [Alert.from_bytes(r.value) for r in records if r.key == stream.tenant.encode()]
    mine_alerts: dict[str, set[bytes]] = defaultdict(set)
    for alert in (a for a in alerts if a.tenant == stream.tenant):
        mine_alerts[alert.alert_id].add(alert.model_dump_json().encode())
    assert all(len(c) == 1 for c in mine_alerts.values())
    expected_alerts = sum(len(rows[p.id].flags) for p in stream.payments)
    assert len(mine_alerts) == expected_alerts


def _value(status: S | None) -> str | None:
    return status.value if status is not None else None
