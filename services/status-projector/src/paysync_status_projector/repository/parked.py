"""SQL of parked observations: those of references no payment has yet."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import delete, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from paysync_core.contracts import PaymentObservation
from paysync_core.db.parked import payment_registered
from paysync_core.db.schema import parked_observations


async def park(conn: AsyncConnection, observations_: Sequence[PaymentObservation]) -> None:
    """Keep observations of unknown references until their payment is registered."""
    if observations_:
        await conn.execute(
            insert(parked_observations).on_conflict_do_nothing(),
            [
                {
                    "tenant_id": o.tenant,
                    "provider": o.provider.value,
                    "observation_id": o.observation_id,
                    "refs": list(o.refs),
                    "payload": o.model_dump(mode="json"),
                }
                for o in observations_
            ],
        )


async def take_matched_parked(conn: AsyncConnection, limit: int) -> list[PaymentObservation]:
    """Remove and return parked observations whose payment is now registered (by reference or alias)."""
    matched = (
        select(parked_observations.c.id)
        .where(payment_registered())
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
