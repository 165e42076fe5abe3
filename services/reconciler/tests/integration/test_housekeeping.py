"""Answered requests and finished ticks are kept for a while for follow-ups, then forgotten."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, update

from paysync_core.contracts import ReconcileRequest
from paysync_core.db.schema import reconcile_requests, reconcile_ticks
from paysync_dev.service_fixtures import fetch, wait_until
from paysync_reconciler import repository as repo
from paysync_reconciler.on_demand import UNREADABLE

pytestmark = pytest.mark.integration


async def test_old_answers_and_ticks_are_forgotten_recent_and_running_ones_kept(engine):
    now = datetime.now(UTC)
    ids = {age: f"rr_{uuid.uuid4().hex}" for age in ("old", "recent", "running")}
    ticks = {age: f"t:{uuid.uuid4().hex}" for age in ("old", "recent")}
    async with engine.begin() as conn:
        for age, request_id in ids.items():
            await repo.start_request(
                conn, {"request_id": request_id, "tenant": "t-x", "kind": "bulk", "request": {}}, "me", 60, 3
            )
            if age != "running":
                await repo.complete_request(conn, request_id, {"request_id": request_id})
        for tick_id in ticks.values():
            await repo.record_tick(
                conn,
                {
                    "tick_id": tick_id,
                    "tenant_id": "t-x",
                    "provider": "stripe",
                    "scheduled_at": now,
                    "source": "cli",
                    "handled_by": "me",
                },
            )
            await repo.finish_tick(conn, tick_id, "completed", {})
        await conn.execute(
            update(reconcile_requests)
            .where(reconcile_requests.c.request_id == ids["old"])
            .values(completed_at=now - timedelta(days=4))
        )
        await conn.execute(
            update(reconcile_ticks)
            .where(reconcile_ticks.c.tick_id == ticks["old"])
            .values(completed_at=now - timedelta(days=4))
        )
        purged = await repo.purge_finished(conn, now - timedelta(hours=72))
    async with engine.connect() as conn:
        left = set(
            (
                await conn.execute(
                    select(reconcile_requests.c.request_id).where(
                        reconcile_requests.c.request_id.in_(list(ids.values()))
                    )
                )
            ).scalars()
        )
        left_ticks = set(
            (
                await conn.execute(
                    select(reconcile_ticks.c.tick_id).where(
                        reconcile_ticks.c.tick_id.in_(list(ticks.values()))
                    )
                )
            ).scalars()
        )
    assert purged >= 2
    assert left == {ids["recent"], ids["running"]} and left_ticks == {ticks["recent"]}


async def test_a_check_api_gateway_queued_is_taken_as_new_or_run_from_its_record_when_kafka_is_late(engine):
    ids = [f"rr_{uuid.uuid4().hex}" for _ in range(2)]
    async with engine.begin() as conn:
        for request_id in ids:
            await conn.execute(
                reconcile_requests.insert().values(
                    request_id=request_id,
                    tenant="t-x",
                    kind="bulk",
                    status="queued",
                    request={"request_id": request_id},
                    lease_until=datetime.now(UTC) - timedelta(seconds=1),
                )
            )
        # The request reaches a reconciler through Kafka: it is new work, not a takeover.
        state, _ = await repo.start_request(
            conn, {"request_id": ids[0], "tenant": "t-x", "kind": "bulk", "request": {}}, "me", 60, 3
        )
        assert state == "new"
        # The other never arrived in time: the recovery loop runs it from its record.
        claimed = {
            r.request_id: r.request
            for r in await repo.claim_orphaned_requests(conn, "me", 60, limit=100, max_attempts=3)
        }
        assert claimed.get(ids[1]) == {"request_id": ids[1]} and ids[0] not in claimed
        rows = await conn.execute(
            select(reconcile_requests.c.status, reconcile_requests.c.handled_by).where(
                reconcile_requests.c.request_id.in_(ids)
            )
        )
        assert set(rows) == {("running", "me")}


async def test_a_stored_request_that_cannot_be_read_ends_failed_and_other_checks_are_still_recovered(
    engine, start_reconciler, lost_webhooks_tenant
):
    # A check whose worker died, stored in a form this version cannot read (an older version's, or by
    # hand). Before: the recovery loop crashed on it and no reconciler answered any tenant's check again.
    tenant = await lost_webhooks_tenant(("stripe",))
    long_ago = datetime.now(UTC) - timedelta(minutes=5)
    unreadable = f"rr_{uuid.uuid4().hex}"
    async with engine.begin() as conn:
        await conn.execute(
            reconcile_requests.insert().values(
                request_id=unreadable,
                tenant=tenant.id,
                kind="bulk",
                status="running",
                request={"request_id": unreadable},
                handled_by="a-replica-that-died",
                lease_until=long_ago,
                attempts=1,
            )
        )
    await start_reconciler(scheduler_enabled="false", recovery_poll_seconds=0.2)

    async def state_of(request_id: str) -> tuple[str, str | None]:
        [row] = await fetch(
            engine,
            select(reconcile_requests.c.status, reconcile_requests.c.error).where(
                reconcile_requests.c.request_id == request_id
            ),
        )
        return row.status, row.error

    async def unreadable_failed() -> bool:
        return (await state_of(unreadable))[0] != "running"

    await wait_until(unreadable_failed, 30, "the unreadable request to stop running")
    assert await state_of(unreadable) == ("failed", UNREADABLE)

    # A check api-gateway queued that never came through Kafka: the same loop still runs it from its record.
    late = ReconcileRequest(
        request_id=f"rr_{uuid.uuid4().hex}", tenant=tenant.id, kind="bulk", requested_at=datetime.now(UTC)
    )
    async with engine.begin() as conn:
        await conn.execute(
            reconcile_requests.insert().values(
                request_id=late.request_id,
                tenant=tenant.id,
                kind="bulk",
                status="queued",
                request=late.model_dump(mode="json"),
                lease_until=long_ago,
            )
        )

    async def late_answered() -> bool:
        return (await state_of(late.request_id))[0] not in ("queued", "running")

    await wait_until(late_answered, 30, "the queued check to be answered by the recovery loop")
    assert await state_of(late.request_id) == ("completed", None)
