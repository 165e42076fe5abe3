"""SQL of checkouts left `initiating` (api-gateway's table; the reconciler finishes or expires them)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from paysync_core.db.schema import checkouts


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
