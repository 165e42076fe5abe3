"""asyncpg connections of their own, for the one-statement work of the routes front ends call in a loop.

A status read and a new registration are each one statement, prepared once per connection. Taken
from SQLAlchemy's pool, each cost a connection checkout and return through SQLAlchemy's async layer
(a greenlet switch each way, the pool's events, the reset on return): about as much CPU as the
statement itself. asyncpg's own pool was cheaper, but still a tenth of a status read's CPU: every
release is shielded in a task of its own, and arms a timer for the connection's idle lifetime
(bench/README.md, API reads and registrations). Here a connection is taken from a list and put back
on it, without a task, a timer or a reset: nothing run on these connections leaves a transaction, a
setting or a listener behind (a connection found in a transaction, or closed, is not put back).

Its connections are made as SQLAlchemy's are: the same arguments from the engine's URL, the same
`application_name`, the same JSON codecs, so a row reads the same from either pool. Nothing connects
until the first use, and at most `size` are open at once (a statement past them waits for one to be
put back); an open connection is kept until the pool closes. A statement that fails in a way that
may have left its connection unusable (the connection lost, a cancellation, anything but an error
the server answered) closes the connection, so a dropped connection is replaced on its next use; the
caller then runs the work through SQLAlchemy (`repository.poll_payment`, `service.register_payment`),
which reports a lost database as every other statement does (503, and its pool lets go of its peers).
"""

from __future__ import annotations

import asyncio
from collections import deque
from types import SimpleNamespace
from typing import Any

import asyncpg
from sqlalchemy.ext.asyncio import AsyncEngine

#: Keyword arguments of SQLAlchemy's asyncpg adapter that asyncpg itself does not take.
_SQLALCHEMY_ONLY = ("prepared_statement_cache_size", "prepared_statement_name_func", "async_creator_fn")


class DriverPool:
    """Connections made as `engine` makes its own, at most `size` at once; `fetchrow` runs a statement."""

    def __init__(self, engine: AsyncEngine, size: int, application_name: str) -> None:
        dialect: Any = engine.dialect
        args, options = dialect.create_connect_args(engine.url)
        for name in _SQLALCHEMY_ONLY:
            options.pop(name, None)
        named = {**options.get("server_settings", {}), "application_name": application_name}
        options["server_settings"] = named
        self._dialect, self._arguments, self._size = dialect, (args, options), size
        self._free: list[asyncpg.Connection] = []
        #: Statements waiting for a connection: each gets one put back, or None (a place to connect).
        self._waiters: deque[asyncio.Future[asyncpg.Connection | None]] = deque()
        self._open = 0
        self._closed = False

    async def start(self) -> None:
        """Ready to use (it connects nothing until the first statement)."""
        self._closed = False

    async def close(self) -> None:
        """Close the idle connections now, and each connection in use when it is put back."""
        self._closed = True
        idle, self._free = self._free, []
        self._open -= len(idle)
        await asyncio.gather(*(conn.close() for conn in idle), return_exceptions=True)

    async def fetchrow(self, query: str, *args: Any) -> Any:
        """The first row of `query` (None if none), run on a connection of the pool."""
        conn = self._free.pop() if self._free else await self._connection()
        try:
            row = await conn.fetchrow(query, *args)
        except asyncpg.PostgresError as exc:  # the server refused it: the connection may be as it was
            self._put_back(conn, usable=not isinstance(exc, asyncpg.PostgresConnectionError))
            raise
        except BaseException:  # lost, cancelled mid-statement: never hand that connection out again
            self._put_back(conn, usable=False)
            raise
        self._put_back(conn)
        return row

    async def _connection(self) -> asyncpg.Connection:
        """A free connection, a new one while fewer than `size` are open, or the next one put back."""
        while True:
            if self._free:
                return self._free.pop()
            if self._open < self._size:
                return await self._connect()
            waiter: asyncio.Future[asyncpg.Connection | None] = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                conn = await waiter
            except asyncio.CancelledError:
                if waiter.done() and not waiter.cancelled():  # handed one just as this was cancelled
                    self._hand_on(waiter.result())
                raise
            if conn is not None:
                return conn

    async def _connect(self) -> asyncpg.Connection:
        self._open += 1
        args, options = self._arguments
        try:
            conn: asyncpg.Connection = await asyncpg.connect(*args, **options)
            adapted = SimpleNamespace(_connection=conn)  # what the dialect's codec set-up reads
            await self._dialect.setup_asyncpg_json_codec(adapted)
            await self._dialect.setup_asyncpg_jsonb_codec(adapted)
        except BaseException:
            self._open -= 1
            self._hand_on(None)
            raise
        return conn

    def _put_back(self, conn: asyncpg.Connection, usable: bool = True) -> None:
        """Return `conn` to the pool, or close it (unusable, closed, in a transaction, the pool closed)."""
        if usable and not self._closed and not conn.is_closed() and not conn.is_in_transaction():
            self._hand_on(conn)
            return
        self._open -= 1
        conn.terminate()
        self._hand_on(None)

    def _hand_on(self, conn: asyncpg.Connection | None) -> None:
        """Give `conn` (None: a place to open one) to the first statement waiting, else keep it."""
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(conn)
                return
        if conn is not None:
            self._free.append(conn)
