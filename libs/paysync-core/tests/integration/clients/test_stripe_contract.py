"""Every request the Stripe client makes, checked by Stripe's own mock (stripe-mock, Stripe's OpenAPI spec).

stripe-mock answers 400 to any parameter or value the spec does not allow; the client turns a
400 into GatewayRejected, so a request Stripe would refuse fails its test. Each retrieval is
answered with Stripe's own fixture object, which must parse through our adapters.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
import stripe

from paysync_core.contracts.common import Provider
from paysync_core.credentials import StripeCredentials
from paysync_core.providers.clients import RetryPolicy, StripeGatewayClient
from paysync_core.providers.clients.http import GatewayHttp
from paysync_core.providers.clients.stripe import MAPPED_EVENT_TYPES, checkout_session_params
from paysync_core.providers.clients.stripe_transport import PaysyncStripeHttpClient
from paysync_dev.stripe_mock import SECRET_KEY, StripeMock

pytestmark = pytest.mark.integration

ONCE = RetryPolicy(max_attempts=1)
_CHECKOUT = {
    "amount_minor": 4500,
    "currency": "KES",
    "product_name": "Brake pads",
    "success_url": "https://shop.test/ok",
    "cancel_url": "https://shop.test/cancel",
    "domain": "workshop_jobs",
    "entity_id": "job-17",
    "metadata": {"garage": "north"},
    "customer_email": "owner@example.com",
}


@pytest.fixture
def client(stripe_mock: StripeMock, http: httpx.AsyncClient) -> StripeGatewayClient:
    """Our Stripe client, pointed at stripe-mock."""
    credentials = StripeCredentials(
        secret_key=SECRET_KEY, webhook_secrets=("whsec_unused",), api_base=stripe_mock.url
    )
    return StripeGatewayClient("t-contract", credentials, http, policy=ONCE)


async def test_retrievals_are_accepted_and_stripes_fixture_objects_parse(client: StripeGatewayClient):
    session = await client.observe("cs_test_contract")
    intent = await client.observe("pi_contract")
    invoice = await client.observe("in_contract")  # with expand[]=payments
    for seen in (session, intent, invoice):
        assert seen.provider is Provider.STRIPE and seen.verified
    # stripe-mock echoes the id asked for into its fixture object.
    assert (session.provider_ref, intent.provider_ref, invoice.provider_ref) == (
        "cs_test_contract",
        "pi_contract",
        "in_contract",
    )


async def test_event_lists_with_every_filter_and_paging_are_accepted(client: StripeGatewayClient):
    now = datetime.now(UTC).replace(microsecond=0)
    events = [
        event
        async for event in client.list_events(
            created_gte=now - timedelta(days=3), created_lte=now, types=MAPPED_EVENT_TYPES, page_size=100
        )
    ]
    assert events  # stripe-mock answers every list with its fixture Event
    for event in events:
        client.observation_for_event(event)  # parses, or is a type paysync ignores: never an error


async def test_checkout_session_creation_with_every_parameter_is_accepted(client: StripeGatewayClient):
    started = await client.create_checkout_session(**_CHECKOUT, idempotency_key="contract-checkout-1")
    assert started.provider_ref.startswith("cs_")


async def test_a_made_up_parameter_is_refused_so_the_check_can_fail(
    stripe_mock: StripeMock, http: httpx.AsyncClient
):
    sdk = stripe.StripeClient(
        SECRET_KEY,
        base_addresses={"api": stripe_mock.url},
        max_network_retries=0,
        http_client=PaysyncStripeHttpClient(GatewayHttp(http, Provider.STRIPE, ONCE)),
    )
    params = checkout_session_params(**_CHECKOUT)
    await sdk.v1.checkout.sessions.create_async(params)  # as the client sends it: accepted

    misspelled = {**params, "paymnet_intent_data": params["payment_intent_data"]}
    with pytest.raises(stripe.InvalidRequestError) as caught:
        await sdk.v1.checkout.sessions.create_async(misspelled)
    assert caught.value.http_status == 400


#: The fields of each object our adapters read (providers/stripe.py, clients/stripe_objects.py).
_READ = {
    "checkout_session": (
        "id",
        "status",
        "payment_status",
        "amount_total",
        "currency",
        "payment_intent",
        "metadata",
    ),
    "payment_intent": (
        "id",
        "status",
        "amount",
        "amount_received",
        "currency",
        "metadata",
        "canceled_at",
        "last_payment_error",
        "latest_charge",
    ),
    "invoice": (
        "id",
        "status",
        "amount_due",
        "amount_paid",
        "currency",
        "metadata",
        "next_payment_attempt",
        "status_transitions",
        "payments",
    ),
}


def _shape(value: object) -> object:
    """A value's JSON type, nested for objects; None stands for a nullable field left empty."""
    if isinstance(value, dict):
        return {key: _shape(item) for key, item in value.items()}
    return None if value is None else type(value).__name__


@pytest.mark.parametrize("kind", sorted(_READ))
def test_the_simulator_answers_what_we_read_with_stripes_keys_and_types(
    kind: str, stripe_mock: StripeMock, gateway_sim, http_sync: httpx.Client
):
    account = gateway_sim.create_account("stripe", rate_limit=0)
    ref = gateway_sim.create_payment(account.id, kind=kind).ref
    gateway_sim.pay(account.id, ref)
    path = {
        "checkout_session": "checkout/sessions",
        "payment_intent": "payment_intents",
        "invoice": "invoices",
    }[kind]
    params = {"expand[]": "payments"} if kind == "invoice" else {}
    ours = http_sync.get(
        f"{gateway_sim.stripe_base}/v1/{path}/{ref}",
        params=params,
        headers={"Authorization": f"Bearer {account.secret_key}"},
    ).json()
    stripes = http_sync.get(
        f"{stripe_mock.url}/v1/{path}/{ref}", params=params, headers={"Authorization": f"Bearer {SECRET_KEY}"}
    ).json()
    for key in _READ[kind]:
        assert key in ours and key in stripes, key
        mine, theirs = _shape(ours[key]), _shape(stripes[key])
        if mine is not None and theirs is not None and not isinstance(mine, dict):
            assert mine == theirs, (key, mine, theirs)
        if isinstance(mine, dict) and isinstance(theirs, dict) and key == "status_transitions":
            assert set(mine) == set(theirs), key


@pytest.fixture
def http_sync() -> Iterator[httpx.Client]:
    """A plain synchronous HTTP client."""
    with httpx.Client(timeout=10) as client:
        yield client
