"""Migrations that index tables the services write do not stop those writes while the index is built."""

from __future__ import annotations

import asyncio
import sys
import uuid

import asyncpg
import pytest

from paysync_core.db.engine import make_engine, upgrade
from paysync_core.db.notify import asyncpg_dsn
from paysync_dev.payments import register_payment
from paysync_dev.service_fixtures import wait_until

pytestmark = pytest.mark.integration

#: A migrator's index build waiting for a lock (on a table or on the transactions it must outwait).
BUILD_WAITING = (
    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
    " AND query ILIKE 'CREATE INDEX%' AND wait_event_type = 'Lock'"
)
#: What `paysync db upgrade` does: migrate the database to head.
MIGRATE = "import sys; from paysync_core.db.engine import upgrade; upgrade(sys.argv[1])"
INDEXES_VALID = (
    "SELECT c.relname, i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid"
    " WHERE c.relname IN ('ix_payments_gateway_changed', 'ix_payments_status_changed') ORDER BY 1"
)

#: The parked rows' refs index: its access method and whether queries may use it.
REFS_INDEX = (
    "SELECT am.amname, i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid"
    " JOIN pg_am am ON am.oid = c.relam WHERE c.relname = 'ix_parked_observations_refs'"
)


async def test_the_payments_indexes_are_built_while_webhooks_keep_writing(fresh_database: str) -> None:
    await asyncio.to_thread(upgrade, fresh_database, "0014_gateway_budgets")
    tenant = f"t-{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(asyncpg_dsn(fresh_database))
    in_flight = await asyncpg.connect(asyncpg_dsn(fresh_database))
    engine = make_engine(fresh_database, pool_size=1)
    try:
        await admin.execute("INSERT INTO tenants (id, name) VALUES ($1, 'online migrations')", tenant)
        # A projector's transaction that has written payments and not committed yet.
        await in_flight.execute("BEGIN; UPDATE payments SET sequence = sequence WHERE false")
        migrating = asyncio.create_task(
            asyncio.to_thread(upgrade, fresh_database, "0015_notifier_rule_indexes")
        )

        async def build_waits() -> bool:
            return bool(await admin.fetchval(BUILD_WAITING))

        await wait_until(build_waits, 60, "the index build waiting for the transaction in flight")

        # A new webhook's payment is written while the build waits (a plain CREATE INDEX would hold it
        # behind its lock request until the transaction in flight and the whole build were done).
        await asyncio.wait_for(register_payment(engine, tenant, domain=None), 30)

        await in_flight.execute("COMMIT")
        await asyncio.wait_for(migrating, 60)
        assert await admin.fetch(INDEXES_VALID) == [
            ("ix_payments_gateway_changed", True),
            ("ix_payments_status_changed", True),
        ]
    finally:
        await engine.dispose()
        await in_flight.close()
        await admin.close()


async def test_migrating_up_down_and_up_again_ends_at_the_same_indexes(fresh_database: str) -> None:
    await asyncio.to_thread(upgrade, fresh_database)
    await asyncio.to_thread(_downgrade, fresh_database, "0014_gateway_budgets")
    await asyncio.to_thread(upgrade, fresh_database)
    admin = await asyncpg.connect(asyncpg_dsn(fresh_database))
    try:
        assert await admin.fetch(INDEXES_VALID) == [
            ("ix_payments_gateway_changed", True),
            ("ix_payments_status_changed", True),
        ]
        assert (
            await admin.fetchval(
                "SELECT count(*) FROM pg_class WHERE relname = 'ix_parked_observations_refs'"
            )
            == 1
        )
    finally:
        await admin.close()


async def test_an_index_a_failed_build_left_invalid_is_built_again(fresh_database: str) -> None:
    # A concurrent build that fails (cancelled, a deadlock, a unique build meeting duplicates) leaves its
    # index INVALID: never used by a query, still maintained on every write. `IF NOT EXISTS` alone would
    # take it for done.
    await asyncio.to_thread(upgrade, fresh_database, "0016_outbox_trace_context")
    admin = await asyncpg.connect(asyncpg_dsn(fresh_database))
    try:
        await admin.execute(
            "INSERT INTO parked_observations (tenant_id, provider, observation_id, refs, payload)"
            " VALUES ('t', 'stripe', 'o1', '[]', '{}'), ('t', 'stripe', 'o2', '[]', '{}')"
        )
        with pytest.raises(asyncpg.UniqueViolationError):
            await admin.execute(
                "CREATE UNIQUE INDEX CONCURRENTLY ix_parked_observations_refs"
                " ON parked_observations (tenant_id)"
            )
        assert await admin.fetch(REFS_INDEX) == [("btree", False)]

        await asyncio.to_thread(upgrade, fresh_database)

        assert await admin.fetch(REFS_INDEX) == [("gin", True)]
    finally:
        await admin.close()


def _head() -> str:
    from alembic.script import ScriptDirectory

    from paysync_core.db.engine import alembic_config

    return ScriptDirectory.from_config(
        alembic_config("postgresql+asyncpg://unused/unused")
    ).get_current_head()


def _downgrade(url: str, revision: str) -> None:
    from alembic import command

    from paysync_core.db.engine import alembic_config

    command.downgrade(alembic_config(url), revision)


async def test_migrators_starting_together_migrate_once(fresh_database: str) -> None:
    # Each migrator (a `paysync db upgrade` run) is its own process; an index built concurrently commits
    # half-way through, and the other migrators must still wait for the first to finish, neither start
    # the same migrations nor deadlock with the build.
    migrators = [
        await asyncio.create_subprocess_exec(
            sys.executable, "-c", MIGRATE, fresh_database, stderr=asyncio.subprocess.PIPE
        )
        for _ in range(4)
    ]
    outcomes = [(await m.wait(), (await m.stderr.read()).decode()[-2000:]) for m in migrators]  # type: ignore[union-attr]

    assert [code for code, _ in outcomes] == [0, 0, 0, 0], outcomes

    admin = await asyncpg.connect(asyncpg_dsn(fresh_database))
    try:
        assert await admin.fetchval("SELECT version_num FROM alembic_version") == _head()
        assert await admin.fetch(INDEXES_VALID) == [
            ("ix_payments_gateway_changed", True),
            ("ix_payments_status_changed", True),
        ]
    finally:
        await admin.close()
