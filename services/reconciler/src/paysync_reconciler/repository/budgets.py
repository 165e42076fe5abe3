"""SQL of the shared gateway budgets: one token bucket row per tenant and gateway, leased from atomically."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from paysync_core.db.driver import DriverStatement

_CREATE = text(
    "INSERT INTO gateway_budgets (tenant_id, provider, tokens, refilled_at)"
    " SELECT tenant, provider, burst, clock_timestamp()"
    " FROM unnest(CAST(:tenants AS text[]), CAST(:providers AS text[]), CAST(:bursts AS float8[]))"
    " AS w(tenant, provider, burst)"
    " WHERE EXISTS (SELECT FROM tenants WHERE id = tenant)"  # a deleted tenant's fails no other lease
    " ON CONFLICT (tenant_id, provider) DO NOTHING"
)

# The database's clock is the one clock every replica shares. The rows are locked (FOR UPDATE) in one
# order, the buckets' keys', so two replicas leasing several buckets at once never wait for each other
# in a circle; under READ COMMITTED each is re-read once a concurrent lease has committed, so no two
# leases hand out the same tokens. `refilled_at` never goes back: a statement that waited for the lock
# credits nothing twice. A bucket holding less than a whole token reserves its next one instead of
# answering empty: `tokens` goes below zero and `ready_in` says when that token is due. The leases of an
# empty bucket are so served in the order they came, each the token after the last one reserved; empty
# answers had the replicas race for each token as it came, and one a few milliseconds slower to ask
# again lost nearly every race.
_LEASE = text(
    """
    WITH wanted AS (
        SELECT * FROM unnest(CAST(:tenants AS text[]), CAST(:providers AS text[]),
                             CAST(:rates AS float8[]), CAST(:bursts AS float8[]), CAST(:wants AS int[]))
            AS w(tenant, provider, rate, burst, want)
    ), bucket AS (
        SELECT b.tenant_id, b.provider, w.want, w.rate,
               least(w.burst, b.tokens + w.rate * greatest(0.0,
                   extract(epoch FROM clock_timestamp() - b.refilled_at)::float8)) AS available,
               greatest(b.refilled_at, clock_timestamp()) AS at
        FROM gateway_budgets AS b
        JOIN wanted AS w ON b.tenant_id = w.tenant AND b.provider = w.provider
        ORDER BY b.tenant_id, b.provider
        FOR UPDATE OF b
    ), grant_ AS (
        SELECT tenant_id, provider, available, at,
               CASE WHEN available >= 1.0 THEN least(floor(available), want) ELSE least(1, want) END::int
                   AS granted,
               CASE WHEN available >= 1.0 THEN 0.0 ELSE (1.0 - available) / rate END AS ready_in
        FROM bucket
    )
    UPDATE gateway_budgets AS b
    SET tokens = g.available - g.granted, refilled_at = g.at
    FROM grant_ AS g
    WHERE b.tenant_id = g.tenant_id AND b.provider = g.provider
    RETURNING b.tenant_id, b.provider, g.granted, g.available - g.granted AS left_over, g.ready_in
    """
)
#: Sent past SQLAlchemy's execution layer (`DriverStatement`): at a confirmation every few tenths of a
#: second per tenant, nearly each one needs a lease (0.38 a confirmation at 100/s over 20 tenants).
_LEASE_ON_DRIVER = DriverStatement.of(_LEASE)


@dataclass(frozen=True, slots=True)
class Lease:
    """Tokens granted by one lease, what the bucket held after it, and the seconds after the statement
    before they are due (above zero for a token reserved of a bucket that held less than one)."""

    granted: int
    left_over: float
    ready_in: float = 0.0


@dataclass(frozen=True, slots=True)
class Want:
    """A lease asked of one bucket: up to `want` whole tokens of the tenant's bucket (`rate`/s, at most
    `burst`)."""

    tenant: str
    provider: str
    rate: float
    burst: float
    want: int

    @property
    def key(self) -> tuple[str, str]:
        """The bucket's row."""
        return (self.tenant, self.provider)


async def lease(conn: AsyncConnection, wants: Sequence[Want]) -> dict[tuple[str, str], Lease]:
    """Lease from several buckets in one statement (each bucket at most once); a bucket used for the
    first time starts full, one holding less than a token reserves the next."""
    leased = await _lease(conn, wants)
    missing = [w for w in wants if w.key not in leased]
    if missing:
        await conn.execute(_CREATE, _columns(missing, "tenant", "provider", "burst"))
        leased.update(await _lease(conn, missing))
    return leased


async def _lease(conn: AsyncConnection, wants: Sequence[Want]) -> dict[tuple[str, str], Lease]:
    rows = await _LEASE_ON_DRIVER.fetch(conn, _columns(wants, "tenant", "provider", "rate", "burst", "want"))
    return {
        (r.tenant_id, r.provider): Lease(int(r.granted), float(r.left_over), float(r.ready_in)) for r in rows
    }


def _columns(wants: Sequence[Want], *names: str) -> dict[str, list[object]]:
    return {f"{name}s": [getattr(w, name) for w in wants] for name in names}
