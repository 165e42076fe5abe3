"""API-side faults: each account's rate limiter, commanded bursts and seeded random errors."""

from __future__ import annotations

import time
from enum import StrEnum

from fastapi import Request

from paysync_gateway_sim.contracts import Burst, BurstKind
from paysync_gateway_sim.state import Account, TokenBucket


class Verdict(StrEnum):
    """What to do with one API request that has been attributed to an account."""

    SERVE = "serve"
    OVER_LIMIT = "over_limit"  # refused by the rate limiter: the client went too fast
    RATE_LIMIT = "rate_limit"  # injected: a burst or the seeded ratio
    SERVER_ERROR = "server_error"
    QUOTA = "quota"


def set_rate_limit(account: Account, rate: float | None) -> None:
    """Install (or remove, for None/0) the account's token bucket, starting full."""
    account.rate_limit = rate or None
    account.bucket = TokenBucket(rate, rate, time.monotonic()) if rate else None


def add_burst(account: Account, burst: Burst) -> None:
    """Answer the account's next `burst.count` requests with `burst.kind`, after any queued burst."""
    account.bursts.append((burst.kind, burst.count))


def operation_of(request: Request) -> str:
    """The request's method and its route's template within the gateway's API: `GET /v1/events`."""
    route = request.scope.get("route")
    return f"{request.method} {getattr(route, 'path', request.url.path)}"


def check(account: Account, operation: str | None = None) -> Verdict:
    """Count the request (per `operation` too) and decide: the limiter first (real traffic), then
    injected faults."""
    stats = account.api_stats
    stats.requests += 1
    if operation is not None:
        stats.by_operation[operation] = stats.by_operation.get(operation, 0) + 1
    if account.bucket is not None and not account.bucket.take(time.monotonic()):
        stats.over_limit += 1
        return Verdict.OVER_LIMIT
    verdict = _injected(account)
    if verdict is Verdict.RATE_LIMIT:
        stats.injected_rate_limit += 1
    elif verdict is Verdict.SERVER_ERROR:
        stats.injected_server_error += 1
    elif verdict is Verdict.QUOTA:
        stats.injected_quota += 1
    else:
        stats.served += 1
    return verdict


def _injected(account: Account) -> Verdict:
    if account.bursts:
        kind, left = account.bursts[0]
        if left <= 1:
            account.bursts.popleft()
        else:
            account.bursts[0] = (kind, left - 1)
        return Verdict(kind.value)
    api = account.faults.api
    # Always draw both numbers so one ratio's setting does not shift the other's sequence.
    roll_limit, roll_error = account.api_rng.random(), account.api_rng.random()
    if api.rate_limit_ratio and roll_limit < api.rate_limit_ratio:
        return Verdict.RATE_LIMIT
    if api.server_error_ratio and roll_error < api.server_error_ratio:
        return Verdict.SERVER_ERROR
    return Verdict.SERVE


__all__ = ["BurstKind", "Verdict", "add_burst", "check", "operation_of", "set_rate_limit"]
