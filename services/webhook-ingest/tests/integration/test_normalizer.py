"""The normalizer: raw records become observations, M-Pesa hints become confirm requests,
bad records dead letters."""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest

from paysync_core import topics
from paysync_core.contracts import DeadLetter, PaymentObservation, ReconcileRequest
from paysync_core.kafka import DurableProducer
from paysync_core.testing.builders import to_body
from paysync_core.testing.builders.mpesa import checkout_request_id, stk_callback
from paysync_dev.topic_reader import read_topic

from .conftest import stripe_body, stripe_headers

pytestmark = pytest.mark.integration


async def wait_for_records(
    bootstrap: str, topic: str, marker: str, want: int, timeout: float = 60.0
) -> list[bytes]:
    # The app's normalizer joins a group of its own and reads the session's raw topic from its start
    # before it reaches this test's records: on a busy host that is tens of seconds.
    deadline = time.monotonic() + timeout
    while True:
        found = [
            r.value
            for r in await read_topic(bootstrap, topic)
            if marker.encode() in r.value or marker.encode() == r.key
        ]
        if len(found) >= want or time.monotonic() > deadline:
            return found
        await asyncio.sleep(0.2)


async def test_a_verified_stripe_webhook_becomes_one_observation_even_when_delivered_twice(
    ingest, tenant, kafka_topics
) -> None:
    body, session_id = stripe_body()
    for _ in range(2):
        response = await ingest.post(
            f"/webhooks/{tenant.id}/stripe",
            content=body,
            headers=stripe_headers(body, tenant.stripe_webhook_secret),
        )
        assert response.status_code == 200
    found = await wait_for_records(kafka_topics, topics.PAYMENT_OBSERVATIONS.name, session_id, want=2)
    observations = [PaymentObservation.from_bytes(v) for v in found]
    assert len(observations) == 2  # both deliveries normalized...
    assert (
        len({o.observation_id for o in observations}) == 1
    )  # ...as the same observation, deduplicated downstream
    assert {(o.status.value, o.verified, o.provider_ref) for o in observations} == {
        ("succeeded", True, session_id)
    }


async def test_an_mpesa_callback_is_an_unverified_hint_and_asks_the_reconciler_to_confirm(
    ingest, tenant, kafka_topics
) -> None:
    request_id = checkout_request_id()
    body = to_body(stk_callback(checkout_request_id=request_id, result_code=0, amount=150))
    response = await ingest.post(
        f"/webhooks/{tenant.id}/mpesa/{tenant.mpesa_callback_token}",
        content=body,
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 200
    [observation] = [
        PaymentObservation.from_bytes(v)
        for v in await wait_for_records(kafka_topics, topics.PAYMENT_OBSERVATIONS.name, request_id, want=1)
    ]
    assert observation.verified is False and observation.amount_minor == 15_000
    [confirm] = [
        ReconcileRequest.from_bytes(v)
        for v in await wait_for_records(kafka_topics, topics.RECONCILE_REQUESTS.name, request_id, want=1)
    ]
    assert (
        confirm.kind == "confirm_callback" and confirm.refs == (request_id,) and confirm.tenant == tenant.id
    )


async def test_a_record_that_cannot_be_normalized_goes_to_the_dead_letter_topic_and_the_rest_flows(
    ingest, tenant, kafka_topics
) -> None:
    marker = uuid.uuid4().hex
    producer = DurableProducer(kafka_topics, client_id="paysync-tests")
    await producer.start()
    try:
        await producer.send(
            topics.WEBHOOKS_RAW.name, marker.encode(), f'{{"not a raw record": "{marker}"}}'.encode()
        )
    finally:
        await producer.stop()
    body, session_id = stripe_body()
    ok = await ingest.post(
        f"/webhooks/{tenant.id}/stripe",
        content=body,
        headers=stripe_headers(body, tenant.stripe_webhook_secret),
    )
    assert ok.status_code == 200

    [letter] = [
        DeadLetter.from_bytes(v)
        for v in await wait_for_records(kafka_topics, topics.WEBHOOKS_RAW.dlq.name, marker, want=1)
    ]
    assert letter.source_topic == topics.WEBHOOKS_RAW.name and marker.encode() in letter.value
    assert letter.error_type == "ValidationError" and letter.attempts == 1
    assert await wait_for_records(kafka_topics, topics.PAYMENT_OBSERVATIONS.name, session_id, want=1)
