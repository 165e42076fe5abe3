"""Reading a payment's evidence: the payment, and every observation behind its status, in order.

Read-only SQL shared by api-gateway (`GET /v1/payments/{id}/history`) and the operator's
`paysync payments show`. The merge result after each observation is the one the projector
stored with it (`observations.status_after`): the payment's status right after the projector
applied it, in the order it applied them (the history row's id).
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from paysync_core import topics
from paysync_core.db.schema import observations, payments


async def find_payment(conn: AsyncConnection, payment_id: uuid.UUID, tenant: str | None = None) -> Any | None:
    """A payment by id (only the tenant's, when `tenant` is given), or None."""
    query = select(payments).where(payments.c.id == payment_id)
    if tenant is not None:
        query = query.where(payments.c.tenant_id == tenant)
    return (await conn.execute(query)).first()


async def history(
    conn: AsyncConnection, payment_id: uuid.UUID, *, after: int | None = None, limit: int | None = None
) -> list[Any]:
    """The payment's history rows in the order they were applied, after the row id `after`."""
    query = select(observations).where(observations.c.payment_id == payment_id)
    if after is not None:
        query = query.where(observations.c.id > after)
    query = query.order_by(observations.c.id)
    return list(await conn.execute(query if limit is None else query.limit(limit)))


async def is_applied(conn: AsyncConnection, tenant: str, observation_id: str) -> bool:
    """Whether the projector has recorded this observation in history."""
    row = await conn.execute(
        select(observations.c.id).where(
            observations.c.tenant_id == tenant, observations.c.observation_id == observation_id
        )
    )
    return row.first() is not None


def history_entry(row: Any) -> dict[str, Any]:
    """One history row as shown to people and scripts: what was seen, from where, and the status after."""
    evidence = dict(row.evidence or {})
    raw = None
    if evidence.get("raw_partition") is not None:
        raw = {
            "topic": topics.WEBHOOKS_RAW.name,
            "partition": evidence["raw_partition"],
            "offset": evidence.get("raw_offset"),
        }
    entry: dict[str, Any] = {
        "seq": row.id,
        "observation_id": row.observation_id,
        "source": row.source,
        "verified": row.verified,
        "kind": "verified" if row.verified else "hint",
        "status": row.status,
        "provider_time": row.provider_time.isoformat(),
        "recorded_at": row.created_at.isoformat(),
        "provider_event_id": evidence.get("provider_event_id"),
        "event_type": evidence.get("event_type"),
        "raw_record": raw,
        "amount_minor": row.amount_minor,
        "currency": row.currency,
        "status_after": row.status_after,
        "refused": row.refused,
        "evidence": evidence,
    }
    if row.source == "override":
        entry["override"] = {"by": evidence.get("override_by"), "reason": evidence.get("override_reason")}
    return entry
