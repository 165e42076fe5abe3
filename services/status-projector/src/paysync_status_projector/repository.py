"""All SQL of the status-projector."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import delete, func, select, text, tuple_, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from paysync_core.contracts import PaymentObservation
from paysync_core.db import OUTBOX_CHANNEL
from paysync_core.db.schema import observations, outbox, parked_observations, payment_refs, payments


async def resolve_refs(
    conn: AsyncConnection, keys: Iterable[tuple[str, str, str]]
) -> dict[tuple[str, str, str], Any]:
    """Map (tenant, provider, ref) to the payment id it belongs to, for those that are known."""
    keys = list(set(keys))
    if not keys:
        return {}
    rows = await conn.execute(
        select(payment_refs.c.tenant_id, payment_refs.c.provider, payment_refs.c.ref, payment_refs.c.payment_id)
        .where(tuple_(payment_refs.c.tenant_id, payment_refs.c.provider, payment_refs.c.ref).in_(keys))
    )
    return {(r.tenant_id, r.provider, r.ref): r.payment_id for r in rows}


async def lock_payments(conn: AsyncConnection, ids: Iterable[Any]) -> dict[Any, Any]:
    """Lock the payments' rows, in id order so concurrent projectors cannot deadlock."""
    rows = await conn.execute(
        select(payments).where(payments.c.id.in_(sorted(set(ids)))).order_by(payments.c.id).with_for_update()
    )
    return {r.id: r for r in rows}


async def record_history(conn: AsyncConnection, rows: Sequence[dict[str, Any]]) -> set[str]:
    """Insert history rows; return the observation ids that were new (the rest are duplicates)."""
    if not rows:
        return set()
    result = await conn.execute(
        insert(observations)
        .values(list(rows))
        .on_conflict_do_nothing(index_elements=[observations.c.tenant_id, observations.c.observation_id])
        .returning(observations.c.observation_id)
    )
    return set(result.scalars())


async def add_refs(conn: AsyncConnection, rows: Sequence[dict[str, Any]]) -> None:
    """Remember aliases; a reference already bound to a payment keeps its binding."""
    if rows:
        await conn.execute(insert(payment_refs).values(list(rows)).on_conflict_do_nothing())


async def update_payment(conn: AsyncConnection, payment_id: Any, values: dict[str, Any]) -> None:
    """Write the payment's merged state."""
    await conn.execute(update(payments).where(payments.c.id == payment_id).values(updated_at=func.now(), **values))


async def enqueue(conn: AsyncConnection, rows: Sequence[dict[str, Any]]) -> None:
    """Add events to the outbox and wake the relay when this transaction commits."""
    if rows:
        await conn.execute(outbox.insert().values(list(rows)))
        await conn.execute(text(f"NOTIFY {OUTBOX_CHANNEL}"))


async def park(conn: AsyncConnection, observations_: Sequence[PaymentObservation]) -> None:
    """Keep observations of unknown references until their payment is registered."""
    if observations_:
        await conn.execute(
            insert(parked_observations)
            .values(
                [
                    {
                        "tenant_id": o.tenant,
                        "provider": o.provider.value,
                        "observation_id": o.observation_id,
                        "refs": list(o.refs),
                        "payload": o.model_dump(mode="json"),
                    }
                    for o in observations_
                ]
            )
            .on_conflict_do_nothing()
        )


async def take_matched_parked(conn: AsyncConnection, limit: int) -> list[PaymentObservation]:
    """Remove and return parked observations whose payment is now registered."""
    matched = (
        select(parked_observations.c.id)
        .where(
            text(
                "EXISTS (SELECT 1 FROM payment_refs r WHERE r.tenant_id = parked_observations.tenant_id"
                " AND r.provider = parked_observations.provider"
                " AND r.ref IN (SELECT jsonb_array_elements_text(parked_observations.refs)))"
            )
        )
        .order_by(parked_observations.c.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    rows = await conn.execute(
        delete(parked_observations)
        .where(parked_observations.c.id.in_(matched.scalar_subquery()))
        .returning(parked_observations.c.payload)
    )
    return [PaymentObservation.model_validate(r.payload) for r in rows]


async def unpublished(conn: AsyncConnection, limit: int) -> list[Any]:
    """The oldest events not yet published, locked for this relay."""
    rows = await conn.execute(
        select(outbox.c.id, outbox.c.topic, outbox.c.key, outbox.c.payload)
        .where(outbox.c.published_at.is_(None))
        .order_by(outbox.c.id)
        .limit(limit)
        .with_for_update()
    )
    return list(rows)


async def mark_published(conn: AsyncConnection, ids: Sequence[int]) -> None:
    """Record that these events are on their topic."""
    await conn.execute(update(outbox).where(outbox.c.id.in_(ids)).values(published_at=func.now()))


async def try_relay_lock(conn: AsyncConnection) -> bool:
    """One relay at a time keeps each payment's events in commit order."""
    return bool((await conn.execute(text("SELECT pg_try_advisory_xact_lock(7355609)"))).scalar())

