"""SQL the scheduler and the intake ask about tenants."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import literal, select
from sqlalchemy.ext.asyncio import AsyncConnection

from paysync_core.db.schema import payments, tenants


async def has_payments(conn: AsyncConnection, tenant: str, provider: str) -> bool:
    """Whether the tenant has any payment at the gateway (an index lookup)."""
    found = await conn.execute(
        select(literal(1)).where(payments.c.tenant_id == tenant, payments.c.provider == provider).limit(1)
    )
    return found.first() is not None


async def tenant_exists(conn: AsyncConnection, tenant: str) -> bool:
    """Whether the tenant exists."""
    found = await conn.execute(select(tenants.c.id).where(tenants.c.id == tenant))
    return found.first() is not None


async def tenants_with_credentials(conn: AsyncConnection, only: Sequence[str] = ()) -> list[str]:
    """Tenants that have gateway credentials stored (only those named, if any are)."""
    query = select(tenants.c.id).where(tenants.c.credentials_ciphertext.is_not(None))
    if only:
        query = query.where(tenants.c.id.in_(list(only)))
    return [r.id for r in await conn.execute(query.order_by(tenants.c.id))]
