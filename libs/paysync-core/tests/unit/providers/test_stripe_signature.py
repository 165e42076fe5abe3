"""Stripe-Signature verification: HMAC-SHA256 over `t.body`, several secrets, tolerance."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import stripe as stripe_sdk

from paysync_core.contracts.common import Verdict
from paysync_core.credentials import StripeCredentials
from paysync_core.errors import AuthenticityError
from paysync_core.providers.stripe import StripeAdapter, sign_stripe
from paysync_core.testing.builders import stripe as sb
from paysync_core.testing.builders import to_body
from paysync_core.testing.builders.requests import webhook_request

SECRET = "whsec_current_0123456789"
OLD_SECRET = "whsec_previous_9876543210"
NOW = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
T = int(NOW.timestamp())

adapter = StripeAdapter()


def _body() -> bytes:
    return to_body(sb.stripe_event("payment_intent.succeeded", sb.payment_intent()))


def _creds(*secrets: str, tolerance: int = 300) -> StripeCredentials:
    return StripeCredentials(
        secret_key="sk_test_x", webhook_secrets=secrets or (SECRET,), tolerance_seconds=tolerance
    )


def _request(body: bytes, signature: str | None, *, received_at: datetime = NOW):
    headers = {"Stripe-Signature": signature} if signature is not None else {}
    return webhook_request(body, headers=headers, received_at=received_at)


def _reason(request, creds) -> str:
    with pytest.raises(AuthenticityError) as caught:
        adapter.authenticate(request, creds)
    return caught.value.reason


def test_a_valid_signature_is_verified():
    body = _body()
    assert adapter.authenticate(_request(body, sign_stripe(body, SECRET, T)), _creds()) is Verdict.VERIFIED


def test_a_tampered_body_is_refused():
    body = _body()
    signature = sign_stripe(body, SECRET, T)
    tampered = body.replace(b'"amount":2000', b'"amount":1')
    assert tampered != body
    assert _reason(_request(tampered, signature), _creds()) == "bad_signature"


def test_a_signature_made_with_another_secret_is_refused():
    body = _body()
    assert _reason(_request(body, sign_stripe(body, "whsec_attacker", T)), _creds()) == "bad_signature"


@pytest.mark.parametrize("signing_secret", [SECRET, OLD_SECRET])
def test_during_rotation_either_endpoint_secret_verifies(signing_secret):
    body = _body()
    request = _request(body, sign_stripe(body, signing_secret, T))
    assert adapter.authenticate(request, _creds(OLD_SECRET, SECRET)) is Verdict.VERIFIED


def test_after_rotation_the_retired_secret_no_longer_verifies():
    body = _body()
    assert _reason(_request(body, sign_stripe(body, OLD_SECRET, T)), _creds(SECRET)) == "bad_signature"


def test_any_matching_v1_among_several_is_enough():
    body = _body()
    good = sign_stripe(body, SECRET, T).split("v1=")[1]
    header = f"t={T},v1={'0' * 64},v1={good},v0={'f' * 64}"
    assert adapter.authenticate(_request(body, header), _creds()) is Verdict.VERIFIED


def test_a_v0_signature_alone_is_not_accepted():
    body = _body()
    legacy = sign_stripe(body, SECRET, T).replace("v1=", "v0=")
    assert _reason(_request(body, legacy), _creds()) == "malformed_signature_header"


@pytest.mark.parametrize("signed_offset", [-301, 301], ids=["stale", "future"])
def test_timestamps_outside_the_tolerance_are_refused(signed_offset):
    body = _body()
    request = _request(body, sign_stripe(body, SECRET, T + signed_offset))
    assert _reason(request, _creds()) == "timestamp_outside_tolerance"


@pytest.mark.parametrize("skew", [-300, 300, 0])
def test_timestamps_within_the_tolerance_are_accepted(skew):
    body = _body()
    request = _request(body, sign_stripe(body, SECRET, T + skew))
    assert adapter.authenticate(request, _creds()) is Verdict.VERIFIED


def test_the_tenants_tolerance_is_used():
    body = _body()
    request = _request(body, sign_stripe(body, SECRET, T - 60))
    assert _reason(request, _creds(SECRET, tolerance=30)) == "timestamp_outside_tolerance"


def test_a_replayed_old_delivery_is_refused_even_with_a_valid_signature():
    body = _body()
    request = _request(body, sign_stripe(body, SECRET, T), received_at=NOW + timedelta(hours=1))
    assert _reason(request, _creds()) == "timestamp_outside_tolerance"


@pytest.mark.parametrize("signature", [None, ""])
def test_a_missing_header_is_refused(signature):
    assert _reason(_request(_body(), signature), _creds()) == "missing_signature"


@pytest.mark.parametrize(
    "header",
    [
        "garbage",
        f"v1={'a' * 64}",  # no timestamp
        f"t={T}",  # no v1
        f"t=abc,v1={'a' * 64}",
        f"t={T},t={T},v1={'a' * 64}",  # two timestamps
        f"t=１２３,v1={'a' * 64}",  # full-width digits are not an epoch second
        f"t={'9' * 40},v1={'a' * 64}",
    ],
)
def test_a_malformed_header_is_refused(header):
    assert _reason(_request(_body(), header), _creds()) == "malformed_signature_header"


def test_non_ascii_signature_values_are_refused_not_crashed():
    assert _reason(_request(_body(), f"t={T},v1=ünïcödé"), _creds()) == "bad_signature"


def test_credentials_may_be_given_as_a_plain_mapping():
    body = _body()
    creds = {"secret_key": "sk_test_x", "webhook_secrets": [SECRET]}
    assert adapter.authenticate(_request(body, sign_stripe(body, SECRET, T)), creds) is Verdict.VERIFIED


def test_our_signatures_match_the_official_sdk_in_both_directions():
    body = _body()
    # The SDK verifies what we sign...
    assert stripe_sdk.WebhookSignature.verify_header(body.decode(), sign_stripe(body, SECRET, T), SECRET)
    # ...and we verify what the SDK signs.
    sdk_header = stripe_sdk.WebhookSignature.generate_signature_header(body.decode(), SECRET, timestamp=T)
    assert adapter.authenticate(_request(body, sdk_header), _creds()) is Verdict.VERIFIED


def test_stripe_has_no_ip_allowlist():
    assert adapter.ip_allowed(_request(_body(), None), _creds()) is True
