"""paysync-level fixtures on top of the raw servers: a migrated schema, topics, a tenant."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from cryptography.fernet import Fernet

from paysync_core.credentials import GatewayCredentials, MpesaCredentials, PaystackCredentials, StripeCredentials
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
    """A tenant with an API key and its gateways' secrets (those configured)."""

    id: str
    api_key: str
    stripe_webhook_secret: str
    paystack_secret_key: str = ""
    mpesa_callback_token: str = ""
    gateways: tuple[str, ...] = ("stripe", "paystack", "mpesa")


def create_tenant(url: str, keys: str, gateways: tuple[str, ...] = ("stripe", "paystack", "mpesa")) -> TestTenant:
    """A new tenant with fresh secrets for the given gateways, and an API key."""
    tenant_id = f"t-{uuid.uuid4().hex[:12]}"
    secrets = {
        "stripe": f"whsec_{uuid.uuid4().hex}",
        "paystack": f"sk_test_{uuid.uuid4().hex}",
        "mpesa": uuid.uuid4().hex,
    }
    credentials = GatewayCredentials(
        stripe=StripeCredentials(secret_key="sk_test_x", webhook_secrets=(secrets["stripe"],))
        if "stripe" in gateways else None,
        paystack=PaystackCredentials(secret_key=secrets["paystack"]) if "paystack" in gateways else None,
        mpesa=MpesaCredentials(
            consumer_key="ck_test", consumer_secret="cs_test", shortcode="174379",
            passkey="passkey_test", callback_token=secrets["mpesa"],
        ) if "mpesa" in gateways else None,
    )

    async def run() -> str:
        engine = make_engine(url, pool_size=1)
        try:
            async with engine.begin() as conn:
                await tenant_repo.create_tenant(conn, tenant_id, "Test tenant")
                await tenant_repo.set_credentials(conn, tenant_id, credentials, CredentialsCipher(keys))
                return await tenant_repo.issue_api_key(conn, tenant_id)
        finally:
            await engine.dispose()

    key = run_sync(run())
    return TestTenant(tenant_id, key, secrets["stripe"], secrets["paystack"], secrets["mpesa"], gateways)


#: Kept for callers written before gateways could be chosen.
_create_tenant = create_tenant


@pytest.fixture
def tenant(migrated_database: str, credentials_keys: str) -> TestTenant:
    """A fresh tenant with all three gateways, so tests never see each other's payments."""
    return create_tenant(migrated_database, credentials_keys)
