"""Gateway clients against the gateway simulator over real HTTP: accounts, credentials, counters."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from paysync_core.credentials import MpesaCredentials, PaystackCredentials, StripeCredentials
from paysync_core.providers.clients import (
    DarajaGatewayClient,
    PaystackGatewayClient,
    RetryPolicy,
    StripeGatewayClient,
)
from paysync_gateway_sim import SimulatorClient
from paysync_gateway_sim.contracts import Account

#: Quick retries so the suite stays fast; Retry-After is still honoured in full.
FAST = RetryPolicy(max_attempts=4, base_delay=0.02, max_delay=0.2, max_retry_after=5.0, max_budget_wait=5.0)


def unique(prefix: str) -> str:
    """An id no other test (or earlier run against the same simulator) uses."""
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


@dataclass
class Sim:
    """The shared simulator, with the per-account counters the tests read."""

    client: SimulatorClient

    def requests(self, account: Account) -> int:
        """API requests the account has received (served or refused)."""
        return self.client.account_stats(account.id).api.requests

    def unauthenticated(self, provider: str) -> int:
        """Requests the gateway refused for want of valid credentials (all accounts)."""
        return self.client.stats().unauthenticated.get(provider, 0)


@pytest.fixture
def sim(gateway_sim: SimulatorClient) -> Sim:
    """The session's simulator."""
    return Sim(gateway_sim)


@pytest.fixture
def tenant() -> str:
    """A tenant id of paysync's shape."""
    return unique("t")


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    """The AsyncClient every client under test sends through."""
    async with httpx.AsyncClient(timeout=httpx.Timeout(10.0, connect=2.0)) as client:
        yield client


@dataclass
class Clients:
    """Builds the client under test for a simulator account, sending through `http`."""

    sim: Sim
    tenant: str
    http: httpx.AsyncClient

    def stripe(self, account: Account, **options: Any) -> StripeGatewayClient:
        """A Stripe client for a simulator account."""
        credentials = StripeCredentials(
            secret_key=account.secret_key or "",
            api_base=self.sim.client.stripe_base,
            webhook_secrets=(account.webhook_secret or "whsec_unused",),
        )
        return StripeGatewayClient(self.tenant, credentials, self.http, **{"policy": FAST, **options})

    def paystack(self, account: Account, **options: Any) -> PaystackGatewayClient:
        """A Paystack client for a simulator account."""
        credentials = PaystackCredentials(
            secret_key=account.secret_key or "", api_base=self.sim.client.paystack_base
        )
        return PaystackGatewayClient(self.tenant, credentials, self.http, **{"policy": FAST, **options})

    def daraja(
        self, account: Account, *, callback_token: str = "cb-token-1", **options: Any
    ) -> DarajaGatewayClient:
        """A Daraja client for a simulator app and till."""
        credentials = MpesaCredentials(
            consumer_key=account.consumer_key or "",
            consumer_secret=account.consumer_secret or "",
            shortcode=account.shortcode or "",
            till_number=account.till_number,
            passkey=account.passkey or "",
            callback_token=callback_token,
            api_base=self.sim.client.daraja_base,
        )
        return DarajaGatewayClient(self.tenant, credentials, self.http, **{"policy": FAST, **options})


@pytest.fixture
def clients(sim: Sim, tenant: str, http: httpx.AsyncClient) -> Clients:
    """Client builders for this test's tenant."""
    return Clients(sim, tenant, http)


@pytest.fixture
def stripe_account(sim: Sim) -> Account:
    """A fresh Stripe account, no rate limit so only injected faults refuse requests."""
    return sim.client.create_account("stripe", id=unique("stripe"), rate_limit=0)


@pytest.fixture
def paystack_account(sim: Sim) -> Account:
    """A fresh Paystack integration."""
    return sim.client.create_account("paystack", id=unique("paystack"), rate_limit=0)


@pytest.fixture
def mpesa_account(sim: Sim) -> Account:
    """A fresh Daraja app and till."""
    return sim.client.create_account("mpesa", id=unique("mpesa"), rate_limit=0)
