"""The pool pings a connection only when it sat idle: a connection the server dropped while the service
was quiet is replaced unnoticed; one dropped a moment after use fails one statement, then the pool
has new connections."""

from __future__ import annotations

import asyncpg
import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from paysync_core.db.engine import make_engine, no_transaction
from paysync_core.db.notify import asyncpg_dsn
from paysync_dev.service_fixtures import wait_until

from .test_driver_statement import INSERT_REQUEST

pytestmark = pytest.mark.integration


async def _backend_pid(engine) -> int:
    async with engine.connect() as conn:
        return (await conn.execute(text("SELECT pg_backend_pid()"))).scalar_one()


async def _terminate(url: str, pid: int) -> None:
    admin = await asyncpg.connect(asyncpg_dsn(url))
    try:
        assert await admin.fetchval("SELECT pg_terminate_backend($1)", pid)

        async def gone() -> bool:  # pg_terminate_backend only signals the backend
            return not await admin.fetchval("SELECT count(*) FROM pg_stat_activity WHERE pid = $1", pid)

        await wait_until(gone, 30, f"backend {pid} to end", every=0.01)
    finally:
        await admin.close()


async def test_an_idle_connection_the_server_dropped_is_replaced_unnoticed(migrated_database: str):
    engine = make_engine(migrated_database, pool_size=1, ping_after_idle_seconds=0)
    try:
        first = await _backend_pid(engine)
        await _terminate(migrated_database, first)
        assert await _backend_pid(engine) != first  # pinged on checkout, found closed, replaced
    finally:
        await engine.dispose()


async def test_a_connection_dropped_right_after_use_fails_once_then_the_pool_reconnects(
    migrated_database: str,
):
    engine = make_engine(migrated_database, pool_size=1, ping_after_idle_seconds=3600)
    try:
        first = await _backend_pid(engine)
        await _terminate(migrated_database, first)
        with pytest.raises(DBAPIError) as failed:
            await _backend_pid(engine)  # trusted without a ping: its statement meets the closed socket
        assert failed.value.connection_invalidated
        assert await _backend_pid(engine) != first
    finally:
        await engine.dispose()


async def test_a_statement_on_the_driver_dropped_right_after_use_fails_as_through_sqlalchemy(
    migrated_database: str,
):
    """`DriverStatement` sends past SQLAlchemy; its failure must still invalidate the pool's connections."""
    engine = make_engine(migrated_database, pool_size=1, ping_after_idle_seconds=3600)
    values = {"request_id": "r-dropped", "tenant": "t", "request": {}}
    try:
        await _terminate(migrated_database, await _backend_pid(engine))
        with pytest.raises(DBAPIError) as failed:
            async with no_transaction(engine) as conn:
                await INSERT_REQUEST.fetch(conn, values)
        assert failed.value.connection_invalidated
        async with no_transaction(engine) as conn:
            assert [r.request_id for r in await INSERT_REQUEST.fetch(conn, values)] == ["r-dropped"]
    finally:
        await engine.dispose()
