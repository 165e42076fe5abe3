"""Work that outlives the message that started it: sweeps and on-demand checks, bounded and named."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Hashable
from typing import Any

import structlog

log = structlog.get_logger()

Work = Callable[[], Coroutine[Any, Any, object]]


class TaskRunner:
    """Runs at most one job per key, at most `limit` at a time; cancels what is left at shutdown."""

    def __init__(self, limit: int, name: str) -> None:
        self._slots = asyncio.Semaphore(limit)
        self._running: dict[Hashable, asyncio.Task[None]] = {}
        self._name = name

    def busy(self, key: Hashable) -> bool:
        """Whether a job with this key is queued or running."""
        return key in self._running

    def start(self, key: Hashable, work: Work) -> bool:
        """Start `work` in the background unless a job with the same key is still going."""
        if key in self._running:
            return False
        task = asyncio.create_task(self._run(key, work), name=f"{self._name}:{key}")
        self._running[key] = task
        return True

    async def _run(self, key: Hashable, work: Work) -> None:
        try:
            async with self._slots:
                await work()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a failed job is logged; its state in the database says the rest
            log.exception("reconcile.job.failed", runner=self._name, key=str(key), error=repr(exc))
        finally:
            self._running.pop(key, None)

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
