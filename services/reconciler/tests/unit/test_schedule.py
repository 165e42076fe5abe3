"""Check schedules: explicit delays, resolved payments stop, unresolved ones go stale after the last step."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from paysync_core.domain.status import UnifiedStatus as S
from paysync_reconciler.schedule import CheckSchedule, Next

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
SCHEDULE = CheckSchedule.of([60, 120, 300], retry_after_error=30)


def test_the_first_check_counts_from_registration():
    assert SCHEDULE.first_due(T0) == T0 + timedelta(seconds=60)


@pytest.mark.parametrize(
    "status", [S.SUCCEEDED, S.FAILED, S.CANCELED, S.EXPIRED, S.REFUNDED, S.PARTIALLY_REFUNDED, S.DISPUTED]
)
def test_an_ended_payment_or_one_where_money_moved_needs_no_more_checks(status):
    move = SCHEDULE.after_answer(0, status, T0)
    assert move.next is Next.DONE and move.due_at is None


@pytest.mark.parametrize("status", [S.PENDING, S.PROCESSING, S.REQUIRES_ACTION, None])
def test_an_open_payment_is_checked_again_after_the_next_delay_then_goes_stale(status):
    first = SCHEDULE.after_answer(0, status, T0)
    second = SCHEDULE.after_answer(first.step, status, T0 + timedelta(minutes=2))
    last = SCHEDULE.after_answer(second.step, status, T0 + timedelta(minutes=7))
    assert (first.next, first.step, first.due_at) == (Next.AGAIN, 1, T0 + timedelta(seconds=120))
    assert (second.next, second.step, second.due_at) == (Next.AGAIN, 2, T0 + timedelta(minutes=7))
    assert (last.next, last.step, last.due_at) == (Next.STALE, 3, None)


def test_a_gateway_error_repeats_the_same_step_soon():
    move = SCHEDULE.after_error(2, T0)
    assert (move.next, move.step, move.due_at) == (Next.RETRY, 2, T0 + timedelta(seconds=30))


def test_a_schedule_needs_delays():
    with pytest.raises(ValueError):
        CheckSchedule.of([])
    with pytest.raises(ValueError):
        CheckSchedule.of([10, -1])
