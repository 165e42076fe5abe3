"""The reconciler forgets a tenant's cached credentials when they change (NOTIFY paysync_tenants), and
every tenant's when its LISTEN connection comes back: a change notified while it was away (a database
restart, a failover) is not served stale until the cache's time-to-live runs out."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from paysync_core.crypto import CredentialsCipher
from paysync_core.db import tenants as tenant_repo
from paysync_core.settings import CommonSettings
from paysync_dev.fixtures import TestTenant
from paysync_dev.pg_proxy import PostgresProxy
from paysync_dev.service_fixtures import wait_until
from paysync_reconciler.gateways import GatewayDirectory, follow_credential_changes
from paysync_reconciler.settings import ReconcilerSettings

pytestmark = pytest.mark.integration


@pytest.fixture
async def directory(engine: AsyncEngine, credentials_keys: str) -> GatewayDirectory:
    """The reconciler's credentials cache, kept for an hour unless forgotten."""
    common = CommonSettings(credentials_keys=credentials_keys)
    settings = ReconcilerSettings(common=common, credentials_ttl_seconds=3600)
    return GatewayDirectory(engine, CredentialsCipher(credentials_keys), settings)


@pytest.fixture
async def following(database_proxy: PostgresProxy, directory: GatewayDirectory) -> AsyncIterator[None]:
    """The reconciler's LISTEN for credential changes, through the proxy."""
    task = asyncio.create_task(follow_credential_changes(database_proxy.url, directory))
    yield
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def rotate_stripe_key(engine: AsyncEngine, cipher: CredentialsCipher, tenant: str, key: str) -> None:
    """Set the tenant's Stripe secret key, as `paysync tenants set-credentials` does (NOTIFY at commit)."""
    async with engine.begin() as conn:
        credentials = await tenant_repo.load_credentials(conn, tenant, cipher)
        assert credentials.stripe is not None
        stripe = credentials.stripe.model_validate({**credentials.stripe.model_dump(), "secret_key": key})
        await tenant_repo.set_credentials(
            conn, tenant, credentials.model_copy(update={"stripe": stripe}), cipher
        )


async def stripe_key(directory: GatewayDirectory, tenant: str) -> str:
    credentials = await directory.credentials(tenant)
    assert credentials.stripe is not None
    return credentials.stripe.secret_key.get_secret_value()


async def test_a_change_notified_while_the_listener_was_away_is_not_served_stale(
    following: None,
    directory: GatewayDirectory,
    database_proxy: PostgresProxy,
    engine: AsyncEngine,
    credentials_keys: str,
    tenant: TestTenant,
) -> None:
    cipher = CredentialsCipher(credentials_keys)

    async def reads(key: str) -> bool:
        return await stripe_key(directory, tenant.id) == key

    # Listening: a change is forgotten as it is notified (which also shows the LISTEN is connected).
    await stripe_key(directory, tenant.id)
    await rotate_stripe_key(engine, cipher, tenant.id, "sk_test_first")
    await wait_until(lambda: reads("sk_test_first"), 30, "the notified change to be read", every=0.05)

    await database_proxy.down()  # the LISTEN connection is cut and cannot come back yet
    await rotate_stripe_key(engine, cipher, tenant.id, "sk_test_second")  # notified to nobody
    assert await stripe_key(directory, tenant.id) == "sk_test_first"  # cached, the change unheard

    await database_proxy.back()
    await wait_until(
        lambda: reads("sk_test_second"), 30, "the change to be read after reconnecting", every=0.05
    )
