"""All SQL of the api-gateway."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Select, and_, bindparam, delete, func, literal, select, text, tuple_, update
from sqlalchemy.dialects.postgresql import ARRAY, insert
from sqlalchemy.dialects.postgresql.asyncpg import dialect as asyncpg_dialect
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from paysync_api_gateway.driver_pool import DriverPool
from paysync_core.contracts import ReconcileRequest
from paysync_core.db import REGISTERED_CHANNEL
from paysync_core.db.schema import payment_refs, payments, reconcile_requests


async def insert_payment(conn: AsyncConnection, values: dict[str, Any]) -> Any | None:
    """Insert a payment; its new row (without aliases), or None if (tenant, provider, reference) is
    registered already."""
    result = await conn.execute(
        insert(payments).values(**values).on_conflict_do_nothing().returning(payments)
    )
    return result.first()


async def bind_refs(
    conn: AsyncConnection, tenant: str, provider: str, refs: list[str], payment_id: uuid.UUID
) -> dict[str, Any]:
    """Bind references to the payment; returns those already bound to another payment.

    Only the references the insert did not bind (bound before, to this payment or another) are looked
    up, in a statement of their own: one that another transaction bound meanwhile is visible to it.
    """
    if not refs:
        return {}
    # One row a reference from an array parameter, not a VALUES list: a statement SQLAlchemy caches
    # compiled (a VALUES list of rows it cannot cache, and compiled it anew for every registration).
    each_ref = select(
        literal(tenant, payment_refs.c.tenant_id.type),
        literal(provider, payment_refs.c.provider.type),
        func.unnest(literal(refs, ARRAY(payment_refs.c.ref.type))),
        literal(payment_id, payment_refs.c.payment_id.type),
    )
    bound = await conn.execute(
        insert(payment_refs)
        .from_select(["tenant_id", "provider", "ref", "payment_id"], each_ref)
        .on_conflict_do_nothing()
        .returning(payment_refs.c.ref)
    )
    rest = set(refs) - {r.ref for r in bound}
    if not rest:
        return {}
    rows = await conn.execute(
        select(payment_refs.c.ref, payment_refs.c.payment_id).where(
            payment_refs.c.tenant_id == tenant,
            payment_refs.c.provider == provider,
            payment_refs.c.ref.in_(sorted(rest)),
        )
    )
    return {r.ref: r.payment_id for r in rows if r.payment_id != payment_id}


async def announce_registration(conn: AsyncConnection) -> None:
    """Wake the projector's matcher for parked observations when this transaction commits."""
    await conn.execute(text(f"NOTIFY {REGISTERED_CHANNEL}"))


def _with_aliases(*columns: Any) -> Select[Any]:
    """Payments (all their columns, or `columns`) with their aliases: references other than their own."""
    aliases = (
        select(func.coalesce(func.array_agg(payment_refs.c.ref), text("'{}'::varchar[]")))
        .where(
            and_(payment_refs.c.payment_id == payments.c.id, payment_refs.c.ref != payments.c.provider_ref)
        )
        .scalar_subquery()
        .label("aliases")
    )
    return select(*(columns or (payments,)), aliases)


async def add_phone_hash(conn: AsyncConnection, payment_id: uuid.UUID, phone_hash: str) -> None:
    """Keep the payer's phone hash on a payment registered without one (one given is never replaced)."""
    await conn.execute(
        update(payments)
        .where(payments.c.id == payment_id, payments.c.phone_hash.is_(None))
        .values(phone_hash=phone_hash)
    )


#: The time lookups of `GET /v1/payments`: since is inclusive, until exclusive.
_TIME_BOUNDS = {
    "created_since": lambda at: payments.c.created_at >= at,
    "created_until": lambda at: payments.c.created_at < at,
    "updated_since": lambda at: payments.c.updated_at >= at,
}


#: The columns of a payment the API shows (`service.to_payment`).
_SHOWN = (
    "id",
    "provider",
    "provider_ref",
    "domain",
    "entity_id",
    "amount_minor",
    "currency",
    "status",
    "mode",
    "amount_received_minor",
    "amount_refunded_minor",
    "paid_at",
    "flags",
    "sequence",
    "metadata",
    "created_at",
    "updated_at",
)
#: `read_payment`'s statement, compiled once for asyncpg: $1 the tenant, $2 the payment's id.
_ONE_PAYMENT = str(
    _with_aliases(*(payments.c[name] for name in _SHOWN))
    .where(payments.c.tenant_id == bindparam("tenant"), payments.c.id == bindparam("payment_id"))
    .compile(dialect=asyncpg_dialect())
)


async def get_payment(conn: AsyncConnection, tenant: str, payment_id: uuid.UUID) -> Any | None:
    """One of the tenant's payments, or None."""
    row = await conn.execute(
        _with_aliases().where(payments.c.tenant_id == tenant, payments.c.id == payment_id)
    )
    return row.first()


async def read_payment(conn: AsyncConnection, tenant: str, payment_id: uuid.UUID) -> Any | None:
    """One of the tenant's payments (the columns the API shows), or None, on `conn` (in its transaction).

    Skips SQLAlchemy's execution layer (statement building, cache key, execution context: more CPU
    than asyncpg's own work, bench/README.md, API reads): one statement prepared once per connection,
    run on the pooled connection's asyncpg connection. Should that fail, the statement runs again
    through SQLAlchemy, so a failure (a dropped connection above all: 503, and the pool lets go of its
    peers) is reported as it is for every other statement.
    """
    driver: Any = (await conn.get_raw_connection()).driver_connection
    try:
        return await driver.fetchrow(_ONE_PAYMENT, tenant, payment_id)
    except Exception:  # noqa: BLE001 - any failure is SQLAlchemy's to report, as below
        result = await conn.exec_driver_sql(_ONE_PAYMENT, (tenant, payment_id))
        row = result.first()
        return None if row is None else row._mapping


async def poll_payment(
    pool: DriverPool, engine: AsyncEngine, tenant: str, payment_id: uuid.UUID
) -> Any | None:
    """`read_payment` for the front ends' polling read: on the driver pool (`driver_pool.py`), without a
    checkout from SQLAlchemy's; should that fail, through SQLAlchemy, which reports the failure."""
    try:
        return await pool.fetchrow(_ONE_PAYMENT, tenant, payment_id)
    except Exception:  # noqa: BLE001 - a dropped connection, the database away: reported by SQLAlchemy
        async with engine.connect() as conn:
            return await read_payment(conn, tenant, payment_id)


async def list_payments(
    conn: AsyncConnection,
    tenant: str,
    *,
    filters: dict[str, str],
    after: tuple[Any, uuid.UUID] | None,
    limit: int,
    provider_ref: str | None = None,
    times: dict[str, datetime] | None = None,
    phone_hash: str | None = None,
) -> list[Any]:
    """The tenant's payments, newest first, matching the filters, times, reference and payer phone hash,
    after the cursor."""
    query = _with_aliases().where(payments.c.tenant_id == tenant)
    for column, value in filters.items():
        query = query.where(payments.c[column] == value)
    for name, at in (times or {}).items():
        query = query.where(_TIME_BOUNDS[name](at))
    if phone_hash is not None:
        query = query.where(payments.c.phone_hash == phone_hash)
    if provider_ref is not None:  # the payment's own reference or any alias: all are bound in payment_refs
        query = query.where(
            payments.c.id.in_(
                select(payment_refs.c.payment_id).where(
                    payment_refs.c.tenant_id == tenant, payment_refs.c.ref == provider_ref
                )
            )
        )
    if after is not None:
        # A row-value comparison, so payments that share a timestamp are ordered by id, not skipped.
        query = query.where(tuple_(payments.c.created_at, payments.c.id) < tuple_(*after))
    rows = await conn.execute(query.order_by(payments.c.created_at.desc(), payments.c.id.desc()).limit(limit))
    return list(rows)


async def stats(conn: AsyncConnection, tenant: str) -> list[Any]:
    """Counts and amounts by status and currency."""
    rows = await conn.execute(
        select(
            payments.c.status,
            payments.c.currency,
            func.count().label("count"),
            func.coalesce(func.sum(payments.c.amount_minor), 0).label("amount_minor"),
            func.coalesce(func.sum(payments.c.amount_received_minor), 0).label("received_minor"),
            func.coalesce(func.sum(payments.c.amount_refunded_minor), 0).label("refunded_minor"),
        )
        .where(payments.c.tenant_id == tenant)
        .group_by(payments.c.status, payments.c.currency)
    )
    return list(rows)


async def reconcile_request(conn: AsyncConnection, tenant: str, request_id: str) -> Any | None:
    """The record of a targeted check: queued here, then the reconciler's (running, completed, failed)."""
    row = await conn.execute(
        select(
            reconcile_requests.c.status,
            reconcile_requests.c.request,
            reconcile_requests.c.reply,
            reconcile_requests.c.error,
        ).where(reconcile_requests.c.request_id == request_id, reconcile_requests.c.tenant == tenant)
    )
    return row.first()


async def queue_request(conn: AsyncConnection, request: ReconcileRequest, pick_up_seconds: float) -> None:
    """Record a check before asking for it, so its follow-up link answers from the first moment.

    A reconciler takes the row over when the request reaches it through Kafka; one that finds it
    still queued after `pick_up_seconds` runs it from here.
    """
    await conn.execute(
        insert(reconcile_requests)
        .values(
            request_id=request.request_id,
            tenant=request.tenant,
            kind=request.kind,
            status="queued",
            request=request.model_dump(mode="json"),
            lease_until=func.now() + timedelta(seconds=pick_up_seconds),
        )
        .on_conflict_do_nothing()
    )


async def forget_queued(conn: AsyncConnection, request_id: str) -> None:
    """Drop the record of a check whose request never reached the broker."""
    await conn.execute(
        delete(reconcile_requests).where(
            reconcile_requests.c.request_id == request_id, reconcile_requests.c.status == "queued"
        )
    )
