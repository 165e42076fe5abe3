"""Test and live: which mode credentials and gateway events are in, and what the projector refuses."""

from __future__ import annotations

import pytest

from paysync_core.credentials import MpesaCredentials, PaystackCredentials, StripeCredentials
from paysync_core.providers.modes import credentials_mode, mode_refusal
from paysync_core.providers.paystack import PaystackAdapter
from paysync_core.providers.stripe import StripeAdapter
from paysync_core.testing.builders import stripe as sb
from paysync_core.testing.builders import to_body
from paysync_core.testing.builders.paystack import paystack_charge_success


def _mpesa(api_base: str | None) -> MpesaCredentials:
    return MpesaCredentials(
        consumer_key="ck",
        consumer_secret="cs",
        shortcode="174379",
        passkey="pk",
        callback_token="tok",
        api_base=api_base,
    )


@pytest.mark.parametrize(
    ("credentials", "mode"),
    [
        (StripeCredentials(secret_key="sk_test_1", webhook_secrets=("whsec_1",)), "test"),
        (StripeCredentials(secret_key="rk_live_1", webhook_secrets=("whsec_1",)), "live"),
        (PaystackCredentials(secret_key="sk_live_1"), "live"),
        (PaystackCredentials(secret_key="sk_test_1"), "test"),
        (PaystackCredentials(secret_key="some-other-key"), None),
        (_mpesa("https://sandbox.safaricom.co.ke"), "test"),
        (_mpesa(None), "live"),  # the clients' default is production
        (_mpesa("https://api.safaricom.co.ke/"), "live"),
        (_mpesa("http://127.0.0.1:8080/mpesa"), None),  # a simulator: not known
        (None, None),
    ],
)
def test_credentials_say_their_mode(credentials, mode) -> None:
    assert credentials_mode(credentials) == mode


def test_an_observation_of_the_other_mode_is_refused_and_an_unknown_mode_refuses_nothing() -> None:
    assert mode_refusal("test", "live") == "live_observation_for_test_payment"
    assert mode_refusal("live", "test") == "test_observation_for_live_payment"
    assert [mode_refusal(p, o) for p, o in [("test", "test"), (None, "live"), ("live", None)]] == [None] * 3


@pytest.mark.parametrize("live", [True, False])
def test_a_stripe_event_carries_its_livemode_into_the_observation(ctx, live: bool) -> None:
    event = sb.stripe_event("checkout.session.completed", sb.checkout_session(), livemode=live)
    [obs] = StripeAdapter().parse(to_body(event), ctx).observations
    assert obs.mode == ("live" if live else "test")


@pytest.mark.parametrize("domain", ["live", "test"])
def test_a_paystack_event_carries_its_domain_into_the_observation(ctx, domain: str) -> None:
    event = paystack_charge_success()
    event["data"]["domain"] = domain
    [obs] = PaystackAdapter().parse(to_body(event), ctx).observations
    assert obs.mode == domain


def test_an_event_that_does_not_say_its_mode_has_none(ctx) -> None:
    event = sb.stripe_event("checkout.session.completed", sb.checkout_session())
    del event["livemode"]
    [obs] = StripeAdapter().parse(to_body(event), ctx).observations
    assert obs.mode is None
