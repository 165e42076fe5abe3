"""SQL of on-demand checks: which payments a request names, and their statuses afterwards."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import String, any_, bindparam, select
from sqlalchemy.dialects.postgresql import ARRAY, UUID
from sqlalchemy.ext.asyncio import AsyncConnection

from paysync_core.db.driver import DriverStatement
from paysync_core.db.schema import observations, payment_refs, payments
from paysync_reconciler.repository.columns import OPEN, PAYMENT_COLUMNS


async def payments_of_entity(conn: AsyncConnection, tenant: str, domain: str, entity_id: str) -> list[Any]:
    """Every payment of one domain entity, oldest first."""
    rows = await conn.execute(
        select(*PAYMENT_COLUMNS)
        .where(payments.c.tenant_id == tenant, payments.c.domain == domain, payments.c.entity_id == entity_id)
        .order_by(payments.c.created_at, payments.c.id)
    )
    return list(rows)


async def open_payments(conn: AsyncConnection, tenant: str, limit: int) -> list[Any]:
    """The tenant's payments that have not ended and have no money moved, oldest first (with when
    each was registered)."""
    rows = await conn.execute(
        select(*PAYMENT_COLUMNS, payments.c.created_at)
        .where(payments.c.tenant_id == tenant, payments.c.status.in_(OPEN))
        .order_by(payments.c.created_at, payments.c.id)
        .limit(limit)
    )
    return list(rows)


# Built once, with the references as one array: a statement built per request, with an IN list rendered
# for its length, cost more Python than the rest of an M-Pesa confirmation's reads.
_BY_REFS = (
    select(payment_refs.c.ref, *PAYMENT_COLUMNS)
    .select_from(payment_refs.join(payments, payments.c.id == payment_refs.c.payment_id))
    .where(
        payment_refs.c.tenant_id == bindparam("tenant"),
        payment_refs.c.ref == any_(bindparam("refs", type_=ARRAY(String))),
    )
)
_BY_REFS_OF_PROVIDER = _BY_REFS.where(payment_refs.c.provider == bindparam("provider"))
#: Both sent past SQLAlchemy's execution layer (`DriverStatement`): each M-Pesa confirmation reads one.
_ON_DRIVER = {False: DriverStatement.of(_BY_REFS), True: DriverStatement.of(_BY_REFS_OF_PROVIDER)}


async def payments_by_refs(
    conn: AsyncConnection, tenant: str, provider: str | None, refs: Sequence[str]
) -> dict[str, Any]:
    """The payments these references (or aliases) name: ref -> payment row (any gateway if none given)."""
    if not refs:
        return {}
    params = {"tenant": tenant, "refs": list(set(refs)), "provider": provider}
    return {r.ref: r for r in await _ON_DRIVER[provider is not None].fetch(conn, params)}


async def statuses(conn: AsyncConnection, ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, str]:
    """Each payment's status now."""
    ids = list(set(ids))
    if not ids:
        return {}
    rows = await conn.execute(
        select(payments.c.id, payments.c.status).where(
            payments.c.id == any_(bindparam("ids", ids, type_=ARRAY(UUID)))
        )
    )
    return {r.id: r.status for r in rows}


async def applied(conn: AsyncConnection, tenant: str, observation_ids: Iterable[str]) -> set[str]:
    """Which of these observations the projector has applied (committed with their domain rows)."""
    ids = list(set(observation_ids))
    if not ids:
        return set()
    rows = await conn.execute(
        select(observations.c.observation_id).where(
            observations.c.tenant_id == tenant,
            observations.c.observation_id == any_(bindparam("ids", ids, type_=ARRAY(String))),
        )
    )
    return {r.observation_id for r in rows}
