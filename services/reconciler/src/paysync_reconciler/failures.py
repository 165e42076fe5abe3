"""Errors that are one payment's (or one request's) own problem: recorded and counted, never fatal to others.

A malformed reference, an answer no parser expected, a bug: whatever a single check raises that is not
a gateway error becomes that payment's `check_failed` sync issue, and its schedule backs off. An
on-demand check that fails as a whole is tried `request_max_attempts` times, then recorded as failed
with its reason, which its follow-up link shows.
"""

from __future__ import annotations

import structlog

from paysync_core.errors import GatewayError
from paysync_reconciler import metrics
from paysync_reconciler.models import Target

log = structlog.get_logger()

_MAX_REASON = 300


class CheckFailed(GatewayError):
    """A check of one payment failed for a reason of its own, not because the gateway failed."""

    code = "check_failed"

    def __init__(self, reason: str, *, provider: str) -> None:
        super().__init__(reason, provider=provider, retryable=False)
        self.reason = reason


def reason_of(exc: BaseException) -> str:
    """The error's type and the first line of its message, bounded: what an operator reads."""
    message = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    described = f"{type(exc).__name__}: {message}" if message else type(exc).__name__
    return described[:_MAX_REASON]


def check_failed(target: Target, exc: Exception) -> CheckFailed:
    """Turn what one payment's check raised into its recorded problem: counted and logged once, by type."""
    provider = target.provider.value
    metrics.CHECK_FAILURES.labels(provider, type(exc).__name__).inc()
    # The type only: a message may quote whatever the gateway or the row held.
    log.warning(
        "reconcile.check.failed",
        tenant=target.tenant,
        provider=provider,
        payment_id=str(target.payment_id) if target.payment_id else None,
        error=type(exc).__name__,
    )
    return CheckFailed(reason_of(exc), provider=provider)
