"""paysync-level fixtures on top of the raw servers: a migrated schema, topics, a tenant."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from cryptography.fernet import Fernet

from paysync_core.credentials import GatewayCredentials, StripeCredentials
from paysync_core.crypto import CredentialsCipher
from paysync_core.db import tenants as tenant_repo
from paysync_core.db.engine import make_engine, upgrade
from paysync_core.kafka import provision_topics
from paysync_dev import postgres
from paysync_dev._aio import run_sync


@pytest.fixture(scope="session")
def migrated_database(database_url: str) -> Iterator[str]:
    """A database of its own for this test session, at the newest schema."""
    name = f"paysync_test_{uuid.uuid4().hex[:10]}"
    url = postgres.create_database(name, base_url=database_url)
    upgrade(url)
    yield url
    postgres.drop_database(name, base_url=database_url)


@pytest.fixture(scope="session")
def kafka_topics(kafka_bootstrap: str) -> str:
    """Every paysync topic exists on the test broker; returns the bootstrap address."""
    run_sync(provision_topics(kafka_bootstrap))
    return kafka_bootstrap


@pytest.fixture(scope="session")
def credentials_keys() -> str:
    """The credentials-encryption key every service of this test session uses."""
    return Fernet.generate_key().decode()


@dataclass(frozen=True)
class TestTenant:
    """A tenant with an API key and a Stripe webhook secret."""

    id: str
    api_key: str
    stripe_webhook_secret: str


def _create_tenant(url: str, keys: str) -> TestTenant:
    tenant = TestTenant(
        id=f"t-{uuid.uuid4().hex[:12]}",
        api_key="",
        stripe_webhook_secret=f"whsec_{uuid.uuid4().hex}",
    )

    async def run() -> str:
        engine = make_engine(url, pool_size=1)
        try:
            async with engine.begin() as conn:
                await tenant_repo.create_tenant(conn, tenant.id, "Test tenant")
                await tenant_repo.set_credentials(
                    conn,
                    tenant.id,
                    GatewayCredentials(
                        stripe=StripeCredentials(
                            secret_key="sk_test_x", webhook_secrets=(tenant.stripe_webhook_secret,)
                        )
                    ),
                    CredentialsCipher(keys),
                )
                return await tenant_repo.issue_api_key(conn, tenant.id)
        finally:
            await engine.dispose()

    key = run_sync(run())
    return TestTenant(tenant.id, key, tenant.stripe_webhook_secret)


@pytest.fixture
def tenant(migrated_database: str, credentials_keys: str) -> TestTenant:
    """A fresh tenant, so tests never see each other's payments."""
    return _create_tenant(migrated_database, credentials_keys)
