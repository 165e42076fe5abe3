"""The projector's own consumer loop: a failed transaction redelivers its batch; a stop resumes after it.

With the pipeline on (the default), the next batch is decoded while one is applied: batches still
change a payment in order, and one that fails brings the batch taken behind it back with it.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.structs import TopicPartition
from prometheus_client import REGISTRY
from sqlalchemy import func, select, text

from paysync_core import topics
from paysync_core.db.schema import observations, outbox, parked_observations, payments
from paysync_core.domain.status import UnifiedStatus as S
from paysync_core.settings import CommonSettings
from paysync_dev.payments import observation, payment_row, publish_observations, register_payment
from paysync_dev.service_fixtures import fetch, wait_until
from paysync_dev.topic_reader import commit_group_at_end
from paysync_status_projector.app import create_app
from paysync_status_projector.settings import StatusProjectorSettings

pytestmark = pytest.mark.integration

TOPIC = topics.PAYMENT_OBSERVATIONS.name
#: Backends of the projector waiting for a row lock (the test holds it).
LOCK_WAITERS = text(
    "SELECT pid FROM pg_stat_activity WHERE application_name = 'paysync-status-projector'"
    " AND wait_event_type = 'Lock'"
)


async def test_a_batch_whose_transaction_fails_is_redelivered_and_applied_once(
    engine, tenant, kafka_topics, migrated_database
) -> None:
    settings = await projector_settings(kafka_topics, migrated_database)
    payment = await register_payment(engine, tenant.id, domain="jobs")
    app = create_app(settings)
    async with app.router.lifespan_context(app), engine.connect() as holder:
        # The payment's row locked: the projector's transaction waits, and is killed while it waits.
        await holder.begin()
        await holder.execute(select(payments.c.id).where(payments.c.id == payment.id).with_for_update())
        await publish_observations(kafka_topics, [observation(payment, S.SUCCEEDED, 1)])
        first = await lock_waiter(engine, other_than=None)
        async with engine.connect() as admin:
            await admin.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": first})
        await lock_waiter(engine, other_than=first)  # the same batch, delivered again
        await holder.rollback()
        await wait_until(lambda: status_is(engine, payment, "succeeded"), 30, "the observation applied")
        await wait_until(lambda: committed_to_end(kafka_topics, settings.group_id), 30, "offsets committed")

    assert await count(engine, observations.c.tenant_id, tenant.id) == 1
    assert await count(engine, outbox.c.payload["tenant"].astext, tenant.id) == 1
    assert (await payment_row(engine, payment)).sequence == 1


async def test_a_stopped_projector_resumes_from_its_committed_offsets(
    engine, tenant, kafka_topics, migrated_database
) -> None:
    settings = await projector_settings(kafka_topics, migrated_database)
    a, b, c = [await register_payment(engine, tenant.id, domain="jobs") for _ in range(3)]
    b_paid = observation(b, S.SUCCEEDED, 1)
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        await publish_observations(kafka_topics, [observation(a, S.PROCESSING, 1), b_paid])
        # A consumer group to join first (as below): tens of seconds on a busy host.
        await wait_until(lambda: status_is(engine, b, "succeeded"), 60, "the first records applied")
        await wait_until(lambda: committed_to_end(kafka_topics, settings.group_id), 30, "offsets committed")
    before = seen()

    # While it is stopped: a's next state, b's observation once more, and a new payment's.
    await publish_observations(
        kafka_topics, [observation(a, S.SUCCEEDED, 2), b_paid, observation(c, S.SUCCEEDED, 1)]
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        await wait_until(lambda: status_is(engine, c, "succeeded"), 60, "the later records applied")
        await wait_until(lambda: committed_to_end(kafka_topics, settings.group_id), 30, "offsets committed")

    # Only what came while it was stopped was read again: two new, the one republished a duplicate.
    assert {k: seen()[k] - before[k] for k in before} == {"applied": 2, "duplicate": 1}
    assert [(await payment_row(engine, p)).status for p in (a, b, c)] == ["succeeded"] * 3
    assert await count(engine, observations.c.tenant_id, tenant.id) == 4
    assert await count(engine, outbox.c.payload["tenant"].astext, tenant.id) == 4


async def test_batches_decoded_while_the_one_before_applies_change_a_payment_in_order(
    engine, tenant, kafka_topics, migrated_database
) -> None:
    settings = await projector_settings(kafka_topics, migrated_database, max_batch=1, pipeline=True)
    payment = await register_payment(engine, tenant.id, domain="jobs")
    life = [
        observation(payment, S.REQUIRES_ACTION, 1),
        observation(payment, S.PROCESSING, 2),
        observation(payment, S.SUCCEEDED, 3),
        observation(payment, S.PARTIALLY_REFUNDED, 4, refunded=1000),
        observation(payment, S.REFUNDED, 5, refunded=5000),
    ]
    # On the topic before the projector starts, one a batch: each batch is in the consumer's
    # buffer, taken and decoded while the one before it is applied.
    await publish_observations(kafka_topics, life, partition=0)
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        await wait_until(lambda: status_is(engine, payment, "refunded"), 60, "every observation applied")

    changes = [
        row.payload
        for row in await fetch(
            engine,
            select(outbox.c.payload)
            .where(outbox.c.topic == topics.PAYMENT_STATUS.name)
            .where(outbox.c.payload["payment_id"].astext == str(payment.id))
            .order_by(outbox.c.id),
        )
    ]
    statuses = ["pending", "requires_action", "processing", "succeeded", "partially_refunded", "refunded"]
    assert [(c["old_status"], c["new_status"], c["sequence"]) for c in changes] == [
        (old, new, n) for n, (old, new) in enumerate(zip(statuses, statuses[1:], strict=False), 1)
    ]
    assert (await payment_row(engine, payment)).sequence == len(life)


async def test_a_failed_batch_and_the_one_decoded_behind_it_are_both_redelivered(
    engine, tenant, kafka_topics, migrated_database
) -> None:
    settings = await projector_settings(kafka_topics, migrated_database, max_batch=1, pipeline=True)
    a, b = [await register_payment(engine, tenant.id, domain="jobs") for _ in range(2)]
    committed_at_start = await committed_offsets(kafka_topics, settings.group_id)
    before = seen()
    async with engine.connect() as holder:
        # a's row locked: a's batch waits, while b's, behind it on the same partition (both on the
        # topic before the projector starts), is taken and decoded; a's transaction is then killed.
        await holder.begin()
        await holder.execute(select(payments.c.id).where(payments.c.id == a.id).with_for_update())
        await publish_observations(
            kafka_topics, [observation(a, S.SUCCEEDED, 1), observation(b, S.SUCCEEDED, 1)], partition=0
        )
        app = create_app(settings)
        async with app.router.lifespan_context(app):
            first = await lock_waiter(engine, other_than=None)
            async with engine.connect() as admin:
                await admin.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": first})
            await lock_waiter(engine, other_than=first)  # a's batch, delivered again

            # While it waits again: nothing of b's batch was applied or committed.
            assert (await payment_row(engine, b)).status == "pending"
            assert await committed_offsets(kafka_topics, settings.group_id) == committed_at_start
            await holder.rollback()
            await wait_until(lambda: status_is(engine, b, "succeeded"), 30, "both observations applied")
            group = settings.group_id
            await wait_until(lambda: committed_to_end(kafka_topics, group), 30, "offsets committed")

    # Each applied once: b's batch, set aside when a's failed, had not been applied before it came again.
    assert {k: seen()[k] - before[k] for k in before} == {"applied": 2, "duplicate": 0}
    assert [(await payment_row(engine, p)).status for p in (a, b)] == ["succeeded", "succeeded"]
    assert await count(engine, outbox.c.payload["tenant"].astext, tenant.id) == 2


async def projector_settings(bootstrap: str, database_url: str, **overrides: Any) -> StatusProjectorSettings:
    """A projector of a consumer group of its own, starting at the observations' current end."""
    group = f"projector-loop-{uuid.uuid4().hex[:8]}"
    await commit_group_at_end(bootstrap, group, TOPIC)
    return StatusProjectorSettings(
        common=CommonSettings(kafka_bootstrap=bootstrap, database_url=database_url, log_json=False),
        group_id=group,
        drift_check_seconds=3600,
        **overrides,
    )


async def lock_waiter(engine: Any, other_than: int | None) -> int:
    """The pid of a projector backend waiting for the held lock (not `other_than`), once there is one."""
    found: list[int] = []

    async def waiting() -> bool:
        found[:] = [pid for (pid,) in await fetch(engine, LOCK_WAITERS) if pid != other_than]
        return bool(found)

    # The first time, the projector has a consumer group to join first: tens of seconds on a busy host.
    await wait_until(waiting, 60, "the projector waiting for the locked row", every=0.05)
    return found[0]


async def status_is(engine: Any, payment: Any, status: str) -> bool:
    """Whether the payment's row has this status now."""
    return (await payment_row(engine, payment)).status == status


async def committed_to_end(bootstrap: str, group: str) -> bool:
    """Whether the group's committed offset is the end of every partition of the observations topic."""
    # Every partition has a commit: the group started with one at each partition's end.
    committed = await committed_offsets(bootstrap, group)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        ends = await consumer.end_offsets(list(committed))
        return bool(committed) and all(committed[tp] == ends[tp] for tp in committed)
    finally:
        await consumer.stop()


async def committed_offsets(bootstrap: str, group: str) -> dict[TopicPartition, int]:
    """The group's committed offset of each partition of the observations topic."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        committed = await admin.list_consumer_group_offsets(group)
        return {tp: meta.offset for tp, meta in committed.items() if tp.topic == TOPIC}
    finally:
        await admin.close()


def seen() -> dict[str, float]:
    """This process's projector counters of applied and duplicate observations (its /metrics)."""
    return {
        outcome: REGISTRY.get_sample_value("paysync_projector_observations_total", {"outcome": outcome})
        or 0.0
        for outcome in ("applied", "duplicate")
    }


async def count(engine: Any, column: Any, value: str) -> int:
    """How many rows of `column`'s table have `value` there."""
    return (await fetch(engine, select(func.count()).where(column == value)))[0][0]


async def test_an_observation_parked_under_an_alias_is_applied_as_soon_as_the_alias_is_bound(
    engine, tenant, kafka_topics, migrated_database
) -> None:
    # Stripe often sends payment_intent.succeeded before checkout.session.completed: the intent's
    # event names no registered reference and is parked, until the session's event binds the intent
    # as its alias. The unpark's poll is far beyond the test: only the bound alias can wake it.
    settings = await projector_settings(kafka_topics, migrated_database, unpark_poll_seconds=600)
    intent = f"pi_{uuid.uuid4().hex[:20]}"
    payment = await register_payment(engine, tenant.id, domain="jobs")
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        await publish_observations(
            kafka_topics, [observation(None, S.SUCCEEDED, 2, tenant=tenant.id, ref=intent)]
        )
        await wait_until(lambda: parked_under(engine, tenant.id, intent), 60, "the intent's event parked")
        await publish_observations(kafka_topics, [observation(payment, S.PROCESSING, 1, aliases=(intent,))])

        await wait_until(lambda: status_is(engine, payment, "succeeded"), 30, "the parked event applied")

    assert not await parked_under(engine, tenant.id, intent)
    assert await count(engine, observations.c.tenant_id, tenant.id) == 2


async def parked_under(engine: Any, tenant: str, ref: str) -> bool:
    """Whether an observation of `tenant` naming `ref` waits in the parked table."""
    rows = await fetch(
        engine,
        select(func.count()).where(
            parked_observations.c.tenant_id == tenant, parked_observations.c.refs.has_key(ref)
        ),
    )
    return bool(rows[0][0])
