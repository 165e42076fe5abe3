"""The Events reader: requests Stripe's own mock accepts; error answers read as the SDK path reads them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest

from paysync_core.credentials import StripeCredentials
from paysync_core.errors import GatewayError
from paysync_core.providers.clients import GatewayRejected, NotFoundAtGateway, RetryPolicy
from paysync_dev.stripe_mock import SECRET_KEY, StripeMock
from paysync_gateway_sim import SimulatorClient
from paysync_gateway_sim.testing import ScriptedGateway
from paysync_reconciler.stripe_events import StripeEventPages

pytestmark = pytest.mark.integration

FAST = RetryPolicy(max_attempts=4, base_delay=0.01, max_delay=0.05)
_SERVER_ERROR = {"error": {"type": "api_error", "message": "An unknown error occurred"}}


async def _first_page(api_base: str, secret_key: str = "sk_test_scripted") -> None:
    credentials = StripeCredentials(
        secret_key=secret_key, webhook_secrets=("whsec_unused",), api_base=api_base
    )
    now = datetime.now(UTC)
    async with httpx.AsyncClient() as http:
        pages = StripeEventPages(credentials, http, policy=FAST, budget=None, timeout=httpx.Timeout(5.0))
        async for _ in pages.pages(now - timedelta(minutes=5), now, ["payment_intent.succeeded"]):
            return


@pytest.mark.parametrize("advice, attempts, retryable", [("false", 1, False), ("true", 4, True)])
async def test_a_500_is_retried_only_when_stripe_should_retry_allows(
    scripted_gateway: ScriptedGateway, advice: str, attempts: int, retryable: bool
):
    scripted_gateway.script("GET", "/v1/events", 500, _SERVER_ERROR, {"Stripe-Should-Retry": advice})
    with pytest.raises(GatewayError) as caught:
        await _first_page(scripted_gateway.url)
    assert scripted_gateway.count("GET", "/v1/events") == attempts
    assert caught.value.retryable is retryable and caught.value.status_code == 500


async def test_an_unrecognized_url_is_a_rejection(gateway_sim: SimulatorClient):
    account = gateway_sim.create_account("stripe", rate_limit=0)
    with pytest.raises(GatewayError) as caught:
        await _first_page(f"{gateway_sim.stripe_base}/v1", account.secret_key or "")  # one /v1 too many
    assert isinstance(caught.value, GatewayRejected) and not isinstance(caught.value, NotFoundAtGateway)
    assert caught.value.status_code == 404


async def test_the_events_readers_requests_are_accepted_by_stripes_own_mock(stripe_mock: StripeMock):
    """Every filter the reader sends (types[n], created[gte|lte], limit), checked against Stripe's spec."""
    now = datetime.now(UTC)
    credentials = StripeCredentials(
        secret_key=SECRET_KEY, webhook_secrets=("whsec_unused",), api_base=stripe_mock.url
    )
    async with httpx.AsyncClient() as http:
        pages = StripeEventPages(credentials, http, policy=FAST, budget=None, timeout=httpx.Timeout(5.0))
        read = [events async for _, events in pages.pages(now - timedelta(days=1), now)]
    assert read and all(events for events in read)
