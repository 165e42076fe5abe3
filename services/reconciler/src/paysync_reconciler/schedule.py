"""Per-payment check schedules: explicit delays, and the give-up rule that makes a payment stale."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from paysync_core.domain.status import UnifiedStatus

#: Statuses before money moved that the gateway may still change: these keep being checked.
OPEN_STATUSES = frozenset({UnifiedStatus.PENDING, UnifiedStatus.REQUIRES_ACTION, UnifiedStatus.PROCESSING})


def resolved(status: UnifiedStatus | None) -> bool:
    """True when no further scheduled check is needed: the payment ended, or money moved."""
    return status is not None and (status.settled or status.money_moved)


class Next(StrEnum):
    """What happens to a payment's schedule after one check."""

    DONE = "done"  # resolved: no more checks
    AGAIN = "again"  # unresolved: the next step is due later
    STALE = "stale"  # unresolved after the last step: give up and alert
    RETRY = "retry"  # the gateway could not answer: the same step again, soon


@dataclass(frozen=True, slots=True)
class Transition:
    """A schedule's move: the step it is at afterwards and when that step is due (None: never)."""

    next: Next
    step: int
    due_at: datetime | None


@dataclass(frozen=True, slots=True)
class CheckSchedule:
    """Delays in seconds: the first counts from registration, each next one from the check before."""

    delays: tuple[float, ...]
    retry_after_error: float = 60.0

    @classmethod
    def of(cls, delays: Sequence[float], retry_after_error: float = 60.0) -> CheckSchedule:
        """A schedule from configured delays (at least one)."""
        if not delays or any(d < 0 for d in delays):
            raise ValueError("a schedule needs at least one delay, none negative")
        return cls(tuple(float(d) for d in delays), retry_after_error)

    def first_due(self, registered_at: datetime) -> datetime:
        """When a newly registered payment is checked first."""
        return registered_at + timedelta(seconds=self.delays[0])

    def after_answer(self, step: int, status: UnifiedStatus | None, now: datetime) -> Transition:
        """The move after the gateway answered check `step` (0-based) with `status`."""
        if resolved(status):
            return Transition(Next.DONE, step + 1, None)
        following = step + 1
        if following >= len(self.delays):
            return Transition(Next.STALE, following, None)
        return Transition(Next.AGAIN, following, now + timedelta(seconds=self.delays[following]))

    def after_error(self, step: int, now: datetime) -> Transition:
        """The move when the gateway could not be asked: the same step, a little later."""
        delay = min(self.retry_after_error, max(self.delays[min(step, len(self.delays) - 1)], 1.0))
        return Transition(Next.RETRY, step, now + timedelta(seconds=delay))
