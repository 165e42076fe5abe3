"""`listen` keeps listening when PostgreSQL drops its connection: it reconnects, calls `on_connect`
again (so the caller catches up), and later notifications arrive."""

from __future__ import annotations

import asyncio
import contextlib
import uuid

import asyncpg
import pytest

from paysync_core.db.notify import asyncpg_dsn, listen

pytestmark = pytest.mark.integration


async def test_a_dropped_connection_is_reopened_and_notifications_arrive_again(migrated_database: str):
    dsn = asyncpg_dsn(migrated_database)
    channel = f"listen_test_{uuid.uuid4().hex[:12]}"
    connects: asyncio.Queue[None] = asyncio.Queue()
    payloads: asyncio.Queue[str] = asyncio.Queue()
    task = asyncio.create_task(
        listen(dsn, {channel: payloads.put_nowait}, on_connect=lambda: connects.put_nowait(None))
    )
    admin = await asyncpg.connect(dsn)
    try:
        await asyncio.wait_for(connects.get(), 30)
        # The server ends the listening session, as a restart or a failover would.
        ended = await admin.fetchval(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE query = $1",
            f'LISTEN "{channel}"',
        )
        assert ended == 1
        await asyncio.wait_for(connects.get(), 30)  # listening again, and told so
        await admin.execute(f"NOTIFY {channel}, 'after-reconnect'")
        assert await asyncio.wait_for(payloads.get(), 30) == "after-reconnect"
    finally:
        await admin.close()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
