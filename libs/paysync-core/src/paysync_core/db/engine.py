"""Engines and migrations for the shared database."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Select, bindparam, event, exc, func, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.types import BigInteger, Integer

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS = Path(__file__).parent / "migrations"

#: A pooled connection idle longer than this is pinged before it is handed out (see `make_engine`).
PING_AFTER_IDLE_SECONDS = 1.0

#: Given to every engine paysync creates (`**ENGINE_OPTIONS`; tests/architecture checks): a failed
#: statement's error names its statement but not its parameter values, which SQLAlchemy would otherwise
#: append (`[parameters: ...]`), so a logged exception never shows a key, token or phone number bound in it.
ENGINE_OPTIONS: dict[str, Any] = {"hide_parameters": True}


def make_engine(
    url: str,
    *,
    pool_size: int = 10,
    application_name: str = "paysync",
    ping_after_idle_seconds: float = PING_AFTER_IDLE_SECONDS,
) -> AsyncEngine:
    """An asyncpg engine with a bounded pool whose idle connections are checked before use.

    SQLAlchemy's `pool_pre_ping` pings on every checkout, and asyncpg's ping is three round trips
    (BEGIN, an empty query, ROLLBACK): more than most of the statements it guards. Only a connection
    that sat idle longer than `ping_after_idle_seconds` is pinged here, so a restart or failover that
    happened while the service was quiet costs nothing; a connection that was in use moments ago
    is trusted. If the server dropped it in that moment, its statement fails as a disconnect, the
    pool discards every connection opened before, and the caller's retry (a redelivered batch, a
    503 the client retries) runs on a new one: one failure per outage and process, never a lost write.
    """
    engine = create_async_engine(
        url,
        pool_size=pool_size,
        max_overflow=pool_size,
        connect_args={"server_settings": {"application_name": application_name}},
        **ENGINE_OPTIONS,
    )
    ping_idle_connections(engine, ping_after_idle_seconds)
    return engine


def ping_idle_connections(engine: AsyncEngine, after_seconds: float) -> None:
    """Ping a pooled connection on checkout when it was checked in more than `after_seconds` ago."""
    dialect = engine.sync_engine.dialect

    @event.listens_for(engine.sync_engine, "checkin")
    def _idle_since(dbapi_connection: Any, record: Any) -> None:
        record.info["checked_in_at"] = time.monotonic()

    @event.listens_for(engine.sync_engine, "checkout")
    def _ping_if_idle(dbapi_connection: Any, record: Any, proxy: Any) -> None:
        since = record.info.pop("checked_in_at", None)
        if since is None or time.monotonic() - since <= after_seconds:
            return  # new (just connected) or busy a moment ago
        if not dialect._do_ping_w_event(dbapi_connection):  # False: a disconnect; other errors raise
            raise exc.InvalidatePoolError("idle connection found closed on checkout")


@asynccontextmanager
async def no_transaction(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """A pooled connection whose statements each commit on their own: for work that is one statement
    (a read, or a write atomic by itself, such as one UPDATE of the row it locks).

    `engine.connect()` opens a transaction with the first statement and rolls it back on release: a
    BEGIN and a ROLLBACK, two round trips besides the read (a third of the CPU of a key lookup or a
    status read, client and server). At READ COMMITTED each statement sees its own snapshot anyway,
    so one read loses nothing without them. Not for writes that must commit together, nor for
    `FOR UPDATE` locks (released at once): use `engine.begin()` for those.
    """
    async with engine.connect() as conn:
        yield await conn.execution_options(isolation_level="AUTOCOMMIT")


#: An advisory lock's key: one bigint, or a pair of ints (PostgreSQL's two-key form, e.g. a namespace and a
#: key within it). The two forms are separate spaces: `5` and `(0, 5)` are different locks.
LockKey = int | tuple[int, int]

_TRY_LOCK = select(func.pg_try_advisory_lock(bindparam("key", type_=BigInteger)))
_UNLOCK = select(func.pg_advisory_unlock(bindparam("key", type_=BigInteger)))
_PAIR = (bindparam("key1", type_=Integer), bindparam("key2", type_=Integer))
_TRY_LOCK_PAIR = select(func.pg_try_advisory_lock(*_PAIR))
_UNLOCK_PAIR = select(func.pg_advisory_unlock(*_PAIR))


@asynccontextmanager
async def session_lock(engine: AsyncEngine, key: LockKey) -> AsyncIterator[AsyncConnection | None]:
    """Hold the session-level advisory lock `key` (one bigint, or a pair of ints) for the block, on a pooled
    connection with no transaction open (`no_transaction`); None if another session holds it (it is tried,
    not waited for).

    For work that waits on something else while it holds the lock (the relay and the alert rules on the
    broker's acknowledgements, a reconciler sweep on gateways): unlike a transaction's lock
    (`pg_try_advisory_xact_lock`), it keeps no snapshot (which would hold back vacuum on every table) and
    no row locks while it waits, and `idle_in_transaction_session_timeout` does not apply. It is the
    session's: if the connection drops or the process dies, PostgreSQL lets go of it. It also outlives the
    block on its connection, which goes back to the pool: so it is let go of when the block ends, however
    it ends (shielded from a cancellation), and a connection on which that fails, or on which the lock may
    have been granted unseen, is closed (invalidated) rather than pooled still holding it. PostgreSQL
    counts a session's takes of one lock: the block must not take it again on the same connection.
    """
    try_lock, unlock, params = _lock_statements(key)
    async with no_transaction(engine) as conn:
        try:
            held = bool((await conn.execute(try_lock, params)).scalar())
        except BaseException:
            # Granted, maybe, with the answer lost (a cancellation, a dropped connection).
            await conn.invalidate()
            raise
        if not held:
            yield None
            return
        try:
            yield conn
        except BaseException:
            await _unlock(conn, unlock, params, quietly=True)  # the block's own failure is the one to tell
            raise
        await _unlock(conn, unlock, params)


def _lock_statements(key: LockKey) -> tuple[Select[Any], Select[Any], dict[str, int]]:
    """The statements that try and let go of the lock `key`, and their parameters."""
    if isinstance(key, tuple):
        first, second = key
        return _TRY_LOCK_PAIR, _UNLOCK_PAIR, {"key1": first, "key2": second}
    return _TRY_LOCK, _UNLOCK, {"key": key}


async def _unlock(
    conn: AsyncConnection, unlock: Select[Any], params: dict[str, int], *, quietly: bool = False
) -> None:
    """Let go of the lock; should that fail, close the connection (which lets go of it too)."""
    try:
        await asyncio.shield(conn.execute(unlock, params))
    except BaseException:
        await conn.invalidate()  # never back to the pool with the lock held
        if not quietly:
            raise


def alembic_config(url: str) -> Config:
    """Alembic configured for paysync's migrations and the given database."""
    # Imported here: alembic is a quarter of a second of CPU to import, which a process that only
    # connects (each of `paysync replay`'s worker processes) would pay on every start.
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade(url: str, revision: str = "head") -> None:
    """Bring the database's schema up to `revision` (blocking; call from a thread in async code)."""
    from alembic import command

    command.upgrade(alembic_config(url), revision)
