"""SQL of checkouts: the record written before a gateway is called, and a payment's sends."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from paysync_core.db.schema import checkouts, payments


async def open_checkout(conn: AsyncConnection, values: dict[str, Any]) -> Any:
    """The checkout of (tenant, Idempotency-Key), made now if new; locked until the transaction ends."""
    await conn.execute(insert(checkouts).values(**values).on_conflict_do_nothing())
    row = await conn.execute(
        select(checkouts)
        .where(checkouts.c.tenant_id == values["tenant_id"])
        .where(checkouts.c.idempotency_key == values["idempotency_key"])
        .with_for_update()
    )
    return row.one()


async def checkout_of_payment(conn: AsyncConnection, tenant: str, payment_id: uuid.UUID) -> Any | None:
    """The checkout that started a payment, locked (retries of one payment go one at a time); or None."""
    row = await conn.execute(
        select(checkouts)
        .where(checkouts.c.tenant_id == tenant, checkouts.c.payment_id == payment_id)
        .with_for_update()
    )
    return row.first()


async def begin_attempt(conn: AsyncConnection, tenant: str, key: str) -> int:
    """Record that the gateway is about to be called; the attempt's number."""
    result = await conn.execute(
        update(checkouts)
        .where(checkouts.c.tenant_id == tenant, checkouts.c.idempotency_key == key)
        .values(attempts=checkouts.c.attempts + 1, sending_since=func.now(), updated_at=func.now())
        .returning(checkouts.c.attempts)
    )
    return int(result.scalar_one())


async def attempt_failed(conn: AsyncConnection, tenant: str, key: str, error: str) -> None:
    """The gateway call ended without a payment started: nothing is in flight any more."""
    await conn.execute(
        update(checkouts)
        .where(checkouts.c.tenant_id == tenant, checkouts.c.idempotency_key == key)
        .values(sending_since=None, last_error=error[:500], updated_at=func.now())
    )


async def attempt_started(
    conn: AsyncConnection, tenant: str, key: str, answer: dict[str, Any], sequence: int
) -> None:
    """The gateway started the payment and it is registered: the answer a retry of the request gets."""
    await conn.execute(
        update(checkouts)
        .where(checkouts.c.tenant_id == tenant, checkouts.c.idempotency_key == key)
        .values(
            state="started",
            answer=answer,
            sending_since=None,
            last_sent_at=func.now(),
            sent_sequence=sequence,
            last_error=None,
            updated_at=func.now(),
        )
    )


async def count_send(
    conn: AsyncConnection, tenant: str, payment_id: uuid.UUID, provider_ref: str
) -> tuple[int, int]:
    """One more send of the payment (an M-Pesa push), now its reference; its sends and sequence now.

    The newest push is the payment's reference (the earlier ones stay aliases), so the reconciler's
    checks ask Daraja about the push the customer may still answer.
    """
    result = await conn.execute(
        update(payments)
        .where(payments.c.tenant_id == tenant, payments.c.id == payment_id)
        .values(sends=payments.c.sends + 1, provider_ref=provider_ref, updated_at=func.now())
        .returning(payments.c.sends, payments.c.sequence)
    )
    row = result.one()
    return int(row.sends), int(row.sequence)


async def payment_for_update(conn: AsyncConnection, tenant: str, payment_id: uuid.UUID) -> Any | None:
    """A payment's row (status, sequence, sends), locked; None if the tenant has no such payment."""
    row = await conn.execute(
        select(payments).where(payments.c.tenant_id == tenant, payments.c.id == payment_id).with_for_update()
    )
    return row.first()


async def now(conn: AsyncConnection) -> Any:
    """The database's clock: every replica compares times against the same one."""
    return (await conn.execute(select(func.now()))).scalar_one()
