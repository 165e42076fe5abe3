"""The session database is a real PostgreSQL, and fresh databases are empty and isolated."""

import asyncio
import contextlib
import uuid

import asyncpg

from paysync_core.db.notify import asyncpg_dsn
from paysync_dev import postgres


async def test_select_version(database_url: str) -> None:
    connection = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        version = await connection.fetchval("select version()")
    finally:
        await connection.close()
    assert version.startswith("PostgreSQL ")


async def test_fresh_database_is_empty_and_separate(fresh_database: str, database_url: str) -> None:
    assert fresh_database != database_url
    connection = await asyncpg.connect(asyncpg_dsn(fresh_database))
    try:
        tables = await connection.fetchval(
            "select count(*) from information_schema.tables where table_schema = 'public'"
        )
        await connection.execute("create table marker (id int primary key)")
        name = await connection.fetchval("select current_database()")
    finally:
        await connection.close()
    assert tables == 0
    assert name == postgres.database_name(fresh_database)


async def test_a_database_is_dropped_with_a_session_still_connected_to_it(database_url: str) -> None:
    name = f"paysync_drop_{uuid.uuid4().hex[:8]}"
    url = postgres.create_database(name, base_url=database_url)
    left_open = await asyncpg.connect(asyncpg_dsn(url))  # a service that did not stop cleanly
    try:
        await asyncio.to_thread(postgres.drop_database, name, database_url)
    finally:
        with contextlib.suppress(Exception):
            await left_open.close(timeout=1)
    connection = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        assert await connection.fetchval("select count(*) from pg_database where datname = $1", name) == 0
    finally:
        await connection.close()
