"""The relay: one at a time across replicas, and no transaction open while it waits for the broker.

A relay holds the relay lock (a session-level advisory lock) from reading the outbox until it has marked
what the broker acknowledged; the session shows no transaction meanwhile, through a whole broker outage.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from aiokafka.errors import KafkaTimeoutError
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from paysync_core import topics
from paysync_core.contracts import PaymentStatusChanged
from paysync_core.db.engine import make_engine
from paysync_core.db.schema import outbox
from paysync_core.dead_letters import is_outage
from paysync_core.domain.status import UnifiedStatus as S
from paysync_core.kafka import DurableProducer
from paysync_dev.fixtures import broker_of_its_own
from paysync_dev.kafka import KafkaProcess
from paysync_dev.payments import Registered, observation, register_payment
from paysync_dev.pg_proxy import PostgresProxy
from paysync_dev.service_fixtures import wait_until
from paysync_dev.sessions import idle_holder, lock_holders
from paysync_dev.topic_reader import read_topic
from paysync_status_projector.handlers import same_partition_as_java_clients
from paysync_status_projector.relay import Wakeup, relay_loop
from paysync_status_projector.repository.outbox import RELAY_LOCK
from paysync_status_projector.service import project_in, relay_outbox

pytestmark = pytest.mark.integration


@dataclass
class Replica:
    """One projector replica's relay: its own engine (named in pg_stat_activity), producer and loop."""

    engine: AsyncEngine
    producer: DurableProducer
    name: str
    handing_over: int = 0  # calls of `submit` not returned yet (waiting for the topic's metadata)
    in_flight: list[asyncio.Future[Any]] = field(default_factory=list)
    task: asyncio.Task[None] | None = None

    @classmethod
    async def start(cls, database: str, bootstrap: str) -> Replica:
        name = f"relay-test-{uuid.uuid4().hex[:8]}"
        producer = DurableProducer(
            bootstrap, client_id=name, linger_ms=1, partitioner=same_partition_as_java_clients
        )
        await producer.start()
        replica = cls(make_engine(database, pool_size=2, application_name=name), producer, name)
        replica.task = asyncio.create_task(
            relay_loop(replica.engine, replica.publish, Wakeup(), 500, 0.05, timedelta(hours=1))
        )
        return replica

    async def publish(self, topic: str, key: bytes, value: bytes, headers: Any) -> asyncio.Future[Any]:
        """The producer's `submit`, remembering each acknowledgement to come."""
        self.handing_over += 1
        try:
            acknowledgement = await self.producer.submit(topic, key, value, headers)
        finally:
            self.handing_over -= 1
        self.in_flight.append(acknowledgement)
        return acknowledgement

    def waiting_for_the_broker(self) -> bool:
        """Whether this relay has handed records over and the broker has not acknowledged them all yet."""
        return self.handing_over > 0 or any(not ack.done() for ack in self.in_flight)

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task
        await self.producer.stop()
        await self.engine.dispose()


@pytest.fixture
def own_broker(tmp_path: Path) -> Iterator[KafkaProcess]:
    """A broker of this test alone, which it stops and starts again."""
    with broker_of_its_own(tmp_path / "kafka", [topics.PAYMENT_STATUS, topics.ALERTS]) as broker:
        yield broker


@pytest.fixture
async def replicas(migrated_database: str, own_broker: KafkaProcess) -> AsyncIterator[list[Replica]]:
    """Two replicas' relays on the test's own broker, as two projector replicas run them."""
    started = [await Replica.start(migrated_database, own_broker.bootstrap) for _ in range(2)]
    yield started
    # Back, if the test failed during the outage: a producer stops only once it has sent what it holds.
    await asyncio.to_thread(own_broker.start)
    for replica in started:
        await replica.stop()


async def change(engine: AsyncEngine, domains: Any, payment: Registered, status: S, minute: int) -> None:
    """Commit one observation that changes the payment's status (one event in the outbox)."""
    refunded = {S.PARTIALLY_REFUNDED: 1000, S.REFUNDED: 5000}.get(status)
    async with engine.begin() as conn:
        await project_in(conn, [observation(payment, status, minute, refunded=refunded)], domains)


async def unpublished(engine: AsyncEngine, payments: list[Registered]) -> int:
    """How many of these payments' events the relay has not marked published."""
    async with engine.connect() as conn:
        return (
            await conn.execute(
                select(func.count())
                .select_from(outbox)
                .where(
                    outbox.c.published_at.is_(None),
                    outbox.c.payload["payment_id"].astext.in_([str(p.id) for p in payments]),
                )
            )
        ).scalar_one()


async def changes_in_topic(bootstrap: str, payment: Registered) -> list[PaymentStatusChanged]:
    """The payment's status changes on their topic (one partition), in the order its consumers read them."""
    records = [
        r
        for r in await read_topic(bootstrap, topics.PAYMENT_STATUS.name)
        if str(payment.id).encode() in r.value
    ]
    assert len({r.partition for r in records}) <= 1
    return [PaymentStatusChanged.from_bytes(r.value) for r in sorted(records, key=lambda r: r.offset)]


async def test_the_relay_waits_out_a_broker_outage_with_no_transaction_open_then_publishes_each_event_once(
    engine, domains, tenant, own_broker, replicas
) -> None:
    first = await register_payment(engine, tenant.id, domain="jobs")
    second = await register_payment(engine, tenant.id, domain="jobs")
    await change(engine, domains, first, S.PROCESSING, 1)
    await wait_until(lambda: _none_left(engine, [first]), 60, "the first event published")

    await asyncio.to_thread(own_broker.stop)
    for status, minute in [(S.SUCCEEDED, 2), (S.PARTIALLY_REFUNDED, 3), (S.REFUNDED, 4)]:
        await change(engine, domains, first, status, minute)
    await change(engine, domains, second, S.PROCESSING, 1)
    await change(engine, domains, second, S.FAILED, 2)

    names = [r.name for r in replicas]

    async def waiting_with_no_transaction() -> bool:
        holder = await idle_holder(engine, RELAY_LOCK, names)
        waiting = [r for r in replicas if r.waiting_for_the_broker()]
        return (
            len(waiting) == 1  # one relay at a time
            and holder == waiting[0].name  # holding the lock, no transaction open
            and await unpublished(engine, [first, second]) == 5  # nothing acknowledged, nothing marked
        )

    await wait_until(
        waiting_with_no_transaction, 60, "a relay waiting for the broker, its session in no transaction"
    )

    await asyncio.to_thread(own_broker.start)
    await wait_until(lambda: _none_left(engine, [first, second]), 90, "every event marked published")

    assert await steps_in_topic(own_broker.bootstrap, first) == [
        (1, S.PENDING, S.PROCESSING),
        (2, S.PROCESSING, S.SUCCEEDED),
        (3, S.SUCCEEDED, S.PARTIALLY_REFUNDED),
        (4, S.PARTIALLY_REFUNDED, S.REFUNDED),
    ]
    assert await steps_in_topic(own_broker.bootstrap, second) == [
        (1, S.PENDING, S.PROCESSING),
        (2, S.PROCESSING, S.FAILED),
    ]


async def steps_in_topic(bootstrap: str, payment: Registered) -> list[tuple[int, S, S]]:
    """(sequence, old, new) of each of the payment's changes on the topic, in order: each once if once."""
    return [(c.sequence, c.old_status, c.new_status) for c in await changes_in_topic(bootstrap, payment)]


async def _none_left(engine: AsyncEngine, payments: list[Registered]) -> bool:
    return await unpublished(engine, payments) == 0


@pytest.fixture
async def publish(kafka_topics: str) -> AsyncIterator[Any]:
    """Publish as the projector's relay does, on the session's broker."""
    producer = DurableProducer(
        kafka_topics, client_id="paysync-tests", partitioner=same_partition_as_java_clients
    )
    await producer.start()
    yield producer.submit
    await producer.stop()


@dataclass
class StalledBroker:
    """A relay's `publish` whose acknowledgements come when the test says, and whose hand-over can fail."""

    fail_after: int | None = None  # hand-overs that succeed before one raises (None: never)
    acknowledgements: list[asyncio.Future[None]] = field(default_factory=list)
    calls: int = 0

    async def publish(self, topic: str, key: bytes, value: bytes, headers: Any) -> asyncio.Future[None]:
        self.calls += 1
        if self.fail_after is not None and self.calls > self.fail_after:
            raise KafkaTimeoutError()
        self.acknowledgements.append(asyncio.get_running_loop().create_future())
        return self.acknowledgements[-1]

    def acknowledge(self) -> None:
        for acknowledgement in self.acknowledgements:
            acknowledgement.set_result(None)


@contextlib.asynccontextmanager
async def relay_engine(url: str) -> AsyncIterator[tuple[AsyncEngine, str]]:
    """An engine of one pooled connection, as a relay of its own, named in pg_stat_activity."""
    name = f"relay-test-{uuid.uuid4().hex[:8]}"
    engine = make_engine(url, pool_size=1, application_name=name)
    try:
        yield engine, name
    finally:
        await engine.dispose()


async def relay_everything(engine: AsyncEngine, publish: Any) -> None:
    while await relay_outbox(engine, publish, 500):
        pass


async def test_a_round_whose_hand_over_fails_keeps_the_lock_until_what_it_handed_over_is_settled(
    engine, domains, tenant, migrated_database, publish, kafka_topics
) -> None:
    payment = await register_payment(engine, tenant.id, domain="jobs")
    await change(engine, domains, payment, S.PROCESSING, 1)
    await change(engine, domains, payment, S.SUCCEEDED, 2)
    broker = StalledBroker(fail_after=1)  # the first record is in flight when the second fails

    async with (
        relay_engine(migrated_database) as (first, name),
        relay_engine(migrated_database) as (other, _),
    ):
        round_ = asyncio.create_task(relay_outbox(first, broker.publish, 500))
        await wait_until(holds(lambda: broker.calls == 2), 30, "the second hand-over failed")

        # Another relay must not publish the events beside the one still in flight.
        assert await relay_outbox(other, publish, 500) == 0
        assert [h.application_name for h in await lock_holders(engine, RELAY_LOCK)] == [name]

        broker.acknowledge()
        with pytest.raises(KafkaTimeoutError):
            await round_
        assert await lock_holders(engine, RELAY_LOCK) == []  # let go of, not kept on the pooled connection
        await relay_everything(other, publish)

    assert await unpublished(engine, [payment]) == 0
    assert [(c.sequence, c.new_status) for c in await changes_in_topic(kafka_topics, payment)] == [
        (1, S.PROCESSING),
        (2, S.SUCCEEDED),
    ]


async def test_a_relay_cancelled_while_it_waits_lets_go_of_the_lock(
    engine, domains, tenant, migrated_database, publish
) -> None:
    payment = await register_payment(engine, tenant.id, domain="jobs")
    await change(engine, domains, payment, S.PROCESSING, 1)
    broker = StalledBroker()

    async with relay_engine(migrated_database) as (first, name):
        round_ = asyncio.create_task(relay_outbox(first, broker.publish, 500))
        await wait_until(holds(lambda: bool(broker.acknowledgements)), 30, "a record handed over")
        assert [h.application_name for h in await lock_holders(engine, RELAY_LOCK)] == [name]
        round_.cancel()  # the projector stopping
        with contextlib.suppress(asyncio.CancelledError):
            await round_
        assert await lock_holders(engine, RELAY_LOCK) == []
        await relay_everything(first, publish)  # on the same pooled connection

    assert await unpublished(engine, [payment]) == 0


async def test_a_connection_dropped_while_the_relay_waits_loses_nothing(
    engine, domains, tenant, database_proxy: PostgresProxy, publish, kafka_topics
) -> None:
    payment = await register_payment(engine, tenant.id, domain="jobs")
    await change(engine, domains, payment, S.PROCESSING, 1)
    await change(engine, domains, payment, S.SUCCEEDED, 2)
    broker = StalledBroker()

    async with relay_engine(database_proxy.url) as (relay, name):
        round_ = asyncio.create_task(relay_outbox(relay, broker.publish, 500))
        await wait_until(holds(lambda: len(broker.acknowledgements) >= 2), 30, "records handed over")
        assert [h.application_name for h in await lock_holders(engine, RELAY_LOCK)] == [name]

        database_proxy.restarting()  # the connection drops while the relay waits for the broker
        await wait_until(
            lambda: _no_holder(engine), 30, "PostgreSQL letting go of the dropped session's lock"
        )
        broker.acknowledge()
        with pytest.raises(Exception) as failure:
            await round_
        assert is_outage(failure.value)

        await database_proxy.back()
        await relay_everything(relay, publish)  # the next round, on a new connection, publishes them again

    assert await unpublished(engine, [payment]) == 0
    assert [(c.sequence, c.new_status) for c in await changes_in_topic(kafka_topics, payment)] == [
        (1, S.PROCESSING),
        (2, S.SUCCEEDED),
    ]


def holds(check: Callable[[], bool]) -> Callable[[], Awaitable[bool]]:
    """`check` as the condition `wait_until` polls."""

    async def condition() -> bool:
        return check()

    return condition


async def _no_holder(engine: AsyncEngine) -> bool:
    return await lock_holders(engine, RELAY_LOCK) == []
