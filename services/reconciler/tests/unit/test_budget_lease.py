"""A replica's share of a shared budget: leased in batches, dropped when stale, waits while it is empty."""

from __future__ import annotations

import pytest

from paysync_reconciler.budget_lease import SharedBucket
from paysync_reconciler.repository.budgets import Lease


class Clock:
    """A clock the test moves."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


async def settled(bucket: SharedBucket) -> None:
    """Let a lease started by `try_take` finish."""
    if bucket._task is not None:
        await bucket._task


async def test_tokens_come_in_leases_of_a_quarter_second_and_go_stale_after_one():
    clock, asked = Clock(), []

    async def lease(want: int) -> Lease:
        asked.append(want)
        return Lease(granted=want, left_over=10.0)

    bucket = SharedBucket(rate=20, lease_seconds=0.25, lease=lease, clock=clock)
    assert not bucket.try_take()  # nothing leased yet: a lease starts
    await settled(bucket)
    assert asked == [5]
    assert [bucket.try_take() for _ in range(6)] == [True] * 5 + [False]
    await settled(bucket)
    assert bucket.try_take()
    clock.now += 0.25  # the four left are stale: dropped, never carried over
    assert not bucket.try_take()
    await settled(bucket)
    assert asked == [5, 5, 5]


async def test_an_empty_bucket_is_asked_again_when_its_next_token_is_due():
    clock, asked = Clock(), []

    async def lease(want: int) -> Lease:
        asked.append(want)
        return Lease(granted=0, left_over=0.5)

    bucket = SharedBucket(rate=20, lease_seconds=0.25, lease=lease, clock=clock)
    assert not bucket.try_take()
    await settled(bucket)
    assert bucket.wait_time() == pytest.approx(0.5 / 20)
    assert not bucket.try_take()  # too early: no second statement
    await settled(bucket)
    assert asked == [5]
    clock.now += 0.5 / 20
    assert not bucket.try_take()
    await settled(bucket)
    assert asked == [5, 5]
