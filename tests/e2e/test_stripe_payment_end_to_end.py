"""A registered Stripe Checkout payment travels webhook → Kafka → PostgreSQL → API, process to process."""

from __future__ import annotations

import asyncio
import time
import uuid

import httpx
import pytest
from sqlalchemy import select

from paysync_core import topics
from paysync_core.contracts import PaymentStatusChanged, RawWebhook
from paysync_core.db.engine import make_engine
from paysync_core.db.schema import observations, workshop_jobs
from paysync_core.providers.stripe import sign_stripe
from paysync_core.testing.builders.stripe import checkout_session, stripe_event, to_body
from paysync_dev.service_fixtures import metric
from paysync_dev.topic_reader import read_topic

pytestmark = pytest.mark.e2e


def register(stack, tenant, session_id: str, job_id: str) -> dict:
    response = httpx.post(
        f"{stack['api-gateway'].url}/v1/payments",
        headers={"Authorization": f"Bearer {tenant.api_key}"},
        json={
            "provider": "stripe",
            "provider_ref": session_id,
            "domain": "jobs",
            "entity_id": job_id,
            "amount_minor": 12500,
            "currency": "USD",
        },
    )
    assert response.status_code == 201, response.text
    return response.json()


def deliver(
    stack, tenant, event: dict, secret: str | None = None, signature: str | None = None
) -> httpx.Response:
    body = to_body(event)
    header = (
        signature
        if signature is not None
        else sign_stripe(body, secret or tenant.stripe_webhook_secret, int(time.time()))
    )
    return httpx.post(
        f"{stack['webhook-ingest'].url}/webhooks/{tenant.id}/stripe",
        content=body,
        headers={"Stripe-Signature": header, "Content-Type": "application/json"},
    )


def wait_for_status(stack, tenant, payment_id: str, status: str, timeout: float = 60.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        body = httpx.get(
            f"{stack['api-gateway'].url}/v1/payments/{payment_id}",
            headers={"Authorization": f"Bearer {tenant.api_key}"},
        ).json()
        if body["status"] == status or time.monotonic() > deadline:
            return body
        time.sleep(0.05)


def records_containing(bootstrap: str, topic: str, needle: str) -> list[bytes]:
    """The values of the topic's records that mention `needle`."""
    return [r.value for r in asyncio.run(read_topic(bootstrap, topic)) if needle.encode() in r.value]


def status_changes_of(bootstrap: str, payment_id: str, timeout: float = 60.0) -> list[bytes]:
    """The payment's status changes on their topic, once there is one.

    The projector's relay publishes a change from the outbox after the transaction the API reads has
    committed: the API can show the new status before the change is on the topic.
    """
    deadline = time.monotonic() + timeout
    while not (changes := records_containing(bootstrap, topics.PAYMENT_STATUS.name, payment_id)):
        assert time.monotonic() < deadline, f"no status change of {payment_id} on the topic"
        time.sleep(0.1)
    return changes


def raw_webhooks_containing(bootstrap: str, needle: str) -> list[RawWebhook]:
    """The raw webhook records whose body mentions `needle`."""
    records = asyncio.run(read_topic(bootstrap, topics.WEBHOOKS_RAW.name))
    return [
        raw
        for raw in (RawWebhook.from_bytes(r.value) for r in records if needle.encode() in r.key)
        if needle.encode() in raw.body
    ]


def query(url: str, statement):
    async def run():
        engine = make_engine(url, pool_size=1)
        try:
            async with engine.connect() as conn:
                return list(await conn.execute(statement))
        finally:
            await engine.dispose()

    return asyncio.run(run())


def test_paid_checkout_session_shows_succeeded_and_marks_the_job_paid(
    stack, tenant, migrated_database, kafka_topics
):
    session_id = f"cs_test_{uuid.uuid4().hex}"
    job_id = f"job-{uuid.uuid4().hex[:8]}"
    payment = register(stack, tenant, session_id, job_id)
    assert payment["status"] == "pending"

    event = stripe_event(
        "checkout.session.completed",
        checkout_session(id=session_id, payment_status="paid", amount_total=12500, currency="usd"),
    )
    response = deliver(stack, tenant, event)
    assert response.status_code == 200, response.text

    final = wait_for_status(stack, tenant, payment["id"], "succeeded")
    assert final["status"] == "succeeded"
    assert final["amount_received_minor"] == 12500
    assert final["paid_at"] is not None

    job = query(
        migrated_database,
        select(workshop_jobs).where(workshop_jobs.c.tenant_id == tenant.id, workshop_jobs.c.job_id == job_id),
    )[0]
    assert job.status == "paid"
    assert job.amount_paid_minor == 12500 and job.currency == "USD"
    assert job.paid_at is not None
    assert job.payment_note == f"Paid via Stripe - Session: {session_id}"

    raw = raw_webhooks_containing(kafka_topics, session_id)
    assert [r.verdict.value for r in raw] == ["verified"]
    parsed = [PaymentStatusChanged.from_bytes(c) for c in status_changes_of(kafka_topics, payment["id"])]
    assert [(c.old_status, c.new_status.value) for c in parsed] == [("pending", "succeeded")]


def test_the_same_event_delivered_twice_changes_nothing_the_second_time(
    stack, tenant, migrated_database, kafka_topics
):
    session_id = f"cs_test_{uuid.uuid4().hex}"
    job_id = f"job-{uuid.uuid4().hex[:8]}"
    payment = register(stack, tenant, session_id, job_id)
    event = stripe_event(
        "checkout.session.completed",
        checkout_session(id=session_id, payment_status="paid", amount_total=12500, currency="usd"),
    )
    assert deliver(stack, tenant, event).status_code == 200
    wait_for_status(stack, tenant, payment["id"], "succeeded")
    job_before = query(migrated_database, select(workshop_jobs).where(workshop_jobs.c.job_id == job_id))[0]

    projector = stack["status-projector"].url
    duplicates_before = metric(projector, "paysync_projector_observations_total", outcome="duplicate")
    assert deliver(stack, tenant, event).status_code == 200  # the gateway retries: accepted again
    # Look only once the projector has taken the redelivery in (and counted it a duplicate).
    deadline = time.monotonic() + 60
    while metric(projector, "paysync_projector_observations_total", outcome="duplicate") <= duplicates_before:
        assert time.monotonic() < deadline, "the redelivered event never reached the projector"
        time.sleep(0.05)
    assert len(raw_webhooks_containing(kafka_topics, session_id)) == 2

    history = query(
        migrated_database,
        select(observations).where(
            observations.c.tenant_id == tenant.id, observations.c.observation_id.contains(event["id"])
        ),
    )
    assert len(history) == 1
    job_after = query(migrated_database, select(workshop_jobs).where(workshop_jobs.c.job_id == job_id))[0]
    assert job_after == job_before
    assert len(status_changes_of(kafka_topics, payment["id"])) == 1


def test_bad_requests_get_their_documented_answers_and_publish_nothing(stack, tenant, kafka_topics):
    session_id = f"cs_test_{uuid.uuid4().hex}"
    event = stripe_event("checkout.session.completed", checkout_session(id=session_id))
    url = f"{stack['webhook-ingest'].url}/webhooks"

    assert deliver(stack, tenant, event, secret="whsec_wrong").status_code == 401
    assert deliver(stack, tenant, event, signature="").status_code == 401
    not_json = httpx.post(
        f"{url}/{tenant.id}/stripe",
        content=b"{not json",
        headers={
            "Stripe-Signature": sign_stripe(b"{not json", tenant.stripe_webhook_secret, int(time.time()))
        },
    )
    assert not_json.status_code == 400
    unknown = httpx.post(f"{url}/no-such-tenant/stripe", content=to_body(event))
    assert unknown.status_code == 404

    raw = raw_webhooks_containing(kafka_topics, session_id)
    assert raw == []
