"""What the clients make of gateway answers the simulator does not give on purpose.

Each answer is one a real gateway, a proxy in front of it or an independent mock gives; the
simulator or a scripted HTTP server (`scripted_gateway`) sends it over real HTTP.
"""

from __future__ import annotations

import httpx
import pytest

from paysync_core.credentials import MpesaCredentials, PaystackCredentials, StripeCredentials
from paysync_core.errors import GatewayError
from paysync_core.providers.clients import (
    DarajaGatewayClient,
    GatewayRejected,
    NotFoundAtGateway,
    PaystackGatewayClient,
    RetryPolicy,
    StripeGatewayClient,
)
from paysync_core.providers.clients.mpesa import QUERY_PATH
from paysync_gateway_sim.testing import ScriptedGateway

pytestmark = pytest.mark.integration

#: The policy's attempts, quickly (no Retry-After in these answers).
FAST = RetryPolicy(max_attempts=4, base_delay=0.01, max_delay=0.05)

_SERVER_ERROR = {"error": {"type": "api_error", "message": "An unknown error occurred"}}


def _stripe_credentials(api_base: str, secret_key: str = "sk_test_scripted") -> StripeCredentials:
    return StripeCredentials(secret_key=secret_key, webhook_secrets=("whsec_unused",), api_base=api_base)


# -- defect 1: only Stripe's `resource_missing` means "no such payment" ---------------------------


async def test_an_unrecognized_stripe_url_is_a_rejection_not_a_missing_payment(clients, sim, stripe_account):
    """A wrong API base (here one `/v1` too many, as a misrouting proxy makes) gets Stripe's
    404 "Unrecognized request URL" with no error code: that must not say the payment is unknown."""
    misrouted = _stripe_credentials(f"{sim.client.stripe_base}/v1", stripe_account.secret_key or "")
    client = StripeGatewayClient(clients.tenant, misrouted, clients.http, policy=FAST)
    ref = sim.client.create_payment(stripe_account.id, kind="payment_intent").ref

    with pytest.raises(GatewayError) as caught:
        await client.observe(ref)
    assert not isinstance(caught.value, NotFoundAtGateway)
    assert isinstance(caught.value, GatewayRejected) and caught.value.status_code == 404


async def test_a_payment_stripe_does_not_know_is_still_not_found(clients, sim, stripe_account):
    client = clients.stripe(stripe_account)
    with pytest.raises(NotFoundAtGateway) as caught:
        await client.observe("pi_3NotAtThisAccount")
    assert caught.value.status_code == 404 and caught.value.reference == "pi_3NotAtThisAccount"


# -- defect 2: an invoice names its PaymentIntent only when `payments` is expanded ---------------


async def test_a_paid_invoice_is_observed_with_its_payment_intent_alias(clients, sim, stripe_account):
    client = clients.stripe(stripe_account)
    invoice = sim.client.create_payment(stripe_account.id, kind="invoice", amount_minor=5000).ref
    sim.client.pay(stripe_account.id, invoice)

    paid = await client.observe(invoice)

    intent = sim.client.payment(stripe_account.id, invoice).object["payments"]["data"][0]["payment"]
    assert paid.aliases == (intent["payment_intent"],)


# -- defect 3: `Stripe-Should-Retry` decides (the reconciler's Events reader: its own tests) -----


@pytest.mark.parametrize("advice, attempts, retryable", [("false", 1, False), ("true", 4, True)])
async def test_a_stripe_500_is_retried_as_stripe_should_retry_says(
    clients, scripted_gateway: ScriptedGateway, advice: str, attempts: int, retryable: bool
):
    scripted_gateway.script(
        "GET", "/v1/payment_intents/pi_1", 500, _SERVER_ERROR, {"Stripe-Should-Retry": advice}
    )
    client = StripeGatewayClient(
        clients.tenant, _stripe_credentials(scripted_gateway.url), clients.http, policy=FAST
    )
    with pytest.raises(GatewayError) as caught:
        await client.observe("pi_1")
    assert scripted_gateway.count("GET", "/v1/payment_intents/pi_1") == attempts
    assert caught.value.retryable is retryable and caught.value.status_code == 500


# -- defect 4: the observation is about the id asked for -----------------------------------------


def _daraja(tenant: str, base: str, http: httpx.AsyncClient) -> DarajaGatewayClient:
    credentials = MpesaCredentials(
        consumer_key="ck",
        consumer_secret="cs",
        shortcode="174379",
        passkey="pk",
        callback_token="cb",
        api_base=base,
    )
    return DarajaGatewayClient(tenant, credentials, http, policy=FAST)


async def test_a_daraja_answer_about_another_push_is_a_gateway_error(
    clients, scripted_gateway: ScriptedGateway
):
    scripted_gateway.script("GET", "/oauth/v1/generate", 200, {"access_token": "tok", "expires_in": "3599"})
    scripted_gateway.script(
        "POST",
        QUERY_PATH,
        200,
        {
            "ResponseCode": "0",
            "ResponseDescription": "The service request has been accepted successsfully",
            "MerchantRequestID": "22205-34066-1",
            "CheckoutRequestID": "ws_CO_Y_someone_else",
            "ResultCode": "0",
            "ResultDesc": "The service request is processed successfully.",
        },
    )
    client = _daraja(clients.tenant, scripted_gateway.url, clients.http)

    with pytest.raises(GatewayError) as caught:
        await client.observe("ws_CO_X_asked_for")
    assert not caught.value.retryable and "another CheckoutRequestID" in str(caught.value)


async def test_a_daraja_answer_about_the_push_asked_for_is_observed(
    clients, scripted_gateway: ScriptedGateway
):
    scripted_gateway.script("GET", "/oauth/v1/generate", 200, {"access_token": "tok", "expires_in": "3599"})
    scripted_gateway.script(
        "POST",
        QUERY_PATH,
        200,
        {
            "ResponseCode": "0",
            "MerchantRequestID": "22205-34066-1",
            "CheckoutRequestID": "ws_CO_X_asked_for",
            "ResultCode": "1032",
            "ResultDesc": "Request cancelled by user",
        },
    )
    seen = await _daraja(clients.tenant, scripted_gateway.url, clients.http).observe("ws_CO_X_asked_for")
    assert seen.provider_ref == "ws_CO_X_asked_for" and seen.verified


def _paystack(tenant: str, base: str, http: httpx.AsyncClient) -> PaystackGatewayClient:
    return PaystackGatewayClient(
        tenant, PaystackCredentials(secret_key="sk_test_scripted", api_base=base), http, policy=FAST
    )


async def test_a_paystack_verify_answer_about_another_reference_is_a_gateway_error(
    clients, scripted_gateway: ScriptedGateway
):
    scripted_gateway.script(
        "GET",
        "/transaction/verify/MY-REF",
        200,
        {
            "status": True,
            "message": "Verification successful",
            "data": {
                "id": 4099260516,
                "status": "success",
                "reference": "SOMEONE-ELSE",
                "amount": 40333,
                "currency": "NGN",
                "paid_at": "2024-08-22T09:15:02.000Z",
                "metadata": "",
            },
        },
    )
    with pytest.raises(GatewayError) as caught:
        await _paystack(clients.tenant, scripted_gateway.url, clients.http).observe("MY-REF")
    assert not caught.value.retryable and "another reference" in str(caught.value)


# -- defect 5: initialize falls back to our reference --------------------------------------------


async def test_initialize_without_a_reference_in_the_answer_registers_ours(
    clients, scripted_gateway: ScriptedGateway
):
    scripted_gateway.script(
        "POST",
        "/transaction/initialize",
        200,
        {
            "status": True,
            "message": "Authorization URL created",
            "data": {
                "authorization_url": "https://checkout.paystack.com/0peioxfhpn",
                "access_code": "0peioxfhpn",
            },
        },
    )
    started = await _paystack(clients.tenant, scripted_gateway.url, clients.http).initialize_transaction(
        email="customer@example.com",
        amount_minor=50000,
        reference="BOOKING-77",
        callback_url="https://a.test/cb",
        domain="bookings",
        entity_id="77",
    )
    assert started.provider_ref == "BOOKING-77"
    assert started.checkout_url == "https://checkout.paystack.com/0peioxfhpn"


# -- error answers: only Paystack's own "not found" means "no such payment" -----------------------


async def test_a_bare_404_from_a_wrong_paystack_base_is_a_rejection_not_a_missing_payment(
    clients, scripted_gateway: ScriptedGateway
):
    """Paystack says a reference is unknown in its envelope (`status: false`, `code:
    transaction_not_found`); a 404 without it is a path nobody serves (a wrong base URL, a proxy)."""
    client = _paystack(clients.tenant, scripted_gateway.url, clients.http)  # nothing scripted: bare 404s
    with pytest.raises(GatewayError) as caught:
        await client.observe("MY-REF")
    assert not isinstance(caught.value, NotFoundAtGateway)
    assert isinstance(caught.value, GatewayRejected) and caught.value.status_code == 404


async def test_paystack_s_own_not_found_answer_is_still_a_missing_payment(
    clients, scripted_gateway: ScriptedGateway
):
    scripted_gateway.script(
        "GET",
        "/transaction/verify/MY-REF",
        400,
        {
            "status": False,
            "message": "Transaction reference not found",
            "type": "validation_error",
            "code": "transaction_not_found",
            "meta": {"nextStep": "Ensure that you're passing the reference of a transaction that exists"},
        },
    )
    with pytest.raises(NotFoundAtGateway) as caught:
        await _paystack(clients.tenant, scripted_gateway.url, clients.http).observe("MY-REF")
    assert caught.value.reference == "MY-REF" and caught.value.status_code == 400
