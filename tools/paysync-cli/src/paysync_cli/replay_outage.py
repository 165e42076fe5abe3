"""A replay through a database restart or failover: its database work tried again until the database answers.

Operators replay right after outages, and a replay of a million records runs for many minutes: a restart
or failover of PostgreSQL meanwhile (sessions cut, new ones refused with "the database system is starting
up") must not end it with a traceback. What the replay does with the database is reading (the history,
the payments, the domain rows, what a step applied) and waking the projectors' unpark loops (a NOTIFY):
each can run again as a whole, so each is retried whole, never a publish (`Replayer` publishes after its
reads and retries none of it). An error that is not an outage (`is_outage`: bad SQL, a constraint) is
raised at once.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from paysync_core.dead_letters import is_outage

T = TypeVar("T")

#: The pause after a first failed try, doubled after each further one up to `_LONGEST_PAUSE`.
_FIRST_PAUSE = 0.1
_LONGEST_PAUSE = 2.0
#: How often the operator is told, while the database stays away.
_TELL_EVERY = 10.0


class DatabaseUnavailable(Exception):
    """The database did not answer for `PAYSYNC_REPLAY_DATABASE_OUTAGE_SECONDS`: the replay stopped.

    `done` says what the replay had done by then, and what running it again does (the `Replayer` that
    stopped fills it in). Picklable: a dry run's worker process sends it to the command.
    """

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.done = ""

    def __str__(self) -> str:
        return f"{self.args[0]}. {self.done}" if self.done else str(self.args[0])


def _to_stderr(message: str) -> None:
    print(f"paysync replay: {message}", file=sys.stderr, flush=True)


def why(exc: BaseException) -> str:
    """What the database (or the way to it) answered, in one line: the driver's own error (under
    SQLAlchemy's wrappers), its SQLSTATE if it has one, and its message."""
    cause = exc
    while (inner := getattr(cause, "orig", None) or cause.__cause__) is not None:
        cause = inner
    sqlstate = getattr(cause, "sqlstate", None)
    named = f"{type(cause).__name__} {sqlstate}" if sqlstate else type(cause).__name__
    said = str(cause).strip().splitlines()
    return f"{named}: {said[0]}" if said else named


class DatabaseRetry:
    """Runs database work again while the database is away, up to `deadline` seconds of not answering.

    The clock starts at the first failed try since the database last answered, and is shared by all the
    work retried at once (a real run reads the next step while earlier steps' reads wait): one outage,
    told once when it starts, every `_TELL_EVERY` seconds while it lasts, and once when it ends.
    """

    def __init__(self, deadline: float, warn: Callable[[str], None] = _to_stderr) -> None:
        self._deadline = deadline
        self._warn = warn
        self._since: float | None = None  # when the database stopped answering; None: it answers
        self._told = 0.0  # when the operator was last told it still does not

    async def __call__(self, what: str, work: Callable[[], Awaitable[T]]) -> T:
        """`work()`'s result, tried again (a new call) after each outage until the deadline; `what` names
        it in the messages ("reading …")."""
        pause = _FIRST_PAUSE
        while True:
            try:
                result = await work()
            except Exception as exc:
                if not is_outage(exc):
                    raise
                self._failed(what, exc)
                await asyncio.sleep(pause)  # a server coming back: nothing to be told by
                pause = min(pause * 2, _LONGEST_PAUSE)
                continue
            self._answered()
            return result

    async def read(
        self, engine: AsyncEngine, what: str, work: Callable[[AsyncConnection], Awaitable[T]]
    ) -> T:
        """`work(conn)` on a pooled connection of `engine`, retried as a whole (on a new connection)."""

        async def once() -> T:
            async with engine.connect() as conn:
                return await work(conn)

        return await self(what, once)

    def _failed(self, what: str, exc: Exception) -> None:
        """Note a failed try; past the deadline, raise DatabaseUnavailable."""
        now = time.monotonic()
        if self._since is None:
            self._since = self._told = now
            self._warn(
                f"the database does not answer ({why(exc)}) while {what}: trying again for up to"
                f" {self._deadline:g}s (PAYSYNC_REPLAY_DATABASE_OUTAGE_SECONDS)"
            )
            return
        away = now - self._since
        if away > self._deadline:
            raise DatabaseUnavailable(
                f"the database did not answer for {away:.1f}s ({why(exc)}) while {what}"
            ) from exc
        if now - self._told >= _TELL_EVERY:
            self._told = now
            self._warn(f"the database has not answered for {away:.0f}s ({why(exc)}): still trying")

    def _answered(self) -> None:
        if self._since is not None:
            self._warn(f"the database answers again after {time.monotonic() - self._since:.1f}s: going on")
            self._since = None
