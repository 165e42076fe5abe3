"""SQL of the drift checks: domain rows and payments that disagree about being paid."""

from __future__ import annotations

from typing import Any

from sqlalchemy import String, and_, cast, exists, func, not_, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection

from paysync_core.db.schema import payments, tenants
from paysync_core.domain.status import MONEY_MOVED, UnifiedStatus
from paysync_core.domains import BoundDomain

#: Advisory-lock key of the drift scan.
_DRIFT_LOCK = 7355610


async def try_drift_lock(conn: AsyncConnection) -> bool:
    """One drift scan at a time across replicas."""
    return bool((await conn.execute(select(func.pg_try_advisory_xact_lock(_DRIFT_LOCK)))).scalar())


async def rows_paid_without_payment(conn: AsyncConnection, domain: BoundDomain) -> list[Any]:
    """The domain's rows marked paid although none of the entity's payments has money moved."""
    marker = domain.spec.paid
    if marker is None:
        return []
    t, m = domain.main.table, domain.main.mapping
    tenant, key, paid = t.c[m.tenant_column], t.c[m.key_column], t.c[marker.column]
    moved = exists().where(
        payments.c.tenant_id == tenant,
        payments.c.domain == domain.spec.name,
        payments.c.entity_id == cast(key, String),
        payments.c.status.in_([s.value for s in MONEY_MOVED]),
    )
    known_tenant = exists().where(tenants.c.id == tenant)  # rows of tenants paysync does not serve: not ours
    rows = await conn.execute(
        select(tenant.label("tenant_id"), cast(key, String).label("entity_id"), paid.label("shown")).where(
            cast(paid, String).in_(marker.values),
            not_(moved),
            known_tenant,
            func.length(cast(key, String)).between(1, 200),
        )
    )
    return list(rows)


async def payments_succeeded_row_unpaid(conn: AsyncConnection, domain: BoundDomain) -> list[Any]:
    """The domain's succeeded payments whose entity row is missing or not marked paid."""
    marker = domain.spec.paid
    if marker is None:
        return []
    t, m = domain.main.table, domain.main.mapping
    tenant, key, paid = t.c[m.tenant_column], t.c[m.key_column], t.c[marker.column]
    joined = payments.outerjoin(
        t, and_(tenant == payments.c.tenant_id, cast(key, String) == payments.c.entity_id)
    )
    rows = await conn.execute(
        select(
            payments.c.id,
            payments.c.tenant_id,
            payments.c.entity_id,
            payments.c.provider,
            payments.c.provider_ref,
            cast(paid, String).label("shown"),
        )
        .select_from(joined)
        .where(
            payments.c.domain == domain.spec.name,
            payments.c.entity_id.isnot(None),
            payments.c.status == UnifiedStatus.SUCCEEDED.value,
            or_(paid.is_(None), not_(cast(paid, String).in_(marker.values))),
        )
        .order_by(payments.c.id)
    )
    return list(rows)
