"""The projector's matcher woken after new registrations: one NOTIFY for the registrations of a short
window, not one each.

A registration may be what an observation parked by the projector was waiting for (its webhook came
first), so the matcher is woken (`NOTIFY paysync_registered`) once new payments are committed; it
also looks every `unpark_poll_seconds` by itself. A NOTIFY in each registration's own statement cost
PostgreSQL 0.1-0.3 ms of its ~0.5-0.7 ms a registration with 16 connections registering at once
(every NOTIFY takes the cluster's notification queue lock at commit; bench/README.md, API reads and
registrations). Here the first new registration of a window asks for a NOTIFY `WINDOW_SECONDS` later,
sent on the driver pool after the registrations it covers committed; those committed meanwhile share
it. A NOTIFY that fails is logged and dropped: the matcher's own poll finds the payment.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import structlog

log = structlog.get_logger()

#: How much later than its registration's commit the matcher may be woken.
WINDOW_SECONDS = 0.01


class MatcherWakeups:
    """At most one wake-up of the projector's matcher asked for at a time; `registered` after each new
    payment."""

    def __init__(self, notify: Callable[[], Awaitable[object]], window: float = WINDOW_SECONDS) -> None:
        self._notify, self._window = notify, window
        self._asked = False  # a wake-up is due and not sent yet: new registrations share it
        self._tasks: set[asyncio.Task[None]] = set()  # held until done (the loop keeps only weak ones)

    def registered(self) -> None:
        """A new payment is committed: the matcher is woken within the window."""
        if not self._asked:
            self._asked = True
            task = asyncio.create_task(self._wake(), name="matcher-wakeup")
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        """Let the wake-ups asked for be sent (the service is stopping; at most a window's wait)."""
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _wake(self) -> None:
        await asyncio.sleep(self._window)
        self._asked = False  # registrations committed from here on ask for the next one
        try:
            await self._notify()
        except Exception as exc:  # noqa: BLE001 - the matcher's own poll finds the payment
            log.warning("registered.notify_failed", error=str(exc))
