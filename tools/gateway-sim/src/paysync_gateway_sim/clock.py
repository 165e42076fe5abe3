"""The simulator's sense of time: wall-clock time plus an offset that tests can push forward."""

from __future__ import annotations

import time
from datetime import UTC, datetime


class SimClock:
    """Gateway-side time (object `created`, expiry, token lifetimes); moving it never goes backwards."""

    def __init__(self, offset_seconds: float = 0.0) -> None:
        self._offset = offset_seconds

    @property
    def offset(self) -> float:
        """Seconds this clock runs ahead of the wall clock."""
        return self._offset

    def time(self) -> float:
        """Now, as Unix seconds."""
        return time.time() + self._offset

    def timestamp(self) -> int:
        """Now, as whole Unix seconds (Stripe's `created`)."""
        return int(self.time())

    def now(self) -> datetime:
        """Now, as an aware UTC datetime."""
        return datetime.fromtimestamp(self.time(), tz=UTC)

    def advance(self, seconds: float) -> None:
        """Move time forward; expiries that fall due are applied by the next sweep."""
        if seconds < 0:
            raise ValueError("the clock only moves forward")
        self._offset += seconds

    def reset(self) -> None:
        """Back to the wall clock."""
        self._offset = 0.0
