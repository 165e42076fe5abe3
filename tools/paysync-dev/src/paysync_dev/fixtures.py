"""paysync-level fixtures on the raw servers: a migrated schema, topics, tenants (at the simulator or not)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet
from sqlalchemy.ext.asyncio import AsyncEngine

from paysync_core.credentials import (
    GatewayCredentials,
    MpesaCredentials,
    PaystackCredentials,
    StripeCredentials,
)
from paysync_core.crypto import CredentialsCipher
from paysync_core.db import tenants as tenant_repo
from paysync_core.db.engine import make_engine, upgrade
from paysync_core.kafka import provision_topics
from paysync_core.topics import TopicSpec
from paysync_dev import postgres
from paysync_dev._aio import run_sync
from paysync_dev.kafka import KafkaProcess
from paysync_dev.pg_proxy import PostgresProxy
from paysync_dev.simulator import NOWHERE, simulator_credentials
from paysync_gateway_sim import SimulatorClient
from paysync_gateway_sim.contracts import Account


@contextmanager
def new_migrated_database(database_url: str) -> Iterator[str]:
    """A new database on the server of `database_url`, at the newest schema; dropped on exit."""
    name = f"paysync_test_{uuid.uuid4().hex[:10]}"
    url = postgres.create_database(name, base_url=database_url)
    upgrade(url)
    yield url
    postgres.drop_database(name, base_url=database_url)


@pytest.fixture(scope="session")
def migrated_database(database_url: str) -> Iterator[str]:
    """A database of its own for this test session, at the newest schema."""
    with new_migrated_database(database_url) as url:
        yield url


@contextmanager
def broker_of_its_own(base_dir: Path, specs: Sequence[TopicSpec]) -> Iterator[KafkaProcess]:
    """A new broker in `base_dir` on free ports with the topics of `specs`, stopped on exit.

    For a test that stops the broker, or needs one no consumer group has ever used: no other test sees it.
    """
    broker = KafkaProcess.on_free_ports(base_dir)
    broker.start()
    try:
        run_sync(provision_topics(broker.bootstrap, specs=specs))
        yield broker
    finally:
        broker.stop()


@pytest.fixture
async def database_proxy(migrated_database: str) -> AsyncIterator[PostgresProxy]:
    """The test database through a proxy of this test's own, which can play a restart (`restarting()`)."""
    proxy = PostgresProxy(migrated_database)
    await proxy.start()
    try:
        yield proxy
    finally:
        await proxy.close()


@pytest.fixture(scope="session")
def kafka_topics(kafka_bootstrap: str) -> str:
    """Every paysync topic exists on the test broker; returns the bootstrap address."""
    run_sync(provision_topics(kafka_bootstrap))
    return kafka_bootstrap


@pytest.fixture(scope="session")
def credentials_keys() -> str:
    """The credentials-encryption key every service of this test session uses."""
    return Fernet.generate_key().decode()


ALL_GATEWAYS: tuple[str, ...] = ("stripe", "paystack", "mpesa")


@dataclass(frozen=True)
class TestTenant:
    """A tenant with an API key and its gateways' secrets (those configured).

    Made with a gateway simulator, its credentials point at simulator accounts (`account(provider)`)
    that hold the same secrets, so the reconciler asks the simulator and never a real gateway.
    """

    __test__ = False  # not a test class, though its name starts with Test

    id: str
    api_key: str
    stripe_webhook_secret: str
    paystack_secret_key: str = ""
    mpesa_callback_token: str = ""
    gateways: tuple[str, ...] = ALL_GATEWAYS
    accounts: Mapping[str, Account] = field(default_factory=dict)

    def account(self, provider: str) -> Account:
        """The simulator account of one gateway."""
        return self.accounts[provider]

    @property
    def auth(self) -> dict[str, str]:
        """The headers of a request to the API made with this tenant's API key."""
        return {"Authorization": f"Bearer {self.api_key}"}


def stripe_registration(**overrides: object) -> dict[str, Any]:
    """A `POST /v1/payments` body for a new Stripe Checkout Session of a new workshop job."""
    body: dict[str, Any] = {
        "provider": "stripe",
        "provider_ref": f"cs_test_{uuid.uuid4().hex}",
        "domain": "jobs",
        "entity_id": f"job-{uuid.uuid4().hex[:6]}",
        "amount_minor": 2500,
        "currency": "USD",
    }
    return body | overrides


def _placeholder_credentials(
    providers: tuple[str, ...], webhook_secret: str, callback_token: str
) -> GatewayCredentials:
    """Credentials that verify webhooks and whose gateway calls go nowhere (never to a real gateway)."""
    return GatewayCredentials(
        stripe=StripeCredentials(secret_key="sk_test_x", webhook_secrets=(webhook_secret,), api_base=NOWHERE)  # noqa: S106 - a test placeholder whose calls go nowhere
        if "stripe" in providers
        else None,
        paystack=PaystackCredentials(secret_key=f"sk_test_{uuid.uuid4().hex}", api_base=NOWHERE)
        if "paystack" in providers
        else None,
        mpesa=MpesaCredentials(
            consumer_key="ck_test",
            consumer_secret="cs_test",  # noqa: S106 - a test placeholder whose calls go nowhere
            shortcode="174379",
            passkey="passkey_test",
            callback_token=callback_token,
            api_base=NOWHERE,
        )
        if "mpesa" in providers
        else None,
    )


async def create_gateway_tenant(
    engine: AsyncEngine,
    keys: str,
    sim: SimulatorClient | None,
    providers: tuple[str, ...] = ALL_GATEWAYS,
    *,
    rate_limits: Mapping[str, float | None] | None = None,
    faults: Mapping[str, Mapping[str, Any]] | None = None,
    account_specs: Mapping[str, Mapping[str, Any]] | None = None,
) -> TestTenant:
    """A new tenant with fresh secrets for `providers` and an API key.

    With a simulator: an account there per gateway (its webhooks go nowhere unless a test says so;
    `faults`, `rate_limits` and other account fields, e.g. an M-Pesa `till_number`, per provider), and
    credentials pointing at it. Without one: placeholder
    credentials that verify webhooks, and whose gateway calls go nowhere (never to a real gateway).
    """
    tenant_id = f"t-{uuid.uuid4().hex[:12]}"
    webhook_secret, callback_token = f"whsec_{uuid.uuid4().hex}", uuid.uuid4().hex
    accounts: dict[str, Account] = {}
    if sim is not None:
        for provider in providers:
            spec: dict[str, Any] = {
                "id": f"{provider}-{uuid.uuid4().hex[:10]}",
                **(account_specs or {}).get(provider, {}),
            }
            if provider == "stripe":
                spec["webhook_secret"] = webhook_secret
            if rate_limits and provider in rate_limits:
                spec["rate_limit"] = rate_limits[provider]
            account = sim.create_account(provider, **spec)
            if faults and provider in faults:
                account = sim.set_faults(account.id, **faults[provider])
            accounts[provider] = account
        credentials = simulator_credentials(
            sim, accounts, stripe_webhook_secret=webhook_secret, callback_token=callback_token
        )
    else:
        credentials = _placeholder_credentials(providers, webhook_secret, callback_token)
    async with engine.begin() as conn:
        await tenant_repo.create_tenant(conn, tenant_id, "Test tenant")
        await tenant_repo.set_credentials(conn, tenant_id, credentials, CredentialsCipher(keys))
        api_key = await tenant_repo.issue_api_key(conn, tenant_id)
    paystack_key = credentials.paystack.secret_key.get_secret_value() if credentials.paystack else ""
    return TestTenant(
        tenant_id, api_key, webhook_secret, paystack_key, callback_token, tuple(providers), accounts
    )


def create_tenant(
    url: str, keys: str, gateways: tuple[str, ...] = ALL_GATEWAYS, *, sim: SimulatorClient | None = None
) -> TestTenant:
    """A new tenant with fresh secrets for the given gateways, and an API key (see create_gateway_tenant)."""

    async def run() -> TestTenant:
        engine = make_engine(url, pool_size=1)
        try:
            return await create_gateway_tenant(engine, keys, sim, gateways)
        finally:
            await engine.dispose()

    return run_sync(run())


#: Kept for callers written before gateways could be chosen.
_create_tenant = create_tenant


@pytest.fixture
def tenant(migrated_database: str, credentials_keys: str) -> TestTenant:
    """A fresh tenant with all three gateways, so tests never see each other's payments."""
    return create_tenant(migrated_database, credentials_keys)
