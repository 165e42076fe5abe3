"""SQL of on-demand requests: leases, attempts, stored replies, housekeeping."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Literal

from sqlalchemy import Interval, bindparam, func, select, text, true, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from paysync_core.db.driver import DriverStatement
from paysync_core.db.schema import reconcile_requests

Started = Literal["new", "taken_over", "completed", "busy"]

# Built once, its values bound at execution: a statement built per request (`values(**values)`) had its
# cache key computed each time, a third of the SQLAlchemy work of an M-Pesa confirmation's start.
_START = (
    insert(reconcile_requests)
    .values(
        request_id=bindparam("request_id"),
        tenant=bindparam("tenant"),
        kind=bindparam("kind"),
        request=bindparam("request", type_=reconcile_requests.c.request.type),
        handled_by=bindparam("owner"),
        lease_until=func.now() + bindparam("lease", type_=Interval),
        attempts=1,
    )
    .on_conflict_do_nothing()
    .returning(reconcile_requests.c.request_id)
)
#: Sent past SQLAlchemy's execution layer (`DriverStatement`): the one statement of most requests' start.
_START_ON_DRIVER = DriverStatement.of(_START)


async def start_request(
    conn: AsyncConnection, values: dict[str, Any], owner: str, lease: float, max_attempts: int
) -> tuple[Started, dict[str, Any] | None]:
    """Take a request on, or say who has it: new (or queued by api-gateway), taken over (its worker
    died or it failed, with attempts left), completed, busy (or failed: the follow-up link says why)."""
    until = func.now() + timedelta(seconds=lease)
    inserted = await _START_ON_DRIVER.fetch(
        conn, {**values, "owner": owner, "lease": timedelta(seconds=lease)}
    )
    if inserted:
        return "new", None
    transitions: tuple[tuple[str, Started], ...] = (("queued", "new"), ("running", "taken_over"))
    for was, state in transitions:
        taken = await conn.execute(
            update(reconcile_requests)
            .where(
                reconcile_requests.c.request_id == values["request_id"],
                reconcile_requests.c.status == was,
                # queued: by api-gateway, so that its follow-up link answers before anyone starts
                true() if was == "queued" else reconcile_requests.c.lease_until < func.now(),
                reconcile_requests.c.attempts < max_attempts,
            )
            .values(
                status="running",
                handled_by=owner,
                lease_until=until,
                attempts=reconcile_requests.c.attempts + 1,
            )
            .returning(reconcile_requests.c.request_id)
        )
        if taken.first() is not None:
            return state, None
    row = (
        await conn.execute(
            select(reconcile_requests.c.status, reconcile_requests.c.reply).where(
                reconcile_requests.c.request_id == values["request_id"]
            )
        )
    ).first()
    if row is not None and row.status == "completed":
        return "completed", row.reply
    return "busy", None


async def renew_lease(conn: AsyncConnection, request_id: str, owner: str, lease: float) -> None:
    """Keep holding a running request."""
    await conn.execute(
        update(reconcile_requests)
        .where(
            reconcile_requests.c.request_id == request_id,
            reconcile_requests.c.handled_by == owner,
            reconcile_requests.c.status == "running",
        )
        .values(lease_until=func.now() + timedelta(seconds=lease))
    )


#: `complete_request`'s statement, built once (its values bound at execution, as `_START`'s).
COMPLETE = (
    update(reconcile_requests)
    .where(reconcile_requests.c.request_id == bindparam("completed_id"))
    .values(
        status="completed",
        reply=bindparam("reply", type_=reconcile_requests.c.reply.type),
        completed_at=func.now(),
        lease_until=None,
    )
)


async def complete_request(conn: AsyncConnection, request_id: str, reply: dict[str, Any]) -> None:
    """Store the reply: the follow-up endpoint serves it from here."""
    await conn.execute(COMPLETE, completion(request_id, reply))


def completion(request_id: str, reply: dict[str, Any]) -> dict[str, Any]:
    """The values `COMPLETE` stores."""
    return {"completed_id": request_id, "reply": reply}


async def claim_orphaned_requests(
    conn: AsyncConnection, owner: str, lease: float, limit: int, max_attempts: int
) -> list[Any]:
    """Take over running requests whose lease ran out (their worker died, or their last attempt
    failed) and queued ones that no reconciler picked up from Kafka in time, while attempts are left.

    Each row is its `request_id` and the stored `request` (not read here: it may not parse)."""
    stale = (
        select(reconcile_requests.c.request_id)
        .where(
            reconcile_requests.c.status.in_(("running", "queued")),
            reconcile_requests.c.lease_until < func.now(),
            reconcile_requests.c.attempts < max_attempts,
        )
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    rows = await conn.execute(
        update(reconcile_requests)
        .where(reconcile_requests.c.request_id.in_(stale.scalar_subquery()))
        .values(
            status="running",
            handled_by=owner,
            lease_until=func.now() + timedelta(seconds=lease),
            attempts=reconcile_requests.c.attempts + 1,
        )
        .returning(reconcile_requests.c.request_id, reconcile_requests.c.request)
    )
    return list(rows)


async def fail_request(
    conn: AsyncConnection, request_id: str, owner: str, reason: str, max_attempts: int
) -> bool:
    """Record that this attempt failed: the request ends `failed` with the reason if it had its last
    attempt (True); otherwise it stays running until its lease ends, and is tried again then."""
    failed = await conn.execute(
        update(reconcile_requests)
        .where(
            reconcile_requests.c.request_id == request_id,
            reconcile_requests.c.handled_by == owner,
            reconcile_requests.c.status == "running",
            reconcile_requests.c.attempts >= max_attempts,
        )
        .values(status="failed", error=reason, completed_at=func.now(), lease_until=None)
        .returning(reconcile_requests.c.request_id)
    )
    if failed.first() is not None:
        return True
    await conn.execute(  # the reason of the latest attempt, kept for when the last one fails too
        update(reconcile_requests)
        .where(reconcile_requests.c.request_id == request_id, reconcile_requests.c.handled_by == owner)
        .values(error=reason)
    )
    return False


async def fail_unreadable_request(conn: AsyncConnection, request_id: str, owner: str, reason: str) -> None:
    """End `failed` at once a request whose stored form cannot be read: no attempt could ever answer it."""
    await conn.execute(
        update(reconcile_requests)
        .where(reconcile_requests.c.request_id == request_id, reconcile_requests.c.handled_by == owner)
        .values(status="failed", error=reason, completed_at=func.now(), lease_until=None)
    )


async def fail_abandoned_requests(conn: AsyncConnection, max_attempts: int) -> int:
    """End `failed` the requests whose every attempt ran out its lease (their worker kept dying)."""
    result = await conn.execute(
        update(reconcile_requests)
        .where(
            reconcile_requests.c.status == "running",
            reconcile_requests.c.lease_until < func.now(),
            reconcile_requests.c.attempts >= max_attempts,
        )
        .values(
            status="failed",
            error=func.coalesce(reconcile_requests.c.error, f"no answer after {max_attempts} attempts"),
            completed_at=func.now(),
            lease_until=None,
        )
    )
    return result.rowcount or 0


async def purge_finished(conn: AsyncConnection, before: datetime, limit: int = 10_000) -> int:
    """Delete completed requests and finished ticks from before `before` (a batch at a time)."""
    requests = await conn.execute(
        text(
            "DELETE FROM reconcile_requests WHERE request_id IN (SELECT request_id FROM reconcile_requests"
            " WHERE status IN ('completed', 'failed') AND completed_at < :before LIMIT :limit)"
        ),
        {"before": before, "limit": limit},
    )
    ticks = await conn.execute(
        text(
            "DELETE FROM reconcile_ticks WHERE tick_id IN (SELECT tick_id FROM reconcile_ticks"
            " WHERE completed_at < :before LIMIT :limit)"
        ),
        {"before": before, "limit": limit},
    )
    return (requests.rowcount or 0) + (ticks.rowcount or 0)
