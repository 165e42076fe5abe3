"""Each topic's key, pinned byte for byte: a payment's records keep one partition only while keys stay."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from paysync_core import topics
from paysync_core.contracts import (
    Alert,
    AlertKind,
    DeadLetter,
    PaymentObservation,
    PaymentStatusChanged,
    Provider,
    RawWebhook,
    ReconcileReply,
    ReconcileRequest,
    ReconcileTick,
)
from paysync_core.testing.builders import to_body
from paysync_core.testing.builders.stripe import checkout_session, stripe_event

AT = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def _raw(provider: str, body: bytes) -> RawWebhook:
    return RawWebhook(
        ingest_id="i-1", tenant="acme", provider=provider, received_at=AT, body=body, verdict="verified"
    )


def test_a_raw_webhook_is_keyed_by_the_payment_its_body_names() -> None:
    event = stripe_event("checkout.session.completed", checkout_session(id="cs_test_a1"))
    assert topics.WEBHOOKS_RAW.key_for(_raw("stripe", to_body(event))) == b"acme:stripe:cs_test_a1"


def test_a_raw_webhook_naming_no_payment_is_keyed_by_tenant_and_gateway() -> None:
    assert topics.WEBHOOKS_RAW.key_for(_raw("paystack", b'{"event": "ping"}')) == b"acme:paystack"


def test_the_request_path_key_is_the_spec_key() -> None:
    assert topics.raw_webhook_key("acme", Provider.MPESA, "ws_CO_1") == b"acme:mpesa:ws_CO_1"
    assert topics.raw_webhook_key("acme", Provider.MPESA, None) == b"acme:mpesa"


def test_observations_and_status_changes_are_keyed_by_payment() -> None:
    observation = PaymentObservation(
        observation_id="evt_1",
        tenant="acme",
        provider="stripe",
        provider_ref="pi_123",
        aliases=("cs_test_9",),
        status="succeeded",
        provider_time=AT,
        source="webhook",
        verified=True,
        observed_at=AT,
    )
    change = PaymentStatusChanged(
        event_id="e-1",
        tenant="acme",
        payment_id="p-1",
        provider="paystack",
        provider_ref="ref-7",
        new_status="succeeded",
        sequence=1,
        observation_id="o-1",
        changed_at=AT,
    )
    assert topics.PAYMENT_OBSERVATIONS.key_for(observation) == b"acme:stripe:pi_123"
    assert topics.PAYMENT_STATUS.key_for(change) == b"acme:paystack:ref-7"


def test_ticks_are_keyed_by_tenant_and_gateway() -> None:
    tick = ReconcileTick(tick_id="t-1", tenant="acme", provider="mpesa", scheduled_at=AT)
    assert topics.RECONCILE_TICKS.key_for(tick) == b"acme:mpesa"


def test_requests_replies_and_alerts_are_keyed_by_tenant() -> None:
    request = ReconcileRequest(request_id="r-1", tenant="acme", kind="bulk", requested_at=AT)
    reply = ReconcileReply(request_id="r-1", tenant="acme", kind="bulk", completed_at=AT)
    alert = Alert(alert_id="a-1", kind=AlertKind.AMOUNT_MISMATCH, tenant="acme", detail="x", raised_at=AT)
    assert topics.RECONCILE_REQUESTS.key_for(request) == b"acme"
    assert topics.RECONCILE_REPLIES.key_for(reply) == b"acme"
    assert topics.ALERTS.key_for(alert) == b"acme"


@pytest.mark.parametrize(("key", "expected"), [(b"acme:stripe:pi_1", b"acme:stripe:pi_1"), (None, b"")])
def test_a_dead_letter_keeps_its_source_records_key(key: bytes | None, expected: bytes) -> None:
    # Every paysync topic is keyed; a keyless record's letter (none in practice) gets the empty key.
    letter = DeadLetter(
        source_topic=topics.ALERTS.name,
        partition=0,
        offset=1,
        key=key,
        value=b"{}",
        error_type="ValueError",
        error="bad",
        attempts=3,
        service="notifier",
        failed_at=AT,
    )
    assert all(spec.key_for(letter) == expected for spec in topics.ALL if spec.name.endswith(".dlq"))


def test_every_topic_names_its_message_contract_and_key() -> None:
    for spec in topics.ALL:
        assert spec.message.model_fields, spec.name
        assert spec.key_description, spec.name
