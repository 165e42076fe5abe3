"""An M-Pesa callback's payer number leaves the normalizer only as its keyed hash: no topic carries it."""

from __future__ import annotations

import random
import uuid

import pytest

from paysync_core import topics
from paysync_core.contracts import PaymentObservation
from paysync_core.phones import phone_hash
from paysync_core.testing.builders import to_body
from paysync_core.testing.builders.mpesa import checkout_request_id, stk_callback

from .test_normalizer import wait_for_records

pytestmark = pytest.mark.integration


@pytest.fixture
def phone_key(monkeypatch: pytest.MonkeyPatch) -> str:
    """The phone hash key of the webhook-ingest started after it (list it before `ingest`)."""
    key = uuid.uuid4().hex
    monkeypatch.setenv("PAYSYNC_PHONE_HASH_KEY", key)
    return key


async def test_the_payers_number_is_published_only_as_its_hash(
    phone_key, ingest, tenant, kafka_topics
) -> None:
    number = 254700000000 + random.randrange(10**8)
    request_id = checkout_request_id()
    body = to_body(stk_callback(checkout_request_id=request_id, result_code=0, amount=150, phone=number))
    answer = await ingest.post(
        f"/webhooks/{tenant.id}/mpesa/{tenant.mpesa_callback_token}",
        content=body,
        headers={"Content-Type": "application/json"},
    )
    assert answer.status_code == 200
    [record] = await wait_for_records(kafka_topics, topics.PAYMENT_OBSERVATIONS.name, request_id, want=1)
    observation = PaymentObservation.from_bytes(record)
    assert observation.phone_hash == phone_hash(phone_key, tenant.id, str(number))
    assert observation.evidence.phone_masked == f"{str(number)[:3]}***{str(number)[-3:]}"
    confirms = await wait_for_records(kafka_topics, topics.RECONCILE_REQUESTS.name, request_id, want=1)
    for published in [record, *confirms]:
        assert str(number)[3:].encode() not in published
