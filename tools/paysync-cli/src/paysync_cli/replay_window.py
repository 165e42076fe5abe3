"""How far a real run runs ahead of the status-projector: the batches published, not yet seen applied."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable


class AppliedWindow:
    """Waits on the batches a real run published, in order, while it reads and publishes the next ones.

    With one batch ahead, the projector idled whenever reading, parsing and publishing the next batch
    took the replay longer than applying the one before took the projector (a slow lookup, a busy core,
    the commit seen up to a poll late); with `depth` batches unapplied it has that many to work on.
    Each batch's wait starts once the one before it is over (the projector commits in order): one
    request for its committed offsets at a time, whatever the depth. What is held is `depth` batches'
    observation keys, never the records.
    """

    def __init__(self, depth: int) -> None:
        self._depth = depth
        self._waits: deque[asyncio.Task[None]] = deque()

    async def add(self, wait: Callable[[], Awaitable[None]]) -> None:
        """Wait (`wait()`, once those before it are over) for a batch just published; while more than
        `depth` are unapplied, for the oldest first: its error (a stall, dead letters) is raised here."""
        previous = self._waits[-1] if self._waits else None
        self._waits.append(asyncio.create_task(_after(previous, wait)))
        while len(self._waits) > self._depth:
            await self._oldest()

    async def drain(self) -> None:
        """Wait until every batch published is applied."""
        while self._waits:
            await self._oldest()

    async def cancel(self) -> None:
        """Stop waiting (the replay stopped): nothing is left running."""
        waits, self._waits = list(self._waits), deque()
        for task in waits:
            task.cancel()
        await asyncio.gather(*waits, return_exceptions=True)

    async def _oldest(self) -> None:
        await self._waits[0]
        self._waits.popleft()


async def _after(previous: asyncio.Task[None] | None, wait: Callable[[], Awaitable[None]]) -> None:
    """`wait()` once `previous` is over; its outcome is the caller's, raised where it is awaited, in order."""
    if previous is not None:
        await asyncio.wait([previous])
    await wait()
