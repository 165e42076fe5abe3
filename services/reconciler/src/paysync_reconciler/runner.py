"""Work that outlives the message that started it: sweeps and on-demand checks, bounded, named, and
taken in turns by lane (the requests' lanes are their tenants'), so one lane's backlog never holds
back another's.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections import Counter, deque
from collections.abc import Callable, Coroutine, Hashable
from typing import Any

import structlog

log = structlog.get_logger()

Work = Callable[[], Coroutine[Any, Any, object]]


class TaskRunner:
    """Runs at most one job per key, at most `limit` at a time and at most its lane's limit of one lane.

    Jobs wait for a turn in their lane's queue (first come, first served within a lane); a free slot
    goes to the lane with jobs waiting that was served longest ago (round robin). A job's
    `while_waiting` (keeping its lease) runs until its turn comes. What is left is cancelled at
    shutdown.
    """

    def __init__(self, limit: int, name: str) -> None:
        self._limit = limit
        self._lane_limits: dict[Hashable, int] = {}
        self._running: dict[Hashable, asyncio.Task[None]] = {}
        self._waiting: dict[Hashable, deque[asyncio.Future[None]]] = {}
        self._in_lane: Counter[Hashable] = Counter()
        self._served: dict[Hashable, int] = {}  # when each lane with jobs last had a turn
        self._turns = itertools.count()
        self._active = 0
        self._name = name

    def busy(self, key: Hashable) -> bool:
        """Whether a job with this key is queued or running."""
        return key in self._running

    def start(
        self,
        key: Hashable,
        work: Work,
        lane: Hashable = None,
        lane_limit: int | None = None,
        while_waiting: Work | None = None,
    ) -> bool:
        """Start `work` in the background (once its lane's turn comes: at most `lane_limit` of the lane
        run at once, by default `limit`) unless a job with the same key is still going."""
        if key in self._running:
            return False
        job = self._run(key, work, lane, lane_limit or self._limit, while_waiting)
        task = asyncio.create_task(job, name=f"{self._name}:{key}")
        self._running[key] = task
        return True

    async def _run(
        self, key: Hashable, work: Work, lane: Hashable, limit: int, while_waiting: Work | None
    ) -> None:
        try:
            await self._turn(lane, limit, while_waiting)
            try:
                await work()
            finally:
                self._release(lane)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a failed job is logged; its state in the database says the rest
            log.exception("reconcile.job.failed", runner=self._name, key=str(key), error=repr(exc))
        finally:
            self._running.pop(key, None)

    async def _turn(self, lane: Hashable, limit: int, while_waiting: Work | None) -> None:
        """Wait in the lane's queue until the job may run (it then holds a slot until `_release`)."""
        turn: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._lane_limits[lane] = limit
        self._waiting.setdefault(lane, deque()).append(turn)
        self._dispatch()
        keeper = asyncio.create_task(while_waiting()) if while_waiting and not turn.done() else None
        try:
            await turn
        except asyncio.CancelledError:
            if turn.done() and not turn.cancelled():
                self._release(lane)  # its turn had come just as it was cancelled
            else:
                self._forget(lane, turn)
            raise
        finally:
            if keeper is not None:
                keeper.cancel()
                with contextlib.suppress(BaseException):
                    await keeper

    def _dispatch(self) -> None:
        """Give free slots to the lanes with jobs waiting, the one served longest ago first."""
        while self._active < self._limit:
            ready = [ln for ln in self._waiting if self._in_lane[ln] < self._lane_limits.get(ln, self._limit)]
            if not ready:
                return
            lane = min(ready, key=lambda ln: self._served.get(ln, -1))
            queue = self._waiting[lane]
            turn = queue.popleft()
            if not queue:
                del self._waiting[lane]
            if turn.done():
                continue  # cancelled while waiting
            turn.set_result(None)
            self._active += 1
            self._in_lane[lane] += 1
            self._served[lane] = next(self._turns)

    def _release(self, lane: Hashable) -> None:
        self._active -= 1
        self._in_lane[lane] -= 1
        if self._in_lane[lane] <= 0:
            del self._in_lane[lane]
            if lane not in self._waiting:
                self._served.pop(lane, None)  # an idle lane is forgotten: tenants come and go
                self._lane_limits.pop(lane, None)
        self._dispatch()

    def _forget(self, lane: Hashable, turn: asyncio.Future[None]) -> None:
        queue = self._waiting.get(lane)
        if queue is not None and turn in queue:
            queue.remove(turn)
            if not queue:
                del self._waiting[lane]

    async def idle(self, timeout: float | None = None) -> None:
        """Wait until nothing runs (tests, shutdown)."""
        tasks = list(self._running.values())
        if tasks:
            await asyncio.wait(tasks, timeout=timeout)

    async def close(self) -> None:
        """Cancel every job and wait for them to stop."""
        tasks = list(self._running.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
