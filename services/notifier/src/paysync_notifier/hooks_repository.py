"""The SQL of app-webhook delivery: intake of status changes, claiming due deliveries, recording attempts."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import case, delete, false, func, select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from paysync_core.app_webhooks import event_body, wants, webhook_id_for
from paysync_core.contracts import PaymentStatusChanged
from paysync_core.db.schema import webhook_attempts, webhook_deliveries, webhook_endpoints


@dataclass(frozen=True, slots=True)
class Claimed:
    """A delivery this replica holds the lease of, with what sending it needs."""

    id: int
    endpoint_id: int
    tenant_id: str
    webhook_id: str
    body: str
    attempts: int
    url: str
    secrets_ciphertext: bytes


@dataclass(frozen=True, slots=True)
class Attempt:
    """What one HTTP attempt came to: `status_code` None when no answer came (refused, timed out)."""

    status_code: int | None
    duration_ms: int
    error: str | None

    @property
    def delivered(self) -> bool:
        """A 2xx answer: the receiver has the event."""
        return self.status_code is not None and 200 <= self.status_code < 300


async def take_in(conn: AsyncConnection, changes: Sequence[PaymentStatusChanged]) -> int:
    """A pending delivery per endpoint of its tenant that wants each change; returns how many are new.

    Two statements however many changes: their tenants' endpoints read at once, then every delivery
    inserted at once. Idempotent: a change taken in again (a redelivered record, a second replica)
    adds nothing.
    """
    if not changes:
        return 0
    tenants = sorted({c.tenant for c in changes})
    found = await conn.execute(
        select(
            webhook_endpoints.c.id,
            webhook_endpoints.c.tenant_id,
            webhook_endpoints.c.domains,
            webhook_endpoints.c.statuses,
        ).where(webhook_endpoints.c.tenant_id.in_(tenants))
    )
    endpoints: dict[str, list[Any]] = {}
    for e in found:
        endpoints.setdefault(e.tenant_id, []).append(e)
    rows = [
        {
            "endpoint_id": e.id,
            "tenant_id": change.tenant,
            "event_id": change.event_id,
            "webhook_id": webhook_id_for(e.id, change.event_id),
            "payment_id": change.payment_id,
            "sequence": change.sequence,
            "body": event_body(change),
        }
        for change in changes
        for e in endpoints.get(change.tenant, ())
        if wants(e.domains, e.statuses, change)
    ]
    if not rows:
        return 0
    result = await conn.execute(
        insert(webhook_deliveries).on_conflict_do_nothing().returning(webhook_deliveries.c.id), rows
    )
    return len(result.all())


# Due, not leased, endpoint enabled, and no earlier change of the same payment still pending for the
# endpoint: that is what keeps each payment's events in order while other payments go ahead.
_CLAIM = text(
    """
    UPDATE webhook_deliveries AS d
       SET lease_until = now() + make_interval(secs => :lease), leased_by = :me, updated_at = now()
      FROM webhook_endpoints AS e
     WHERE e.id = d.endpoint_id
       AND d.id IN (
        SELECT c.id FROM webhook_deliveries AS c
          JOIN webhook_endpoints AS ce ON ce.id = c.endpoint_id
         WHERE c.status = 'pending' AND c.next_attempt_at <= now()
           AND (c.lease_until IS NULL OR c.lease_until < now())
           AND ce.disabled_at IS NULL
           AND NOT EXISTS (
               SELECT 1 FROM webhook_deliveries AS p
                WHERE p.endpoint_id = c.endpoint_id AND p.payment_id = c.payment_id
                  AND p.sequence < c.sequence AND p.status = 'pending')
         ORDER BY c.next_attempt_at, c.id
         LIMIT :batch
           FOR UPDATE OF c SKIP LOCKED)
    RETURNING d.id, d.endpoint_id, d.tenant_id, d.webhook_id, d.body, d.attempts, e.url, e.secrets_ciphertext
    """
)


async def claim(conn: AsyncConnection, me: str, batch: int, lease_seconds: float) -> list[Claimed]:
    """Lease up to `batch` due deliveries for this replica (others skip them: SKIP LOCKED)."""
    rows = await conn.execute(_CLAIM, {"me": me, "batch": batch, "lease": lease_seconds})
    return [Claimed(**row._mapping) for row in rows]


async def record_attempt(
    conn: AsyncConnection, delivery: Claimed, attempt: Attempt, me: str, retry_in: float | None
) -> str:
    """Log the attempt and settle the delivery: `delivered`, `retried` (in `retry_in` s) or `failed`."""
    await conn.execute(
        webhook_attempts.insert().values(
            delivery_id=delivery.id,
            status_code=attempt.status_code,
            duration_ms=attempt.duration_ms,
            error=attempt.error,
            attempted_by=me,
        )
    )
    outcome = "delivered" if attempt.delivered else "retried" if retry_in is not None else "failed"
    values: dict[str, Any] = {
        "attempts": webhook_deliveries.c.attempts + 1,
        "lease_until": None,
        "leased_by": None,
        "last_error": attempt.error,
        "updated_at": func.now(),
    }
    if outcome == "delivered":
        values |= {"status": "delivered", "delivered_at": func.now()}
    elif outcome == "retried":
        values["next_attempt_at"] = func.now() + func.make_interval(0, 0, 0, 0, 0, 0, retry_in)
    else:
        values["status"] = "failed"
    # Only while the lease is ours: one that expired may have been claimed and settled by another.
    await conn.execute(
        update(webhook_deliveries)
        .where(webhook_deliveries.c.id == delivery.id, webhook_deliveries.c.leased_by == me)
        .values(**values)
    )
    await _endpoint_outcome(conn, delivery.endpoint_id, attempt.delivered)
    return outcome


async def _endpoint_outcome(conn: AsyncConnection, endpoint_id: int, delivered: bool) -> None:
    e = webhook_endpoints.c
    if delivered:
        statement = (
            update(webhook_endpoints)
            .where(e.id == endpoint_id, (e.consecutive_failures > 0) | e.failing_since.is_not(None))
            .values(consecutive_failures=0, failing_since=None, updated_at=func.now())
        )
    else:
        statement = (
            update(webhook_endpoints)
            .where(e.id == endpoint_id)
            .values(
                consecutive_failures=e.consecutive_failures + 1,
                failing_since=func.coalesce(e.failing_since, func.now()),
                updated_at=func.now(),
            )
        )
    await conn.execute(statement)


async def disable_if_failing(
    conn: AsyncConnection, endpoint_id: int, after_seconds: float, after_failures: int
) -> Any:
    """Disable the endpoint if it has failed long enough (or often enough in a row); its row if it was."""
    e = webhook_endpoints.c
    too_long = e.failing_since <= func.now() - func.make_interval(0, 0, 0, 0, 0, 0, after_seconds)
    too_many = e.consecutive_failures >= after_failures if after_failures else false()
    reason = case(
        (too_long, "failing for longer than the allowed time"),
        else_="too many failed attempts in a row",
    )
    return (
        await conn.execute(
            update(webhook_endpoints)
            .where(
                e.id == endpoint_id,
                e.disabled_at.is_(None),
                e.failing_since.is_not(None),
                too_long | too_many,
            )
            .values(disabled_at=func.now(), disabled_reason=reason, updated_at=func.now())
            .returning(e.id, e.tenant_id, e.url, e.failing_since, e.consecutive_failures, e.disabled_reason)
        )
    ).first()


async def prune_settled(conn: AsyncConnection, keep_days: float, batch: int = 1000) -> int:
    """Delete up to `batch` delivered or given-up deliveries settled `keep_days` ago (attempts go too)."""
    d = webhook_deliveries.c
    cutoff = func.now() - func.make_interval(0, 0, 0, 0, 0, 0, keep_days * 86400)
    old = select(d.id).where(d.status != "pending", d.updated_at < cutoff).limit(batch).scalar_subquery()
    result = await conn.execute(delete(webhook_deliveries).where(d.id.in_(old)))
    return result.rowcount


async def oldest_pending(conn: AsyncConnection) -> datetime | None:
    """When the oldest pending delivery was taken in (None: nothing pending)."""
    return (
        await conn.execute(
            select(func.min(webhook_deliveries.c.created_at)).where(webhook_deliveries.c.status == "pending")
        )
    ).scalar()
