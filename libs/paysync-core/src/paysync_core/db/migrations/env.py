"""Alembic environment: runs paysync's migrations over asyncpg."""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy.ext.asyncio import create_async_engine

from paysync_core.db.schema import metadata

config = context.config


def _run(connection) -> None:  # a sync Connection inside run_sync
    context.configure(connection=connection, target_metadata=metadata, compare_type=True)
    with context.begin_transaction():
        # Serialise concurrent migrators (several services starting at once).
        connection.exec_driver_sql("SELECT pg_advisory_xact_lock(7355608)")
        context.run_migrations()


async def _main() -> None:
    url = config.get_main_option("sqlalchemy.url")
    if url is None:
        raise RuntimeError("alembic: no sqlalchemy.url configured (migrate with `paysync db upgrade`)")
    engine = create_async_engine(url)
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
