"""Drift and mismatch alerts reach paysync.alerts.v1 once; the relay publishes only what was committed."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import text

from paysync_core import topics
from paysync_core.contracts import Alert, PaymentStatusChanged
from paysync_core.domain.status import UnifiedStatus as S
from paysync_core.kafka import DurableProducer
from paysync_dev.payments import observation, payment_row, register_payment
from paysync_dev.topic_reader import read_topic
from paysync_status_projector.service import check_drift, project_in, relay_outbox

pytestmark = pytest.mark.integration


@pytest.fixture
async def publish(kafka_topics: str) -> AsyncIterator[Any]:
    """Publish as the projector's relay does: through the one durable producer."""
    producer = DurableProducer(kafka_topics, client_id="paysync-tests")
    await producer.start()
    yield producer.submit
    await producer.stop()


async def relay_all(engine: Any, publish: Any) -> None:
    while await relay_outbox(engine, publish, 500):
        pass


async def alerts_for(bootstrap: str, tenant: str) -> list[Alert]:
    records = await read_topic(bootstrap, topics.ALERTS.name)
    # Keyed by tenant: parse only this tenant's records (other tests put unparsable ones there).
    return [Alert.from_bytes(r.value) for r in records if r.key == tenant.encode()]


async def set_job(engine: Any, tenant: str, job: str, payment_status: str) -> None:
    """What an app (or an operator at a SQL prompt) does to its own row."""
    async with engine.begin() as conn:
        await conn.execute(
            text(
                "INSERT INTO workshop_jobs (tenant_id, job_id, payment_status) VALUES (:t, :j, :s) "
                "ON CONFLICT (tenant_id, job_id) DO UPDATE SET payment_status = excluded.payment_status"
            ),
            {"t": tenant, "j": job, "s": payment_status},
        )


async def test_a_row_marked_paid_without_a_payment_is_alerted_once(
    engine, domains, tenant, publish, kafka_topics
) -> None:
    job = f"job-{uuid.uuid4().hex[:8]}"
    await set_job(engine, tenant.id, job, "paid")

    await check_drift(engine, domains)
    await check_drift(engine, domains)  # the next check sees the same drift: no second alert
    await relay_all(engine, publish)

    alerts = await alerts_for(kafka_topics, tenant.id)
    assert [(a.kind.value, a.entity.domain, a.entity.entity_id, a.payment_id) for a in alerts] == [
        ("domain_paid_without_payment", "jobs", job, None)
    ]
    assert "marked 'paid'" in alerts[0].detail


async def test_a_succeeded_payment_whose_row_is_not_paid_is_alerted_once_per_drift(
    engine, domains, tenant, publish, kafka_topics
) -> None:
    payment = await register_payment(engine, tenant.id, domain="jobs")
    async with engine.begin() as conn:
        await project_in(conn, [observation(payment, S.SUCCEEDED, 1)], domains)
    await check_drift(engine, domains)  # in step: nothing to say

    await set_job(engine, tenant.id, payment.entity_id, "unpaid")  # someone resets the row
    await check_drift(engine, domains)
    await check_drift(engine, domains)
    await set_job(engine, tenant.id, payment.entity_id, "paid")  # fixed
    await check_drift(engine, domains)
    await set_job(engine, tenant.id, payment.entity_id, "unpaid")  # and broken again: a new drift
    await check_drift(engine, domains)
    await relay_all(engine, publish)

    alerts = await alerts_for(kafka_topics, tenant.id)
    assert [(a.kind.value, a.payment_id, a.occurrence) for a in alerts] == [
        ("payment_succeeded_domain_unpaid", str(payment.id), 1),
        ("payment_succeeded_domain_unpaid", str(payment.id), 2),
    ]
    assert len({a.alert_id for a in alerts}) == 2
    assert "shows 'unpaid' (payment_status)" in alerts[0].detail


async def test_a_mismatch_alert_and_the_status_changes_reach_their_topics(
    engine, domains, tenant, publish, kafka_topics
) -> None:
    payment = await register_payment(engine, tenant.id, domain="jobs")
    async with engine.begin() as conn:
        await project_in(
            conn,
            [observation(payment, S.PROCESSING, 1), observation(payment, S.SUCCEEDED, 2, amount=100)],
            domains,
        )
    await relay_all(engine, publish)

    alerts = await alerts_for(kafka_topics, tenant.id)
    assert [(a.kind.value, a.payment_id, a.facts["seen_amount_minor"]) for a in alerts] == [
        ("amount_mismatch", str(payment.id), 100)
    ]
    changes = [
        PaymentStatusChanged.from_bytes(r.value)
        for r in await read_topic(kafka_topics, topics.PAYMENT_STATUS.name)
        if str(payment.id).encode() in r.value
    ]
    # The short success changed no status (it was not accepted): processing is the only change.
    assert [(c.sequence, c.old_status, c.new_status) for c in changes] == [(1, S.PENDING, S.PROCESSING)]


async def test_a_change_rolled_back_is_never_published(
    engine, domains, tenant, publish, kafka_topics
) -> None:
    payment = await register_payment(engine, tenant.id, domain="jobs")
    conn = await engine.connect()
    transaction = await conn.begin()
    await project_in(conn, [observation(payment, S.SUCCEEDED, 1)], domains)
    await relay_all(engine, publish)  # the relay runs while the batch is in flight ...
    await transaction.rollback()  # ... which then fails
    await conn.close()
    await relay_all(engine, publish)

    records = await read_topic(kafka_topics, topics.PAYMENT_STATUS.name)
    assert [r for r in records if str(payment.id).encode() in r.value] == []
    assert (await payment_row(engine, payment)).status == "pending"


async def test_status_changes_are_published_in_commit_order_per_payment(
    engine, domains, tenant, publish, kafka_topics
) -> None:
    payment = await register_payment(engine, tenant.id, domain="invoices")
    steps = [
        (S.PENDING, 1),
        (S.REQUIRES_ACTION, 2),
        (S.PROCESSING, 3),
        (S.SUCCEEDED, 4),
        (S.PARTIALLY_REFUNDED, 5),
        (S.REFUNDED, 6),
    ]
    for status, minute in steps:
        refunded = {S.PARTIALLY_REFUNDED: 1000, S.REFUNDED: 5000}.get(status)
        async with engine.begin() as conn:
            await project_in(conn, [observation(payment, status, minute, refunded=refunded)], domains)
        if minute % 2:
            await relay_all(engine, publish)  # sometimes between commits, sometimes after several
    await relay_all(engine, publish)

    records = [
        r
        for r in await read_topic(kafka_topics, topics.PAYMENT_STATUS.name)
        if str(payment.id).encode() in r.value
    ]
    assert len({r.partition for r in records}) == 1  # one key, one partition: consumers see this order
    changes = [PaymentStatusChanged.from_bytes(r.value) for r in sorted(records, key=lambda r: r.offset)]
    assert [(c.sequence, c.old_status, c.new_status) for c in changes] == [
        (1, S.PENDING, S.REQUIRES_ACTION),
        (2, S.REQUIRES_ACTION, S.PROCESSING),
        (3, S.PROCESSING, S.SUCCEEDED),
        (4, S.SUCCEEDED, S.PARTIALLY_REFUNDED),
        (5, S.PARTIALLY_REFUNDED, S.REFUNDED),
    ]
    assert changes[-1].amount_refunded_minor == 5000
