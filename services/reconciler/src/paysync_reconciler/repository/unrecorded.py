"""SQL of payments paid at a gateway that paysync has no record of."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from paysync_core.db import REGISTERED_CHANNEL
from paysync_core.db.schema import parked_observations, payment_refs, payments


async def orphaned_successes(
    conn: AsyncConnection, tenant: str, provider: str, older_than: datetime, limit: int
) -> list[Any]:
    """Verified successes the projector parked (no payment matched them) since before `older_than`."""
    rows = await conn.execute(
        select(parked_observations.c.id, parked_observations.c.refs, parked_observations.c.payload)
        .where(
            parked_observations.c.tenant_id == tenant,
            parked_observations.c.provider == provider,
            parked_observations.c.created_at < older_than,
            parked_observations.c.payload["verified"].as_boolean().is_(True),
            parked_observations.c.payload["status"].as_string() == "succeeded",
        )
        .order_by(parked_observations.c.id)
        .limit(limit)
    )
    return list(rows)


async def parked_aliases(conn: AsyncConnection, tenant: str, provider: str, refs: Sequence[str]) -> set[str]:
    """Which of these references another parked observation names as its alias (so it is not a root)."""
    if not refs:
        return set()
    rows = await conn.execute(
        text(
            "SELECT DISTINCT a.ref FROM parked_observations p,"
            " LATERAL jsonb_array_elements_text(p.payload->'aliases') AS a(ref)"
            " WHERE p.tenant_id = :tenant AND p.provider = :provider AND a.ref = ANY(CAST(:refs AS text[]))"
        ),
        {"tenant": tenant, "provider": provider, "refs": list(set(refs))},
    )
    return {r.ref for r in rows}


async def create_payment(conn: AsyncConnection, values: dict[str, Any], refs: Sequence[str]) -> bool:
    """Record a payment the gateway knows and paysync did not; False if it exists already."""
    result = await conn.execute(
        insert(payments).values(**values).on_conflict_do_nothing().returning(payments.c.id)
    )
    created = result.first() is not None
    if created:
        await conn.execute(
            insert(payment_refs)
            .values(
                [
                    {
                        "tenant_id": values["tenant_id"],
                        "provider": values["provider"],
                        "ref": r,
                        "payment_id": values["id"],
                    }
                    for r in dict.fromkeys(refs)
                ]
            )
            .on_conflict_do_nothing()
        )
        # The projector's matcher applies the parked observations of these references on commit.
        await conn.execute(text(f"NOTIFY {REGISTERED_CHANNEL}"))
    return created
