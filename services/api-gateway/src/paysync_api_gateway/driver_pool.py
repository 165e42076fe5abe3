"""asyncpg's own pool, for the one-statement work of the routes front ends call in a loop.

A status read and a new registration are each one statement, prepared once per connection. Taken
from SQLAlchemy's pool, each cost a connection checkout and return through SQLAlchemy's async layer
(a greenlet switch each way, the pool's events, the reset on return): about as much CPU as the
statement itself (bench/README.md, API reads and registrations). asyncpg's pool hands out its
connections directly. Its default reset on release (`RESET ALL`, `UNLISTEN *`, … : one more round
trip) is not needed here: nothing on these connections leaves a transaction, a setting or a listener
behind, so a connection goes back as it is (rolled back first, should one ever be in a transaction).
Idle connections are not timed out (no timer armed on every release): they stay open, at most
`size`, until the service stops. A hand-written list of connections saved another ~0.02 ms of a
read's CPU (asyncpg shields each release in a task), measured and not kept: a pool is asyncpg's job.

Its connections are made as SQLAlchemy's are: the same arguments from the engine's URL, the same
`application_name`, the same JSON codecs, so a row reads the same from either pool. Nothing connects
until the first use. A connection found dropped fails its statement: the caller then runs the work
through SQLAlchemy (`repository.poll_payment`, `service.register_payment`), which reports a lost
database as every other statement does (503, and its pool lets go of its peers); asyncpg's pool
replaces the dropped connection on its next use.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import asyncpg
from sqlalchemy.ext.asyncio import AsyncEngine

#: Keyword arguments of SQLAlchemy's asyncpg adapter that asyncpg itself does not take.
_SQLALCHEMY_ONLY = ("prepared_statement_cache_size", "prepared_statement_name_func", "async_creator_fn")


class DriverPool:
    """Connections of asyncpg's pool, made as `engine` makes its own, at most `size` at once."""

    def __init__(self, engine: AsyncEngine, size: int, application_name: str) -> None:
        dialect: Any = engine.dialect
        args, options = dialect.create_connect_args(engine.url)
        for name in _SQLALCHEMY_ONLY:
            options.pop(name, None)

        async def same_codecs(conn: asyncpg.Connection) -> None:
            adapted = SimpleNamespace(_connection=conn)  # what the dialect's codec set-up reads
            await dialect.setup_asyncpg_json_codec(adapted)
            await dialect.setup_asyncpg_jsonb_codec(adapted)

        self._arguments = (args, options)
        self._settings: dict[str, Any] = {
            "min_size": 0,
            "max_size": size,
            "init": same_codecs,
            "reset": _rolled_back,
            "max_inactive_connection_lifetime": 0,
            "server_settings": {"application_name": application_name},
        }
        self._pool: asyncpg.Pool | None = None

    async def start(self) -> None:
        """Make the pool, on the running event loop (it connects nothing yet)."""
        args, options = self._arguments
        create: Any = asyncpg.create_pool  # its overloads cannot see through the engine's arguments
        self._pool = await create(*args, **options, **self._settings)

    async def close(self) -> None:
        """Close every connection, once those in use are back."""
        if self._pool is not None:
            await self._pool.close()

    async def fetchrow(self, query: str, *args: Any) -> Any:
        """The first row of `query` (None if none), run on a connection of the pool."""
        if self._pool is None:
            raise RuntimeError("the driver pool is not started")
        return await self._pool.fetchrow(query, *args)


async def _rolled_back(conn: asyncpg.Connection) -> None:
    """What is left to reset before a connection goes back: nothing but a transaction, if one were open."""
    if conn.is_in_transaction():
        await conn.execute("ROLLBACK")
