"""Refresh presses: a user hammering "Check payment status" costs one check, and a key's presses a rate.

A press on a target (one entity, or a tenant's bulk check) whose check is already in flight in
this replica joins it and gets the same answer (the same `request_id`, 200 or 202) without
starting another. A press that would start a new check takes a token from its key's bucket for
that target (`refresh_press_burst`, refilled at `refresh_press_rate` per second); with none left
it is refused 429 `too_many_refreshes` with `Retry-After`. Publishable keys are shared by every
visitor of a page, so the bucket is per key *and* target: one visitor hammering one payment does
not hold back another's.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable
from typing import Any, TypeVar

from prometheus_client import Counter

from paysync_core.errors import PaysyncError
from paysync_core.ratelimit import KeyedBuckets

T = TypeVar("T")
PRESSES = Counter(
    "paysync_api_gateway_refresh_presses",
    "Refresh presses: started a check, joined one in flight, or refused past the key's rate",
    ["outcome"],
)


class TooManyRefreshes(PaysyncError):
    """This key started too many checks of this target lately; it may press again after `retry_after`."""

    code = "too_many_refreshes"

    def __init__(self, retry_after: float) -> None:
        self.retry_after = retry_after
        super().__init__("this key asked for this check too often; the last answer still stands, try later")


class RefreshPresses:
    """Checks in flight by target, and each (key, target)'s budget of new ones."""

    def __init__(self, rate: float, burst: float) -> None:
        self._budgets = KeyedBuckets(rate, burst)
        self._in_flight: dict[Hashable, asyncio.Task[Any]] = {}

    async def press(self, key_id: int, target: Hashable, check: Callable[[], Awaitable[T]]) -> T:
        """Join the check of `target` in flight, or start one with `check` if the key's budget allows."""
        flight = self._in_flight.get(target)
        if flight is not None:
            PRESSES.labels("joined").inc()
        else:
            budget = repr((key_id, target))
            if not self._budgets.try_take(budget):
                PRESSES.labels("refused").inc()
                raise TooManyRefreshes(self._budgets.wait_time(budget))
            PRESSES.labels("started").inc()
            flight = asyncio.ensure_future(check())
            self._in_flight[target] = flight
            flight.add_done_callback(lambda done: self._land(target, done))
        # Shielded: a presser who leaves does not cancel the check the others wait for.
        return await asyncio.shield(flight)

    def _land(self, target: Hashable, done: asyncio.Task[Any]) -> None:
        if self._in_flight.get(target) is done:
            del self._in_flight[target]
        if not done.cancelled():
            done.exception()  # retrieved, so a check nobody awaits any more is not reported as lost
