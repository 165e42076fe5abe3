"""A circuit breaker per tenant and gateway: stop hammering a gateway that keeps failing."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum

from paysync_core.errors import GatewayError


class CircuitState(StrEnum):
    """Closed: calls go out. Open: they do not. Half-open: one trial call may."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class CircuitOpen(GatewayError):
    """The circuit is open: the gateway kept failing, so nothing is sent until the cool-down ends."""

    code = "circuit_open"

    def __init__(self, provider: str, retry_after: float) -> None:
        super().__init__(
            "circuit open after repeated failures", provider=provider, retryable=True, retry_after=retry_after
        )


@dataclass(slots=True)
class CircuitBreaker:
    """Opens after `threshold` failures in a row; after `cooldown` seconds lets one trial through."""

    threshold: int
    cooldown: float
    clock: Callable[[], float] = time.monotonic
    state: CircuitState = field(init=False, default=CircuitState.CLOSED)
    failures: int = field(init=False, default=0)
    _opened_at: float = field(init=False, default=0.0)
    _trial_out: bool = field(init=False, default=False)

    def allow(self) -> bool:
        """Whether a call may go out now."""
        if self.state is CircuitState.CLOSED:
            return True
        if self.state is CircuitState.OPEN and self.clock() - self._opened_at >= self.cooldown:
            self.state = CircuitState.HALF_OPEN
            self._trial_out = False
        if self.state is CircuitState.HALF_OPEN and not self._trial_out:
            self._trial_out = True
            return True
        return False

    def retry_after(self) -> float:
        """Seconds until a trial call may go out."""
        return max(0.0, self.cooldown - (self.clock() - self._opened_at))

    def record_success(self) -> bool:
        """The gateway answered; True when this closed an open circuit."""
        was_open = self.state is not CircuitState.CLOSED
        self.state, self.failures, self._trial_out = CircuitState.CLOSED, 0, False
        return was_open

    def record_failure(self) -> bool:
        """The gateway failed; True when this opened the circuit."""
        self.failures += 1
        if self.state is CircuitState.HALF_OPEN or (
            self.state is CircuitState.CLOSED and self.failures >= self.threshold
        ):
            opened = self.state is CircuitState.CLOSED
            self.state, self._opened_at, self._trial_out = CircuitState.OPEN, self.clock(), False
            return opened
        return False
