"""Alembic environment: runs paysync's migrations over asyncpg."""

from __future__ import annotations

import asyncio
import time

from alembic import context
from sqlalchemy.ext.asyncio import create_async_engine

from paysync_core.db.engine import ENGINE_OPTIONS
from paysync_core.db.schema import metadata

config = context.config


#: Serialises migrators running at once on one database (two `paysync db upgrade` runs, say). No service
#: migrates at start-up: in deploy/k8s the services wait for the schema with `paysync db wait`.
MIGRATORS_LOCK = 7355608


def _take_migrators_lock(connection) -> None:
    """Wait for the migrators' lock, never inside a transaction.

    The lock is the session's, not a transaction's: a migration that builds an index concurrently
    (`paysync_core.db.online_ddl`) commits mid-way, and the next migrator must still wait. And it is
    tried, not waited for in a statement: a concurrent index build waits for every transaction older
    than it in the database, so a migrator blocked in `pg_advisory_lock` would wait for the build while
    the build waits for it (PostgreSQL reports the deadlock and fails one).
    """
    while not connection.exec_driver_sql(f"SELECT pg_try_advisory_lock({MIGRATORS_LOCK})").scalar():
        connection.commit()
        time.sleep(0.1)
    connection.commit()


def _run(connection) -> None:  # a sync Connection inside run_sync
    # Each migration is its own transaction, so an autocommit block commits between two, never in one.
    _take_migrators_lock(connection)
    try:
        context.configure(
            connection=connection, target_metadata=metadata, compare_type=True, transaction_per_migration=True
        )
        with context.begin_transaction():
            context.run_migrations()
    finally:
        connection.rollback()  # nothing is left open by a completed run; a failed one is undone
        connection.exec_driver_sql(f"SELECT pg_advisory_unlock({MIGRATORS_LOCK})")
        connection.commit()


async def _main() -> None:
    url = config.get_main_option("sqlalchemy.url")
    if url is None:
        raise RuntimeError("alembic: no sqlalchemy.url configured (migrate with `paysync db upgrade`)")
    engine = create_async_engine(url, **ENGINE_OPTIONS)
    async with engine.connect() as connection:
        await connection.run_sync(_run)
        await connection.commit()
    await engine.dispose()


def _run_in_thread() -> None:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        asyncio.run(_main())
        return
    # Called from inside an event loop (tests): run on a private loop in a thread.
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, _main()).result()


if context.is_offline_mode():
    context.configure(url=config.get_main_option("sqlalchemy.url"), target_metadata=metadata)
    with context.begin_transaction():
        context.run_migrations()
else:
    _run_in_thread()
