"""Paystack: HMAC-SHA512 signatures, the IP allowlist, and events as observations."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime

import pytest

from paysync_core.contracts.common import EntityRef, Provider, Verdict
from paysync_core.contracts.observation import DisputeFact, PaymentObservation
from paysync_core.credentials import PaystackCredentials
from paysync_core.domain.status import UnifiedStatus as S
from paysync_core.errors import AuthenticityError, MalformedPayload
from paysync_core.providers.base import ParseContext
from paysync_core.providers.paystack import PaystackAdapter, sign_paystack
from paysync_core.testing.builders import paystack as pb
from paysync_core.testing.builders import to_body
from paysync_core.testing.builders.requests import webhook_request

adapter = PaystackAdapter()
SECRET = "sk_test_paystack_0123456789"
PAYSTACK_IPS = ("52.31.139.75", "52.49.173.169", "52.214.14.220")
PAID_AT = datetime(2026, 2, 3, 4, 5, 6, 789000, tzinfo=UTC)


def _creds(**overrides) -> PaystackCredentials:
    return PaystackCredentials(secret_key=SECRET, **overrides)


def _signed(body: bytes, *, secret: str = SECRET, remote_addr: str | None = "52.31.139.75"):
    return webhook_request(
        body, headers={"x-paystack-signature": sign_paystack(body, secret)}, remote_addr=remote_addr
    )


def _reason(request, creds) -> str:
    with pytest.raises(AuthenticityError) as caught:
        adapter.authenticate(request, creds)
    return caught.value.reason


# --- Authenticity ------------------------------------------------------------------------------


def test_a_valid_signature_is_verified():
    body = to_body(pb.paystack_charge_success())
    assert adapter.authenticate(_signed(body), _creds()) is Verdict.VERIFIED


def test_the_signature_is_hex_hmac_sha512_of_the_raw_body():
    import hmac

    body = b'{"event":"charge.success"}'
    assert sign_paystack(body, SECRET) == hmac.new(SECRET.encode(), body, hashlib.sha512).hexdigest()


def test_a_tampered_body_is_refused():
    body = to_body(pb.paystack_charge_success(amount=10_000))
    request = _signed(body)
    tampered = webhook_request(body.replace(b'"amount":10000', b'"amount":1'), headers=request.headers)
    assert _reason(tampered, _creds()) == "bad_signature"


def test_a_signature_with_another_key_is_refused():
    assert _reason(_signed(b"{}", secret="sk_test_other"), _creds()) == "bad_signature"


def test_upper_case_hex_is_the_same_signature():
    body = b'{"event":"x"}'
    request = webhook_request(body, headers={"x-paystack-signature": sign_paystack(body, SECRET).upper()})
    assert adapter.authenticate(request, _creds()) is Verdict.VERIFIED


@pytest.mark.parametrize(
    "headers, reason",
    [
        ({}, "missing_signature"),
        ({"x-paystack-signature": ""}, "missing_signature"),
        ({"x-paystack-signature": "not-hex"}, "malformed_signature_header"),
        ({"x-paystack-signature": "ab" * 32}, "malformed_signature_header"),  # a SHA-256 length
    ],
)
def test_missing_or_malformed_signatures_are_refused(headers, reason):
    assert _reason(webhook_request(b"{}", headers=headers), _creds()) == reason


@pytest.mark.parametrize("remote_addr", ["52.31.139.75", "::ffff:52.49.173.169", "10.1.2.3"])
def test_enforced_allowlist_admits_listed_addresses_and_networks(remote_addr):
    creds = _creds(allowed_ips=(*PAYSTACK_IPS, "10.0.0.0/8"), ip_policy="enforce")
    assert adapter.authenticate(_signed(b"{}", remote_addr=remote_addr), creds) is Verdict.VERIFIED


@pytest.mark.parametrize("remote_addr", ["198.51.100.7", None, "not-an-ip"])
def test_enforced_allowlist_refuses_other_senders(remote_addr):
    creds = _creds(allowed_ips=PAYSTACK_IPS, ip_policy="enforce")
    request = _signed(b"{}", remote_addr=remote_addr)
    assert _reason(request, creds) == "ip_not_allowed"
    assert adapter.ip_allowed(request, creds) is False


def test_logged_allowlist_accepts_but_tells_the_caller():
    creds = _creds(allowed_ips=PAYSTACK_IPS, ip_policy="log")
    request = _signed(b"{}", remote_addr="198.51.100.7")
    assert adapter.authenticate(request, creds) is Verdict.VERIFIED
    assert adapter.ip_allowed(request, creds) is False
    assert adapter.ip_allowed(_signed(b"{}", remote_addr="52.214.14.220"), creds) is True


def test_without_an_allowlist_every_address_is_allowed():
    assert adapter.ip_allowed(_signed(b"{}", remote_addr="198.51.100.7"), _creds()) is True


# --- Parsing -----------------------------------------------------------------------------------


def _parse_one(payload: dict, ctx: ParseContext) -> PaymentObservation:
    body = to_body(payload)
    parsed = adapter.parse(body, ctx)
    assert (parsed.event_type, parsed.unmapped, len(parsed.observations)) == (payload["event"], False, 1)
    obs = parsed.observations[0]
    assert obs.provider is Provider.PAYSTACK
    assert obs.observation_id == "paystack:" + hashlib.sha256(body).hexdigest()
    assert obs.evidence.event_type == payload["event"]
    assert adapter.reference_hint(body) == adapter.reference_hint(json.loads(body)) == obs.provider_ref
    return obs


def test_charge_success_is_a_success_in_subunits(ctx):
    payload = pb.paystack_charge_success(
        reference="ref_123", amount=250_000, currency="GHS", paid_at=PAID_AT, id=896467688
    )
    obs = _parse_one(payload, ctx)
    assert obs.status is S.SUCCEEDED
    assert (obs.provider_ref, obs.amount_minor, obs.currency) == ("ref_123", 250_000, "GHS")
    assert obs.provider_time == PAID_AT
    assert obs.evidence.transaction_id == "896467688"
    assert obs.evidence.ingest_id == "ing-1"
    assert obs.verified is True


def test_the_same_delivery_always_gets_the_same_id_and_another_one_another(ctx):
    payload = pb.paystack_charge_success(reference="ref_same")
    first, again = _parse_one(payload, ctx), _parse_one(payload, ctx)
    other = _parse_one(pb.paystack_charge_success(reference="ref_same", amount=1), ctx)
    assert first.observation_id == again.observation_id != other.observation_id


@pytest.mark.parametrize(
    "metadata",
    [
        {"paysync_domain": "bookings", "paysync_entity_id": 991},
        json.dumps({"paysync_domain": "bookings", "paysync_entity_id": "991"}),
    ],
)
def test_entity_comes_from_metadata_given_as_object_or_json_text(ctx, metadata):
    obs = _parse_one(pb.paystack_charge_success(metadata=metadata), ctx)
    assert obs.entity == EntityRef(domain="bookings", entity_id="991")


@pytest.mark.parametrize("metadata", ["", "free text", None, json.dumps([1, 2])])
def test_empty_or_foreign_metadata_names_no_entity(ctx, metadata):
    assert _parse_one(pb.paystack_charge_success(metadata=metadata), ctx).entity is None


def test_paid_at_falls_back_to_paidAt_then_to_the_observation_time(ctx, observed_at):
    payload = pb.paystack_charge_success(paid_at=PAID_AT)
    del payload["data"]["paid_at"]
    assert _parse_one(payload, ctx).provider_time == PAID_AT
    for key in ("paidAt", "created_at"):
        payload["data"][key] = "not a time"
    assert _parse_one(payload, ctx).provider_time == observed_at


def test_a_digit_string_amount_is_read_as_subunits(ctx):
    payload = pb.paystack_charge_success()
    payload["data"]["amount"] = "5000"
    assert _parse_one(payload, ctx).amount_minor == 5000


def test_a_processed_refund_without_the_transaction_amount_is_a_partial_lower_bound(ctx, observed_at):
    obs = _parse_one(pb.paystack_refund(transaction_reference="T215", amount="5000"), ctx)
    assert obs.status is S.PARTIALLY_REFUNDED
    assert (obs.provider_ref, obs.amount_refunded_minor, obs.currency) == ("T215", 5000, "NGN")
    assert obs.provider_time == observed_at  # refund events carry no timestamp


@pytest.mark.parametrize(
    "refunded, paid, status",
    [
        (10_000, 10_000, S.REFUNDED),
        (4_000, 10_000, S.PARTIALLY_REFUNDED),
    ],
)
def test_a_processed_refund_compares_with_the_transaction_amount_when_sent(ctx, refunded, paid, status):
    payload = pb.paystack_refund(
        transaction_reference="T9",
        amount=refunded,
        transaction={"id": 1004723697, "reference": "T9", "amount": paid},
    )
    obs = _parse_one(payload, ctx)
    assert (obs.status, obs.amount_refunded_minor, obs.amount_minor) == (status, refunded, paid)
    assert obs.evidence.transaction_id == "1004723697"


@pytest.mark.parametrize(
    "event", ["refund.pending", "refund.processing", "refund.failed", "refund.needs-attention"]
)
def test_unfinished_or_failed_refunds_are_kept_without_a_status(ctx, event):
    obs = _parse_one(pb.paystack_refund(event, transaction_reference="T1", amount=300), ctx)
    assert (obs.status, obs.amount_refunded_minor, obs.provider_ref) == (None, None, "T1")
    assert event.removeprefix("refund.") in obs.evidence.detail


@pytest.mark.parametrize("event", ["charge.dispute.create", "charge.dispute.remind"])
def test_an_open_dispute_marks_the_transaction_disputed(ctx, event):
    created = datetime(2026, 2, 10, 8, 0, tzinfo=UTC)
    payload = pb.paystack_dispute(
        event,
        reference="v3mjfgbnc19v97x",
        id=358950,
        created_at=created,
        transaction_metadata={"paysync_domain": "invoices", "paysync_entity_id": "INV-9"},
    )
    obs = _parse_one(payload, ctx)
    assert obs.status is S.DISPUTED
    assert obs.dispute == DisputeFact(dispute_id="358950", state="open")
    assert (obs.provider_ref, obs.provider_time, obs.amount_minor) == ("v3mjfgbnc19v97x", created, None)
    assert obs.entity == EntityRef(domain="invoices", entity_id="INV-9")


@pytest.mark.parametrize(
    "resolution, status, state",
    [
        ("declined", S.SUCCEEDED, "won"),
        ("merchant-accepted", S.DISPUTED, "lost"),
        ("auto-accepted", S.DISPUTED, "lost"),
    ],
)
def test_a_resolved_dispute(ctx, resolution, status, state):
    resolved = datetime(2026, 2, 12, 9, 30, tzinfo=UTC)
    payload = pb.paystack_dispute(
        "charge.dispute.resolve",
        reference="5qm4pv2mxs9rltp",
        id=358949,
        resolution=resolution,
        resolved_at=resolved,
    )
    obs = _parse_one(payload, ctx)
    assert (obs.status, obs.dispute) == (status, DisputeFact(dispute_id="358949", state=state))
    assert obs.provider_time == resolved


def test_a_resolution_paysync_does_not_know_says_nothing(ctx):
    obs = _parse_one(pb.paystack_dispute("charge.dispute.resolve", resolution="escalated"), ctx)
    assert (obs.status, obs.dispute) == (None, None)


@pytest.mark.parametrize("event", ["transfer.success", "subscription.create", "invoice.update"])
def test_other_events_are_unmapped(ctx, event):
    body = to_body(pb.paystack_event(event, {"reference": "x"}))
    assert adapter.parse(body, ctx).unmapped is True
    assert adapter.reference_hint(body) is None


@pytest.mark.parametrize(
    "mutate, reason",
    [
        (lambda p: p.pop("event"), "missing:event"),
        (lambda p: p.pop("data"), "missing:data"),
        (lambda p: p["data"].pop("reference"), "missing:data.reference"),
        (lambda p: p["data"].update(amount="50.00"), "type:data.amount"),
        (lambda p: p["data"].update(amount=None), "missing:data.amount"),
        (lambda p: p["data"].update(currency=566), "type:data.currency"),
    ],
)
def test_broken_charge_success_bodies_are_malformed(ctx, mutate, reason):
    payload = pb.paystack_charge_success()
    mutate(payload)
    with pytest.raises(MalformedPayload) as caught:
        adapter.parse(to_body(payload), ctx)
    assert caught.value.reason == reason


def test_a_refund_without_a_transaction_reference_is_malformed(ctx):
    payload = pb.paystack_refund()
    del payload["data"]["transaction_reference"]
    with pytest.raises(MalformedPayload, match="transaction_reference"):
        adapter.parse(to_body(payload), ctx)
