"""A real run's report read step by step as the projector applies them: `paysync_cli.replay_applied`.

Against the database, without the projector: each step's "apply" is the test writing the payment's status,
as the projector would before committing its offsets. `test_replay.py` shows the whole report through
`paysync replay` against the projector.
"""

from __future__ import annotations

import uuid
from functools import partial

import pytest
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncEngine

from paysync_cli.replay_applied import AppliedState
from paysync_cli.replay_outage import DatabaseRetry
from paysync_cli.replay_shadow import PaymentRow, load_payments
from paysync_core.db.schema import payments
from paysync_dev.fixtures import TestTenant
from paysync_dev.reconcile import register

pytestmark = pytest.mark.integration

Before = dict[uuid.UUID, PaymentRow]


async def apply(engine: AsyncEngine, pid: uuid.UUID, status: str) -> None:
    """What the projector does to the payment in a step: its status is now `status`."""
    async with engine.begin() as conn:
        await conn.execute(update(payments).where(payments.c.id == pid).values(status=status))


async def registered(engine: AsyncEngine, tenant: TestTenant, n: int) -> tuple[list[uuid.UUID], Before]:
    """`n` payments registered (pending): their ids, and their rows as a real run reads them first."""
    pids = [await register(engine, tenant.id, "stripe", f"cs_test_{uuid.uuid4().hex}") for _ in range(n)]
    async with engine.connect() as conn:
        return pids, await load_payments(conn, pids, merge_state=False)


@pytest.mark.parametrize("published", ["after the first was applied", "before the first was applied"])
async def test_a_payment_two_steps_touch_is_reported_as_the_second_left_it(
    engine: AsyncEngine, tenant: TestTenant, published: str
) -> None:
    [pid], before = await registered(engine, tenant, 1)
    state = AppliedState(engine, None, before, {}, DatabaseRetry(60))

    state.touch(1, before.values())
    if published == "before the first was applied":
        state.touch(2, before.values())
    await state.applied(1, partial(apply, engine, pid, "succeeded"))
    if published == "after the first was applied":
        state.touch(2, before.values())
    await state.applied(2, partial(apply, engine, pid, "refunded"))

    assert [(row.id, row.snapshot.status, now.status) for row, now in state.changed()] == [
        (pid, "pending", "refunded")
    ]


async def test_a_payment_one_step_touches_is_reported_as_that_step_left_it(
    engine: AsyncEngine, tenant: TestTenant
) -> None:
    [first, second], before = await registered(engine, tenant, 2)
    state = AppliedState(engine, None, before, {}, DatabaseRetry(60))

    state.touch(1, [before[first]])
    state.touch(2, [before[second]])
    await state.applied(1, partial(apply, engine, first, "succeeded"))
    await state.applied(2, partial(apply, engine, second, "failed"))

    reported = {row.id: now.status for row, now in state.changed()}
    assert reported == {first: "succeeded", second: "failed"}


async def test_a_payment_a_later_step_sets_back_is_not_reported(
    engine: AsyncEngine, tenant: TestTenant
) -> None:
    [pid], before = await registered(engine, tenant, 1)
    state = AppliedState(engine, None, before, {}, DatabaseRetry(60))

    state.touch(1, before.values())
    await state.applied(1, partial(apply, engine, pid, "succeeded"))
    state.touch(2, before.values())
    await state.applied(2, partial(apply, engine, pid, "pending"))

    assert list(state.changed()) == []
