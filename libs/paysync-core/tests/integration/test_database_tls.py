"""A database URL's TLS choice (`ssl=…`, as SQLAlchemy passes it to asyncpg) holds for both ways the
services connect: the pooled engine and the plain asyncpg connections of LISTEN and the tools."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import asyncpg
import pytest
from sqlalchemy import text

from paysync_core.db.engine import make_engine
from paysync_core.db.notify import asyncpg_dsn

pytestmark = pytest.mark.integration

USES_TLS = "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()"


def _with_ssl(url: str, mode: str) -> str:
    parts = urlsplit(url)
    query = [(key, value) for key, value in parse_qsl(parts.query) if key not in {"ssl", "sslmode"}]
    return urlunsplit(parts._replace(query=urlencode([*query, ("ssl", mode)])))


async def _engine_uses_tls(url: str) -> bool:
    engine = make_engine(url, pool_size=1)
    try:
        async with engine.connect() as conn:
            return bool((await conn.execute(text(USES_TLS))).scalar_one())
    finally:
        await engine.dispose()


async def _driver_uses_tls(url: str) -> bool:
    connection = await asyncpg.connect(asyncpg_dsn(url))
    try:
        return bool(await connection.fetchval(USES_TLS))
    finally:
        await connection.close()


async def test_ssl_disable_in_the_url_means_no_tls_either_way(database_url: str) -> None:
    url = _with_ssl(database_url, "disable")

    assert await _engine_uses_tls(url) is False
    assert await _driver_uses_tls(url) is False


async def test_ssl_require_in_the_url_means_tls_either_way(database_url: str) -> None:
    connection = await asyncpg.connect(asyncpg_dsn(_with_ssl(database_url, "disable")))
    try:
        offered = await connection.fetchval("SHOW ssl") == "on"
    finally:
        await connection.close()
    if not offered:
        pytest.skip("this PostgreSQL server does not offer TLS")
    url = _with_ssl(database_url, "require")

    assert await _engine_uses_tls(url) is True
    assert await _driver_uses_tls(url) is True


def test_the_driver_url_speaks_libpq() -> None:
    url = "postgresql+asyncpg://u:p@db.internal:5432/paysync?ssl=verify-full&application_name=x"

    assert (
        asyncpg_dsn(url) == "postgresql://u:p@db.internal:5432/paysync?sslmode=verify-full&application_name=x"
    )
