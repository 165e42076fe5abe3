"""SQL of checkouts left `initiating` (api-gateway's table; the reconciler finishes or expires them)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from paysync_core.db.schema import checkouts, payments, reconcile_checks
from paysync_core.domain.status import MONEY_MOVED


async def claim_initiating(conn: AsyncConnection, older_than_seconds: float) -> Any | None:
    """One checkout nobody has touched for `older_than_seconds` that is still `initiating`, locked."""
    row = await conn.execute(
        select(checkouts)
        .where(
            checkouts.c.state == "initiating",
            checkouts.c.updated_at < func.now() - timedelta(seconds=older_than_seconds),
        )
        .order_by(checkouts.c.updated_at)
        .limit(1)
        .with_for_update(skip_locked=True)
    )
    return row.first()


async def settle(
    conn: AsyncConnection, checkout: Any, state: str, *, error: str | None = None, answer: Any = None
) -> None:
    """End the checkout (`started` with its answer, `expired`, `failed`), or touch it (`initiating`)."""
    values: dict[str, Any] = {"state": state, "updated_at": func.now(), "last_error": error}
    if state != "initiating":
        values["sending_since"] = None
    if answer is not None:
        values |= {"answer": answer, "last_sent_at": func.now(), "sent_sequence": 0}
    await conn.execute(
        update(checkouts)
        .where(checkouts.c.tenant_id == checkout.tenant_id)
        .where(checkouts.c.idempotency_key == checkout.idempotency_key)
        .values(**values)
    )


async def rearm_retried_pushes(conn: AsyncConnection, within_seconds: float = 86400.0) -> int:
    """Check again the M-Pesa payments pushed again after their checks ended; how many.

    A retried push (`POST /v1/payments/{id}/retry`) is the payment's reference from then on; its
    checks had ended with the earlier push's failure or cancellation, and without them a lost
    callback of the new push would leave the payment as it was. Only pushes of the last
    `within_seconds` are looked at (a partial index holds the retried M-Pesa checkouts).
    """
    ended = func.coalesce(reconcile_checks.c.done_at, reconcile_checks.c.gave_up_at)
    result = await conn.execute(
        update(reconcile_checks)
        .where(
            checkouts.c.provider == "mpesa",
            checkouts.c.attempts > 1,
            checkouts.c.last_sent_at > func.now() - timedelta(seconds=within_seconds),
            reconcile_checks.c.payment_id == checkouts.c.payment_id,
            or_(reconcile_checks.c.done_at.is_not(None), reconcile_checks.c.gave_up_at.is_not(None)),
            checkouts.c.last_sent_at > ended,
            payments.c.id == checkouts.c.payment_id,
            payments.c.status.not_in([s.value for s in MONEY_MOVED]),
        )
        .values(done_at=None, gave_up_at=None, step=0, next_check_at=func.now(), claimed_until=None)
    )
    return result.rowcount or 0
