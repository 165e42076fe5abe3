"""SQL of the shared gateway budgets: one token bucket row per tenant and gateway, leased from atomically."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

_CREATE = text(
    "INSERT INTO gateway_budgets (tenant_id, provider, tokens, refilled_at)"
    " VALUES (:tenant, :provider, :burst, clock_timestamp())"
    " ON CONFLICT (tenant_id, provider) DO NOTHING"
)

# The database's clock is the one clock every replica shares. The row is locked (FOR UPDATE) and,
# under READ COMMITTED, re-read once a concurrent lease has committed, so no two leases hand out the
# same tokens. `refilled_at` never goes back: a statement that waited for the lock credits nothing twice.
_LEASE = text(
    """
    WITH bucket AS (
        SELECT least(:burst, tokens + :rate * greatest(0.0,
                   extract(epoch FROM clock_timestamp() - refilled_at)::float8)) AS available,
               greatest(refilled_at, clock_timestamp()) AS at
        FROM gateway_budgets
        WHERE tenant_id = :tenant AND provider = :provider
        FOR UPDATE
    ), grant_ AS (
        SELECT available, at, least(floor(available), :want)::int AS granted FROM bucket
    )
    UPDATE gateway_budgets AS b
    SET tokens = g.available - g.granted, refilled_at = g.at
    FROM grant_ AS g
    WHERE b.tenant_id = :tenant AND b.provider = :provider
    RETURNING g.granted, g.available - g.granted AS left_over
    """
)


@dataclass(frozen=True, slots=True)
class Lease:
    """Tokens granted by one lease, and what the bucket held after it."""

    granted: int
    left_over: float


async def lease(
    conn: AsyncConnection, tenant: str, provider: str, *, rate: float, burst: float, want: int
) -> Lease:
    """Take up to `want` whole tokens from the tenant's shared bucket (`rate`/s, at most `burst`)."""
    params = {"tenant": tenant, "provider": provider, "rate": rate, "burst": burst, "want": want}
    row = (await conn.execute(_LEASE, params)).first()
    if row is None:  # first use of this bucket: it starts full
        await conn.execute(_CREATE, params)
        row = (await conn.execute(_LEASE, params)).one()
    return Lease(int(row.granted), float(row.left_over))
