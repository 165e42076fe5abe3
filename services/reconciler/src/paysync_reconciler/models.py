"""The records the reconciler's use cases pass around; its tick message is `contracts.ReconcileTick`."""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from paysync_core.contracts import Provider, ReconcileTick
from paysync_core.domain.status import UnifiedStatus


def slot_of(moment: datetime, cadence_seconds: float) -> int:
    """The cadence slot a moment falls in."""
    return math.floor(moment.timestamp() / cadence_seconds)


def scheduled_tick(tenant: str, provider: Provider, cadence_seconds: float, now: datetime) -> ReconcileTick:
    """The tick of the slot `now` is in: every scheduler computes the same id for it."""
    starts = datetime.fromtimestamp(slot_of(now, cadence_seconds) * cadence_seconds, UTC)
    # The slot's start, readable (and not a long digit run the log redaction would mask as a phone number).
    stamp = starts.strftime("%Y-%m-%dT%H:%M:%S.") + f"{starts.microsecond // 1000:03d}Z"
    return ReconcileTick(
        tick_id=f"{tenant}:{Provider(provider).value}:{cadence_seconds:g}s:{stamp}",
        tenant=tenant,
        provider=provider,
        scheduled_at=starts,
        source="scheduler",
    )


def manual_tick(tenant: str, provider: Provider, now: datetime) -> ReconcileTick:
    """A tick an operator asked for: always a new id, so it always runs."""
    return ReconcileTick(
        tick_id=f"{tenant}:{Provider(provider).value}:manual:{uuid.uuid4().hex}",
        tenant=tenant,
        provider=provider,
        scheduled_at=now,
        source="cli",
    )


@dataclass(frozen=True, slots=True)
class Target:
    """A payment to ask the gateway about, with what paysync shows for it now."""

    payment_id: uuid.UUID | None
    tenant: str
    provider: Provider
    provider_ref: str
    status: UnifiedStatus | None = None
    amount_minor: int | None = None
    currency: str | None = None
    domain: str | None = None
    entity_id: str | None = None
    step: int = 0
    listed_status: UnifiedStatus | None = None
    #: When paysync registered it (bulk checks: their lists' window starts before the oldest).
    registered_at: datetime | None = None


class Phase(StrEnum):
    """A timed phase of a sweep; its seconds are reported as `<phase>_s`."""

    ENROLL = "enroll"
    FETCH = "fetch"
    UNLISTED_CHECKS = "unlisted_checks"
    CHECKS = "checks"
    UNRECORDED = "unrecorded"


#: Most payment ids a sweep's report lists as recovered (the count, `fixed`, is always whole).
MAX_RECOVERED = 1000


@dataclass(slots=True)
class RunStats:
    """What one sweep or check did: the counts users know from a sync job's report."""

    checked: int = 0
    listed: int = 0
    fixed: int = 0
    issues_found: int = 0
    gateway_errors: int = 0
    gateway_calls: int = 0
    gave_up: int = 0
    created: int = 0
    # Reported only once something happened (a zero would reset the `last_run_stat` gauge of a sweep
    # that did not get that far): the enrolment, the list's pages and observations, the due checks
    # answered directly or ended without money moving, the alerts raised.
    enrolled: int | None = None
    pages: int = 0
    observations: int = 0
    direct: int = 0
    ended_unpaid: int = 0
    alerts_raised: int = 0
    window_start: datetime | None = None
    # A window sweep's estimate of the payments it will answer for: those paysync registered in the
    # window (only the unsettled ones where each is checked one by one, M-Pesa: then it is exact).
    expected: int | None = None
    # Payments whose status the list corrected (ids; the first `_MAX_RECOVERED` only): what a window
    # sweep recovered.
    recovered: list[str] = field(default_factory=list)
    # Why the list could not be read (the sweep is partial), why the sweep was skipped, why it failed.
    list_error: str | None = None
    reason: str | None = None
    error: str | None = None
    seconds: float | None = None
    phases: dict[Phase, float] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        """The counts, for the tick's row and the logs."""
        report: dict[str, Any] = {
            "checked": self.checked,
            "listed": self.listed,
            "fixed": self.fixed,
            "issues_found": self.issues_found,
            "gateway_errors": self.gateway_errors,
            "gateway_calls": self.gateway_calls,
            "gave_up": self.gave_up,
            "created": self.created,
        }
        optional = {
            "enrolled": self.enrolled,
            "expected": self.expected,
            "window_start": self.window_start.isoformat() if self.window_start else None,
            "list_error": self.list_error,
            "reason": self.reason,
            "error": self.error,
            "seconds": self.seconds,
        }
        report |= {name: value for name, value in optional.items() if value is not None}
        counts = {
            "pages": self.pages,
            "observations": self.observations,
            "direct": self.direct,
            "ended_unpaid": self.ended_unpaid,
            "alerts_raised": self.alerts_raised,
        }
        report |= {name: count for name, count in counts.items() if count}
        if self.recovered:
            report["recovered"] = list(self.recovered)
        return report | {f"{phase.value}_s": seconds for phase, seconds in self.phases.items()}


@dataclass(frozen=True, slots=True)
class ListedPage:
    """One page of a gateway's list: the references each item touches (read cheaply), and the page itself."""

    refs: tuple[tuple[str, ...], ...]
    payload: bytes  # Stripe: the Events page as received; Paystack: its transactions as a JSON array
