"""Retries with jittered exponential backoff, `Retry-After`, and the caller's request budget.

Every gateway call goes through `with_retries`: an attempt either returns or raises a
GatewayError whose `retryable` and `retry_after` say whether, and when, another try can help.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Protocol, TypeVar

import structlog

from paysync_core.errors import GatewayError, RateLimited
from paysync_core.providers.clients.errors import BudgetExhausted, GatewayBusy, GatewayUnreachable

log = structlog.get_logger()

T = TypeVar("T")
Sleep = Callable[[float], Awaitable[None]]


class RequestBudget(Protocol):
    """What a `TokenBucket` offers: every request to a gateway takes one token first."""

    def try_take(self, tokens: float = 1.0) -> bool:
        """Take tokens if there are enough now."""
        ...

    def wait_time(self, tokens: float = 1.0) -> float:
        """Seconds until `tokens` will be there."""
        ...


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How hard a client tries: attempts, backoff bounds, and how long it may wait."""

    max_attempts: int = 4
    base_delay: float = 0.25
    max_delay: float = 8.0
    max_retry_after: float = 30.0  # a longer Retry-After goes back to the caller, unslept
    max_budget_wait: float = 30.0  # longest wait for a token from the caller's budget

    def backoff(self, retry_number: int, rng: random.Random | None = None) -> float:
        """Seconds before retry `retry_number` (1-based): half fixed, half random ("equal jitter")."""
        ceiling = min(self.max_delay, self.base_delay * 2 ** (retry_number - 1))
        return ceiling / 2 + (rng or random).uniform(0, ceiling / 2)


def retry_after_seconds(headers: Mapping[str, str], now: datetime | None = None) -> float | None:
    """The `Retry-After` header in seconds (delta-seconds or an HTTP date), or None."""
    value = next((v for k, v in headers.items() if k.lower() == "retry-after"), None)
    if value is None or not value.strip():
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - (now or datetime.now(UTC))).total_seconds()
    return max(0.0, seconds) if seconds == seconds else None  # NaN is no advice


def safe_to_repeat(error: GatewayError) -> bool:
    """True when the gateway cannot have acted on the request: repeating it creates nothing twice."""
    if isinstance(error, (RateLimited, GatewayBusy)):
        return True  # turned away at the door
    if isinstance(error, GatewayUnreachable):
        return not error.request_sent
    return False


async def take_budget(
    budget: RequestBudget | None, policy: RetryPolicy, provider: str, sleep: Sleep = asyncio.sleep
) -> None:
    """Wait for one token from the caller's budget; BudgetExhausted when it would take too long."""
    if budget is None:
        return
    waited = 0.0
    while not budget.try_take():
        wait = max(budget.wait_time(), 0.001)
        if waited + wait > policy.max_budget_wait:
            raise BudgetExhausted(
                "request budget exhausted", provider=provider, retryable=True, retry_after=wait
            )
        await sleep(wait)
        waited += wait


async def with_retries(
    attempt: Callable[[], Awaitable[T]],
    *,
    policy: RetryPolicy,
    provider: str,
    operation: str,
    idempotent: bool = True,
    sleep: Sleep = asyncio.sleep,
    rng: random.Random | None = None,
) -> T:
    """Run `attempt` until it returns, fails for good, or the attempts run out.

    A retryable GatewayError is tried again after its `retry_after` (when the gateway gave
    one) or a jittered backoff. A non-idempotent request is only repeated when the gateway
    cannot have acted on it. A `retry_after` longer than the policy allows is raised at once,
    so the caller can reschedule instead of holding a worker.
    """
    for number in range(1, policy.max_attempts + 1):
        try:
            return await attempt()
        except GatewayError as error:
            if not error.retryable or number == policy.max_attempts:
                raise
            if isinstance(error, BudgetExhausted):
                raise  # the budget already waited as long as it may: the caller reschedules
            if not idempotent and not safe_to_repeat(error):
                raise
            if error.retry_after is not None:
                if error.retry_after > policy.max_retry_after:
                    raise
                # Never earlier than asked; a little later so a crowd of clients spreads out.
                delay = error.retry_after + (rng or random).uniform(0, policy.base_delay / 2)
            else:
                delay = policy.backoff(number, rng)
            log.info(
                "gateway.retry",
                provider=provider,
                operation=operation,
                attempt=number,
                delay_s=round(delay, 3),
                status_code=error.status_code,
                error=error.code,
            )
            await sleep(delay)
    raise AssertionError("unreachable: the loop returns or raises")  # pragma: no cover
