"""The alert rules: one round at a time across replicas, no transaction open while it waits for the broker.

A round holds the rules lock (a session-level advisory lock) from its first read until it has opened the
issues of the alerts the broker acknowledged; the session shows no transaction meanwhile, through a whole
broker outage. Two evaluators as two notifier replicas run them, each with its own engine (named in
`pg_stat_activity`) and producer, on a broker of the test's own.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from paysync_core import topics, tracing
from paysync_core.alerting import AlertConfig
from paysync_core.contracts import Alert, AlertKind
from paysync_core.db.engine import make_engine
from paysync_core.db.schema import sync_issues
from paysync_core.dead_letters import is_outage
from paysync_core.kafka import DurableProducer
from paysync_dev.alerts import configure_alerts
from paysync_dev.fixtures import TestTenant, broker_of_its_own
from paysync_dev.kafka import KafkaProcess
from paysync_dev.payments import Registered, register_payments
from paysync_dev.pg_proxy import PostgresProxy
from paysync_dev.service_fixtures import wait_until
from paysync_dev.sessions import idle_holder, lock_holders
from paysync_dev.topic_reader import read_topic
from paysync_notifier.alert_settings import AlertDeliverySettings
from paysync_notifier.rules import RuleEvaluator
from paysync_notifier.rules_repo import RULES_LOCK

pytestmark = pytest.mark.integration


class CountingProducer(DurableProducer):
    """An evaluator's producer, counting the alerts handed to it that the broker has not acknowledged."""

    def __init__(self, bootstrap: str, *, client_id: str) -> None:
        super().__init__(bootstrap, client_id=client_id)
        self.in_flight = 0

    async def send(
        self, topic: str, key: bytes | None, value: bytes, headers: tracing.Headers | None = None
    ) -> Any:
        self.in_flight += 1
        try:
            return await super().send(topic, key, value, headers)
        finally:
            self.in_flight -= 1


@dataclass
class Replica:
    """One notifier replica's rules: its own engine and producer, `RuleEvaluator.run` as the service runs."""

    engine: AsyncEngine
    producer: CountingProducer
    name: str
    task: asyncio.Task[None]

    @classmethod
    def start(cls, database: str, bootstrap: str) -> Replica:
        name = f"rules-test-{uuid.uuid4().hex[:8]}"
        engine = make_engine(database, pool_size=2, application_name=name)
        producer = CountingProducer(bootstrap, client_id=name)
        # Quick rounds; the dead letters read at the first only (the broker is stopped later).
        settings = AlertDeliverySettings(alert_rules_seconds=0.1, alert_rules_dead_letter_seconds=3600)
        task = asyncio.create_task(RuleEvaluator(engine, settings, bootstrap, producer).run())
        return cls(engine, producer, name, task)

    async def stop(self) -> None:
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task  # stops the producer: once it has sent what it holds
        await self.engine.dispose()


@pytest.fixture
def own_broker(tmp_path: Path) -> Iterator[KafkaProcess]:
    """A broker of this test alone, which it stops and starts again: the alerts and dead-letter topics."""
    specs = [topics.ALERTS, *(spec.dlq for spec in topics.WITH_DLQ)]
    with broker_of_its_own(tmp_path / "kafka", specs) as broker:
        yield broker


@pytest.fixture
async def replicas(migrated_database: str, own_broker: KafkaProcess) -> AsyncIterator[list[Replica]]:
    """Two replicas' rules on the test's own broker."""
    started = [Replica.start(migrated_database, own_broker.bootstrap) for _ in range(2)]
    yield started
    await asyncio.to_thread(own_broker.start)  # back, if the test failed during the outage
    for replica in started:
        await replica.stop()


async def deadline_of_a_second(engine: AsyncEngine, credentials_keys: str, tenant: str) -> None:
    """The tenant's bookings are past their deadline a second after their registration; no other rule."""
    rules = AlertConfig(pending_deadlines={"bookings": "1s"}, dead_letters=False, failure_rate=None)
    await configure_alerts(engine, credentials_keys, tenant, rules)


async def past_deadline(engine: AsyncEngine, tenant: str, count: int) -> list[Registered]:
    """`count` bookings of the tenant, registered now: past its 1 s deadline a second from now."""
    return await register_payments(engine, tenant, [{"domain": "bookings"} for _ in range(count)])


async def alerted(engine: AsyncEngine, tenant: str) -> dict[str, str]:
    """The tenant's past-deadline issues: payment id -> alert id."""
    async with engine.connect() as conn:
        rows = await conn.execute(
            select(sync_issues.c.subject, sync_issues.c.alert_id).where(
                sync_issues.c.tenant_id == tenant,
                sync_issues.c.kind == AlertKind.PAYMENT_PAST_DEADLINE.value,
            )
        )
        return {row.subject: row.alert_id for row in rows}


async def alerts_in_topic(bootstrap: str, tenant: str) -> list[str]:
    """The alert ids of the tenant's alerts on their topic, each as many times as it is there."""
    alerts = [Alert.from_bytes(r.value) for r in await read_topic(bootstrap, topics.ALERTS.name)]
    return sorted(a.alert_id for a in alerts if a.tenant == tenant)


async def test_a_round_waits_out_a_broker_outage_with_no_transaction_open_then_publishes_each_alert_once(
    engine: AsyncEngine,
    credentials_keys: str,
    tenant: TestTenant,
    own_broker: KafkaProcess,
    replicas: list[Replica],
) -> None:
    await deadline_of_a_second(engine, credentials_keys, tenant.id)
    [first] = await past_deadline(engine, tenant.id, 1)

    async def first_alerted() -> bool:
        return str(first.id) in await alerted(engine, tenant.id)

    await wait_until(first_alerted, 60, "the first payment's alert published and its issue opened")

    await asyncio.to_thread(own_broker.stop)
    late = await past_deadline(engine, tenant.id, 3)
    names = [r.name for r in replicas]

    async def waiting_with_no_transaction() -> bool:
        holder = await idle_holder(engine, RULES_LOCK, names)
        waiting = [r for r in replicas if r.producer.in_flight]
        return (
            len(waiting) == 1  # one round at a time
            and holder == waiting[0].name  # holding the lock, no transaction open
            and list(await alerted(engine, tenant.id)) == [str(first.id)]  # nothing recorded meanwhile
        )

    await wait_until(
        waiting_with_no_transaction, 60, "a round waiting for the broker, its session in no transaction"
    )

    await asyncio.to_thread(own_broker.start)

    async def all_alerted() -> bool:
        return len(await alerted(engine, tenant.id)) == 4

    await wait_until(all_alerted, 90, "every late payment's issue opened")
    issues = await alerted(engine, tenant.id)
    assert sorted(issues) == sorted(str(p.id) for p in [first, *late])
    assert await alerts_in_topic(own_broker.bootstrap, tenant.id) == sorted(issues.values())


class StalledBroker(DurableProducer):
    """A producer whose acknowledgements come when the test says (`acknowledge`); the alerts it took."""

    def __init__(self) -> None:
        super().__init__("127.0.0.1:9", client_id="stalled")  # never started: the rounds only `send`
        self.stalled = True
        self.alerts: list[Alert] = []
        self._acknowledged = asyncio.Event()

    async def send(
        self, topic: str, key: bytes | None, value: bytes, headers: tracing.Headers | None = None
    ) -> Any:
        self.alerts.append(Alert.from_bytes(value))
        if self.stalled:
            await self._acknowledged.wait()

    def acknowledge(self) -> None:
        self.stalled = False
        self._acknowledged.set()

    def of(self, tenant: str) -> list[str]:
        return [a.alert_id for a in self.alerts if a.tenant == tenant]


async def rules_lock_holders(engine: AsyncEngine) -> list[str]:
    return [h.application_name for h in await lock_holders(engine, RULES_LOCK)]


async def test_a_connection_dropped_while_a_round_waits_for_the_broker_loses_no_alert(
    engine: AsyncEngine,
    credentials_keys: str,
    tenant: TestTenant,
    database_proxy: PostgresProxy,
    kafka_topics: str,
) -> None:
    await deadline_of_a_second(engine, credentials_keys, tenant.id)
    [late] = await past_deadline(engine, tenant.id, 1)
    broker = StalledBroker()
    name = f"rules-test-{uuid.uuid4().hex[:8]}"
    rules_engine = make_engine(database_proxy.url, pool_size=1, application_name=name)
    evaluator = RuleEvaluator(rules_engine, AlertDeliverySettings(), kafka_topics, broker)
    try:
        rounds: list[asyncio.Task[int]] = []

        async def handed_over() -> bool:
            if rounds and rounds[-1].done():
                rounds[-1].result()  # a round before the payment was late (one that failed fails the test)
            if not rounds or rounds[-1].done():
                rounds.append(asyncio.create_task(evaluator.evaluate()))
            return bool(broker.of(tenant.id))

        await wait_until(handed_over, 30, "the late payment's alert handed to the broker")
        round_ = rounds[-1]
        assert await rules_lock_holders(engine) == [name]

        database_proxy.restarting()  # the connection drops while the round waits for the broker

        async def let_go() -> bool:
            return await rules_lock_holders(engine) == []

        await wait_until(let_go, 30, "PostgreSQL letting go of the dropped session's lock")
        broker.acknowledge()
        with pytest.raises(Exception) as failure:
            await round_
        assert is_outage(failure.value)
        assert await alerted(engine, tenant.id) == {}  # acknowledged, but not recorded: told again

        await database_proxy.back()
        assert await evaluator.evaluate() >= 1  # the next round, on a new connection
    finally:
        await rules_engine.dispose()

    issues = await alerted(engine, tenant.id)
    assert list(issues) == [str(late.id)]
    # The same alert twice (the delivery log takes it once), its issue opened once: nothing lost.
    assert broker.of(tenant.id) == [issues[str(late.id)]] * 2
