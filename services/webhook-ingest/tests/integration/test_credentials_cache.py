"""Tenants' credentials: one database read however many webhooks ask at once, and no wait on expiry."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import event

from paysync_core.crypto import CredentialsCipher
from paysync_core.db.engine import make_engine
from paysync_core.errors import UnknownTenant
from paysync_dev.service_fixtures import wait_until
from paysync_webhook_ingest.credentials import CredentialsStore

pytestmark = pytest.mark.integration


@pytest.fixture
async def store_and_reads(migrated_database: str, credentials_keys: str):
    """A store with a short TTL, and the list of SQL statements it made the database run."""
    engine = make_engine(migrated_database, pool_size=2)
    reads: list[str] = []
    event.listen(engine.sync_engine, "before_cursor_execute", lambda *args: reads.append(args[2]))
    yield CredentialsStore(engine, CredentialsCipher(credentials_keys), ttl=0.5), reads
    await engine.dispose()


async def test_a_burst_of_webhooks_for_one_tenant_reads_its_credentials_once(store_and_reads, tenant) -> None:
    store, reads = store_and_reads
    got = await asyncio.gather(*(store.get(tenant.id) for _ in range(200)))
    assert {g.stripe.webhook_secrets[0].get_secret_value() for g in got} == {tenant.stripe_webhook_secret}
    assert len(reads) == 1


async def test_an_expired_entry_answers_at_once_while_one_reload_runs(store_and_reads, tenant) -> None:
    store, reads = store_and_reads
    await store.get(tenant.id)
    await asyncio.sleep(0.6)  # past the TTL
    got = [await store.get(tenant.id) for _ in range(50)]
    assert len(reads) == 1  # all 50 answered before the reload's query even ran
    assert all(g.stripe is not None for g in got)

    async def reloaded() -> bool:
        return len(reads) >= 2

    await wait_until(reloaded, 30, "the background reload", every=0.01)  # waited for, not timed
    assert len(reads) == 2  # the first read and one reload, not one per request


async def test_invalidation_makes_the_next_request_read_again_and_unknown_tenants_are_refused(
    store_and_reads, tenant
) -> None:
    store, reads = store_and_reads
    await store.get(tenant.id)
    store.invalidate(tenant.id)
    await store.get(tenant.id)
    assert len(reads) == 2
    with pytest.raises(UnknownTenant):
        await store.get("t-nobody")
    with pytest.raises(UnknownTenant):
        await store.get("t-nobody")  # remembered: no second read
    assert len(reads) == 3
