"""Two replicas share the work without repeating it; gateways' limits hold, even after a burst of 429s."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from collections import Counter
from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from paysync_core import topics
from paysync_core.contracts import AlertKind, Provider
from paysync_core.db.schema import reconcile_checks, reconcile_ticks
from paysync_core.kafka import DurableProducer
from paysync_dev.reconcile import alerts_of, register
from paysync_dev.service_fixtures import fetch, publish, unique, wait_until
from paysync_reconciler.models import ReconcileTick, manual_tick, scheduled_tick

pytestmark = pytest.mark.integration


async def test_two_replicas_handle_each_tick_once_and_check_each_payment_once_per_step(
    sim, engine, projector, start_reconciler, lost_webhooks_tenant, kafka_topics
):
    bootstrap = kafka_topics
    tenants = [await lost_webhooks_tenant(("mpesa",), rate_limits={"mpesa": 30}) for _ in range(4)]
    payment_ids = []
    for tenant in tenants:
        account = tenant.account("mpesa").id
        for i in range(10):  # pushes nobody answers: pending at every query
            ref = sim.create_payment(account, amount_minor=1_000, phone=f"2547110{i:05d}").ref
            payment_ids.append(
                await register(
                    engine,
                    tenant.id,
                    "mpesa",
                    ref,
                    domain="referrals",
                    entity_id=unique("r"),
                    amount_minor=1_000,
                    currency="KES",
                )
            )
    replicas = await start_reconciler(
        count=2,
        scheduler_enabled="false",
        mpesa_schedule="0.3,0.3,0.3",
        mpesa_rate=15,
    )
    published: list[str] = []
    done = asyncio.Event()

    async def two_schedulers() -> None:
        """Two schedulers tick every account each 0.2 s slot: the same tick ids, on any partition."""
        producer = DurableProducer(bootstrap, client_id="two-schedulers")
        await producer.start()
        try:
            while not done.is_set():  # stopped between slots, never mid-send: `published` is exact
                for tenant in tenants:
                    tick = scheduled_tick(tenant.id, Provider.MPESA, 0.2, datetime.now(UTC))
                    for key in (f"{tenant.id}:mpesa".encode(), uuid.uuid4().bytes):
                        await producer.send(topics.RECONCILE_TICKS.name, key, tick.to_bytes())
                        published.append(tick.tick_id)
                await asyncio.sleep(0.2)
        finally:
            await producer.stop()

    async def all_gave_up() -> bool:
        rows = await fetch(
            engine,
            select(reconcile_checks.c.gave_up_at).where(reconcile_checks.c.payment_id.in_(payment_ids)),
        )
        return len(rows) == len(payment_ids) and all(r.gave_up_at for r in rows)

    schedulers = asyncio.create_task(two_schedulers())
    try:
        await wait_until(all_gave_up, 60, "every push to be given up after its three checks")
    finally:
        done.set()
        await schedulers
    checks = await fetch(
        engine, select(reconcile_checks.c.checks_made).where(reconcile_checks.c.payment_id.in_(payment_ids))
    )
    assert Counter(r.checks_made for r in checks) == Counter({3: len(payment_ids)})
    for tenant in tenants:
        api = sim.account_stats(tenant.account("mpesa").id).api
        # 10 pushes x 3 queries, plus one access token per replica that asked.
        assert 31 <= api.requests <= 32 and api.over_limit == 0

    async def every_copy_consumed() -> bool:
        handled = sum(
            r.metric("paysync_reconciler_ticks_total", outcome=o)
            for r in replicas
            for o in ("started", "skipped", "duplicate")
        )
        return handled == len(published)

    # Two schedulers sent 40 copies a second for the whole run: on a busy host the replicas trail them.
    await wait_until(every_copy_consumed, 60, "both replicas to consume every copy of every tick")
    ticks = await fetch(
        engine,
        select(reconcile_ticks.c.tick_id, reconcile_ticks.c.handled_by).where(
            reconcile_ticks.c.tenant_id.in_([t.id for t in tenants])
        ),
    )
    taken = sum(
        r.metric("paysync_reconciler_ticks_total", outcome=o)
        for r in replicas
        for o in ("started", "skipped")
    )
    assert {r.tick_id for r in ticks} == set(published)
    assert taken == len(ticks)  # each tick taken on by exactly one replica, once; every other copy a no-op
    assert len({r.handled_by for r in ticks}) == 2  # and both replicas took some on

    stale = [
        a for t in tenants for a in await alerts_of(bootstrap, t.id) if a.kind is AlertKind.STUCK_PAYMENT
    ]
    assert sorted(a.payment_id for a in stale) == sorted(str(p) for p in payment_ids)


async def test_after_a_burst_of_429s_the_reconciler_slows_down_and_still_finishes(
    sim, engine, projector, start_reconciler, lost_webhooks_tenant, kafka_topics
):
    bootstrap = kafka_topics
    tenant = await lost_webhooks_tenant(("stripe",))
    account = tenant.account("stripe").id
    payment_ids = []
    for _ in range(30):  # open PaymentIntents: no event answers for them, each needs its own retrieval
        ref = sim.create_payment(account, kind="payment_intent", amount_minor=700, currency="usd").ref
        payment_ids.append(await register(engine, tenant.id, "stripe", ref, amount_minor=700))
    sim.burst(account, "rate_limit", 15)
    (reconciler,) = await start_reconciler(
        scheduler_enabled="false", stripe_schedule="0,0.5", recovery_seconds=3
    )

    # An operator starts the first sweep from the command line.
    env = {**os.environ, "PAYSYNC_KAFKA_BOOTSTRAP": bootstrap}
    done = subprocess.run(  # noqa: ASYNC221 - the CLI, run as an operator runs it
        [sys.executable, "-m", "paysync_reconciler", "tick", "--tenant", tenant.id, "--provider", "stripe"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr

    async def all_gave_up() -> bool:
        rows = await fetch(
            engine,
            select(reconcile_checks.c.gave_up_at).where(reconcile_checks.c.payment_id.in_(payment_ids)),
        )
        if len(rows) == len(payment_ids) and all(r.gave_up_at for r in rows):
            return True
        tick: ReconcileTick = manual_tick(tenant.id, Provider.STRIPE, datetime.now(UTC))
        await publish(bootstrap, topics.RECONCILE_TICKS.name, f"{tenant.id}:stripe".encode(), tick.to_bytes())
        return False

    await wait_until(all_gave_up, 60, "both checks of every payment despite the 429s", every=1.0)
    cli_ticks = await fetch(
        engine,
        select(reconcile_ticks.c.status).where(
            reconcile_ticks.c.tenant_id == tenant.id, reconcile_ticks.c.source == "cli"
        ),
    )
    assert cli_ticks and cli_ticks[0].status in ("completed", "partial", "skipped")
    api = sim.account_stats(account).api
    assert api.injected_rate_limit == 15 and api.over_limit == 0
    assert reconciler.metric("paysync_reconciler_gateway_throttled_total", provider="stripe") >= 1
    # It slowed down: the Stripe budget (24 requests/s) ran at a fraction of that after the 429s.
    assert reconciler.metric("paysync_reconciler_throttled_rate", provider="stripe") <= 12
    checks = await fetch(
        engine, select(reconcile_checks.c.checks_made).where(reconcile_checks.c.payment_id.in_(payment_ids))
    )
    assert all(r.checks_made == 2 for r in checks)
