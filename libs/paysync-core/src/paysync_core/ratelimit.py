"""Token buckets: a rate with a burst, per key."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(slots=True)
class TokenBucket:
    """`rate` tokens a second, holding at most `burst`; starts full."""

    rate: float
    burst: float
    clock: Callable[[], float] = time.monotonic
    _tokens: float = field(init=False)
    _at: float = field(init=False)

    def __post_init__(self) -> None:
        self._tokens = self.burst
        self._at = self.clock()

    def try_take(self, tokens: float = 1.0) -> bool:
        """Take tokens if there are enough now; False (and take none) otherwise."""
        self._refill()
        if self._tokens >= tokens:
            self._tokens -= tokens
            return True
        return False

    def wait_time(self, tokens: float = 1.0) -> float:
        """Seconds until `tokens` will be there (0 if they are now)."""
        self._refill()
        return max(0.0, (tokens - self._tokens) / self.rate)

    def _refill(self) -> None:
        now = self.clock()
        self._tokens = min(self.burst, self._tokens + (now - self._at) * self.rate)
        self._at = now


class KeyedBuckets:
    """One bucket per key (tenant, say), created on first use; idle full buckets are forgotten."""

    def __init__(self, rate: float, burst: float, *, max_keys: int = 100_000) -> None:
        self.rate, self.burst, self.max_keys = rate, burst, max_keys
        self._buckets: dict[str, TokenBucket] = {}

    def try_take(self, key: str, tokens: float = 1.0) -> bool:
        """Take from the key's bucket."""
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= self.max_keys:
                self._forget_full()
            bucket = self._buckets[key] = TokenBucket(self.rate, self.burst)
        return bucket.try_take(tokens)

    def wait_time(self, key: str, tokens: float = 1.0) -> float:
        """Seconds until the key's bucket holds `tokens` (0 for a key never used: its bucket is full)."""
        bucket = self._buckets.get(key)
        return bucket.wait_time(tokens) if bucket is not None else 0.0

    def _forget_full(self) -> None:
        for key in [k for k, b in self._buckets.items() if b.wait_time(b.burst) == 0.0]:
            del self._buckets[key]
