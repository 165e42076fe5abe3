"""Observations that arrive before their payment is registered wait, and are applied when it is."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Iterator

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from paysync_core.db import REGISTERED_CHANNEL
from paysync_core.db.engine import make_engine
from paysync_core.db.notify import asyncpg_dsn, listen
from paysync_core.db.schema import observations, parked_observations, workshop_jobs
from paysync_core.domain.status import UnifiedStatus as S
from paysync_dev.fixtures import TestTenant, create_tenant, new_migrated_database
from paysync_dev.payments import observation, payment_row, register_payment
from paysync_dev.service_fixtures import fetch
from paysync_status_projector.relay import Wakeup, unpark_loop
from paysync_status_projector.repository.parked import take_matched_parked
from paysync_status_projector.service import project

pytestmark = pytest.mark.integration


class _ObservedWakeup(Wakeup):
    """A wakeup that tells when the loop first waits on it, i.e. has made its first pass."""

    def __init__(self) -> None:
        super().__init__()
        self.waiting = asyncio.Event()

    async def wait(self, timeout: float) -> None:
        self.waiting.set()
        await super().wait(timeout)


@pytest.fixture
async def matcher(engine, domains, migrated_database) -> AsyncIterator[None]:
    """The projector's matcher loop, woken only by NOTIFY (its fallback poll is far beyond the test)."""
    wakeup = _ObservedWakeup()
    listening = asyncio.Event()

    def connected() -> None:
        listening.set()

    tasks = [
        asyncio.create_task(
            listen(asyncpg_dsn(migrated_database), {REGISTERED_CHANNEL: wakeup.set}, on_connect=connected)
        ),
        asyncio.create_task(unpark_loop(engine, domains, wakeup, poll=600, on_committed=lambda: None)),
    ]
    await asyncio.wait_for(listening.wait(), 10)
    await asyncio.wait_for(
        wakeup.waiting.wait(), 10
    )  # its first pass is done: from now on only NOTIFY wakes it
    yield
    for task in tasks:
        task.cancel()
    for task in tasks:
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def wait_for_status(engine, payment, status: str, timeout: float = 5.0) -> str:
    deadline = time.monotonic() + timeout
    while True:
        row = await payment_row(engine, payment)
        if row.status == status or time.monotonic() > deadline:
            return row.status
        await asyncio.sleep(0.05)


async def test_an_observation_before_its_registration_is_applied_when_the_registration_arrives(
    engine, domains, tenant, matcher
) -> None:
    ref, job = f"cs_test_{uuid.uuid4().hex}", f"job-{uuid.uuid4().hex[:8]}"
    early = observation(None, S.SUCCEEDED, 1, tenant=tenant.id, ref=ref)
    result = await project(engine, [early, early], domains)
    assert (result.parked, result.applied) == (1, 0)
    assert await fetch(engine, select(workshop_jobs).where(workshop_jobs.c.job_id == job)) == []

    payment = await register_payment(engine, tenant.id, provider_ref=ref, domain="jobs", entity_id=job)

    assert await wait_for_status(engine, payment, "succeeded") == "succeeded"
    jobs = await fetch(engine, select(workshop_jobs).where(workshop_jobs.c.job_id == job))
    assert [(j.status, j.payment_note) for j in jobs] == [("paid", f"Paid via Stripe - Session: {ref}")]
    left = await fetch(
        engine,
        select(func.count())
        .select_from(parked_observations)
        .where(parked_observations.c.tenant_id == tenant.id),
    )
    assert left[0][0] == 0


async def test_an_observation_matches_its_payment_by_an_alias_given_at_registration(
    engine, domains, tenant, matcher
) -> None:
    intent, session = f"pi_{uuid.uuid4().hex[:20]}", f"cs_test_{uuid.uuid4().hex}"
    await project(engine, [observation(None, S.PROCESSING, 1, tenant=tenant.id, ref=intent)], domains)

    payment = await register_payment(engine, tenant.id, provider_ref=session, aliases=(intent,))

    assert await wait_for_status(engine, payment, "processing") == "processing"


async def test_a_redelivered_early_observation_is_applied_once(engine, domains, tenant, matcher) -> None:
    ref = f"cs_test_{uuid.uuid4().hex}"
    early = observation(None, S.SUCCEEDED, 1, tenant=tenant.id, ref=ref)
    await project(engine, [early], domains)
    await project(engine, [early], domains)  # redelivered while still unregistered
    payment = await register_payment(engine, tenant.id, provider_ref=ref)
    assert await wait_for_status(engine, payment, "succeeded") == "succeeded"
    await project(engine, [early], domains)  # and once more, after

    history = await fetch(
        engine, select(observations.c.observation_id).where(observations.c.tenant_id == tenant.id)
    )
    assert [h.observation_id for h in history] == [early.observation_id]
    assert (await payment_row(engine, payment)).sequence == 1


async def _refs_rows_read(engine) -> int:
    """Rows of payment_refs read so far, by scans and through its indexes (the server's counters)."""
    async with engine.connect() as conn:
        await conn.execute(text("SELECT pg_stat_force_next_flush()"))
        await conn.execute(text("SELECT pg_stat_clear_snapshot()"))
        read = await conn.execute(
            text(
                "SELECT (SELECT coalesce(sum(seq_tup_read), 0) FROM pg_stat_user_tables"
                " WHERE relname = 'payment_refs') + (SELECT coalesce(sum(idx_tup_read), 0)"
                " FROM pg_stat_user_indexes WHERE relname = 'payment_refs')"
            )
        )
        return int(read.scalar_one())


@pytest.fixture
def quiet_database(database_url: str) -> Iterator[str]:
    """A database of this test's own: the server counts the rows read per database, and on the session's
    the services of other tests' fixtures read payment_refs too (74,000 rows in one CI run's window)."""
    with new_migrated_database(database_url) as url:
        yield url


@pytest.fixture
async def quiet_engine(quiet_database: str) -> AsyncIterator[AsyncEngine]:
    """An engine on the test's own database."""
    engine = make_engine(quiet_database, pool_size=2)
    yield engine
    await engine.dispose()


@pytest.fixture
def quiet_tenant(quiet_database: str, credentials_keys: str) -> TestTenant:
    """A tenant in the test's own database."""
    return create_tenant(quiet_database, credentials_keys)


async def test_a_matching_pass_looks_each_parked_reference_up_by_key(quiet_engine, quiet_tenant) -> None:
    engine, tenant = quiet_engine, quiet_tenant
    # 20,000 registered payments of the tenant, and 200 parked observations naming none of them.
    tag = uuid.uuid4().hex[:8]
    async with engine.begin() as conn:
        await conn.execute(
            text(
                "INSERT INTO payments (id, tenant_id, provider, provider_ref) SELECT gen_random_uuid(),"
                " :tenant, 'stripe', 'cs_bulk_' || :tag || n FROM generate_series(1, 20000) n"
            ),
            {"tenant": tenant.id, "tag": tag},
        )
        await conn.execute(
            text(
                "INSERT INTO payment_refs (tenant_id, provider, ref, payment_id) SELECT tenant_id,"
                " provider, provider_ref, id FROM payments WHERE provider_ref LIKE 'cs_bulk_' || :tag || '%'"
            ),
            {"tag": tag},
        )
        await conn.execute(
            text(
                "INSERT INTO parked_observations (tenant_id, provider, observation_id, refs, payload)"
                " SELECT :tenant, 'stripe', 'evt_' || :tag || n,"
                " jsonb_build_array('pi_' || :tag || n, 'in_' || :tag || n), '{}'"
                " FROM generate_series(1, 200) n"
            ),
            {"tenant": tenant.id, "tag": tag},
        )
    async with engine.connect() as conn:  # a live database has its statistics (autovacuum)
        await conn.execute(text("ANALYZE payments, payment_refs, parked_observations"))
    before = await _refs_rows_read(engine)

    async with engine.begin() as conn:
        assert await take_matched_parked(conn, 500) == []

    # By key: one probe per parked reference (400, none found). As `ref IN (SELECT
    # jsonb_array_elements_text(refs))` the pass read the tenant's 20,000 references for each parked
    # row (4,000,000 rows).
    assert await _refs_rows_read(engine) - before < 5_000
