"""Gateway budgets: one token bucket per tenant and gateway, shared by every caller in this process.

On-demand checks go first: a caller of lower priority takes no token while one of higher
priority has wanted one in the last moment. A 429 from the gateway halves the rate and pauses
the bucket for the gateway's `Retry-After`; the rate then climbs back linearly. With a `shared`
bucket (`budget_lease.SharedBucket`), every token must also come from the tenant's bucket in
PostgreSQL, which all replicas share: the process's own bucket then only paces this replica after a 429.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field
from enum import IntEnum

from paysync_core.providers.clients.retry import RequestBudget
from paysync_core.ratelimit import TokenBucket

#: Seconds between two cuts of the rate: 429s answering requests already in flight are one signal.
_SLOWDOWN_SPACING = 1.0


class Priority(IntEnum):
    """Who is asking the gateway; lower values go first."""

    ON_DEMAND = 0  # a person pressed "Check payment status"
    CONFIRM = 1  # an unsigned callback waits for its confirmation
    BULK = 2  # a person pressed "Check payments": thousands of calls, after the checks of one payment
    SWEEP = 3  # the scheduled sweeps


#: The priority of the calls made in the current task (and the tasks it starts).
current_priority: ContextVar[Priority] = ContextVar("current_priority", default=Priority.SWEEP)


@contextlib.contextmanager
def priority(level: Priority) -> Iterator[None]:
    """Make the gateway calls inside this block (and tasks started in it) at `level`."""
    token = current_priority.set(level)
    try:
        yield
    finally:
        current_priority.reset(token)


@dataclass(slots=True)
class GatewayBudget:
    """`rate` requests a second to one tenant's gateway account, highest priority first."""

    rate: float
    burst: float
    slowdown_factor: float = 0.5
    recovery_seconds: float = 30.0
    clock: Callable[[], float] = time.monotonic
    on_take: Callable[[Priority], None] | None = None
    shared: RequestBudget | None = None
    _bucket: TokenBucket = field(init=False)
    _wanted: dict[Priority, float] = field(init=False, default_factory=dict)
    _paused_until: float = field(init=False, default=0.0)
    _current_rate: float = field(init=False)
    _rate_at: float = field(init=False)
    _slowed_at: float = field(init=False, default=float("-inf"))
    _last_429: float = field(init=False, default=float("-inf"))
    slowdowns: int = field(init=False, default=0)
    taken: dict[Priority, int] = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        self._bucket = TokenBucket(self.rate, max(1.0, self.burst), self.clock)
        self._current_rate = self.rate
        self._rate_at = self.clock()

    @property
    def current_rate(self) -> float:
        """The rate in force now (below `rate` for a while after a 429)."""
        self._recover(self.clock())
        return self._current_rate

    @property
    def _hold(self) -> float:
        # Long enough that a waiting caller of higher priority, asleep until its token, still counts.
        return 2.0 / self._current_rate + 0.05

    def try_take(self, tokens: float = 1.0) -> bool:
        """Take a token for the current task's priority, if no higher priority is waiting."""
        level = current_priority.get()
        now = self.clock()
        self._recover(now)
        if now < self._paused_until or self._outranked(level, now):
            self._wanted[level] = now
            return False
        if self._bucket.wait_time(tokens) == 0.0 and self._take_shared(tokens):
            self._bucket.try_take(tokens)
            self.taken[level] = self.taken.get(level, 0) + 1
            if self.on_take is not None:
                self.on_take(level)
            return True
        self._wanted[level] = now
        return False

    def wait_time(self, tokens: float = 1.0) -> float:
        """Seconds until a token may be there for the current task's priority."""
        level = current_priority.get()
        now = self.clock()
        wait = max(self._bucket.wait_time(tokens), self._paused_until - now)
        if self.shared is not None:
            wait = max(wait, self.shared.wait_time(tokens))
        if self._outranked(level, now):
            wait = max(wait, 1.0 / self._current_rate)
        return max(wait, 0.0)

    def slow_down(self, retry_after: float | None = None) -> None:
        """The gateway said 429: cut the rate, and send nothing until its Retry-After has passed."""
        now = self.clock()
        self._recover(now)
        # The requests already in flight answer 429 together: that is one signal, not one per answer.
        if now - self._slowed_at >= _SLOWDOWN_SPACING:
            self._current_rate = max(self.rate * 0.05, self._current_rate * self.slowdown_factor)
            self._bucket.rate = self._current_rate
            self._slowed_at = now
            self.slowdowns += 1
        self._last_429 = now  # no climbing back while the gateway still says 429
        pause = retry_after if retry_after is not None else 1.0 / self._current_rate
        self._paused_until = max(self._paused_until, now + pause)

    def _take_shared(self, tokens: float) -> bool:
        return self.shared is None or self.shared.try_take(tokens)

    def _outranked(self, level: Priority, now: float) -> bool:
        return any(p < level and now - at < self._hold for p, at in self._wanted.items())

    def _recover(self, now: float) -> None:
        if self._current_rate >= self.rate:
            return
        since = max(self._rate_at, self._last_429 + _SLOWDOWN_SPACING)  # climb only once it is quiet
        if now <= since:
            return
        climbed = self.rate * (now - since) / self.recovery_seconds
        self._current_rate = min(self.rate, self._current_rate + climbed)
        self._rate_at = now
        self._bucket.rate = self._current_rate
