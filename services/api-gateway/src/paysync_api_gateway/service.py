"""api-gateway's use cases."""

from __future__ import annotations

import base64
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

import structlog
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from paysync_api_gateway import repository as repo
from paysync_api_gateway.driver_pool import DriverPool
from paysync_api_gateway.refresh import RefreshCoordinator, RequestNotSent
from paysync_api_gateway.registrations import CredentialModes, register_new
from paysync_api_gateway.schemas import Payment, PaymentPage, RegisterPayment
from paysync_api_gateway.wakeups import MatcherWakeups
from paysync_core.contracts import ReconcileReply, ReconcileRequest
from paysync_core.db.engine import no_transaction
from paysync_core.db.tenants import credentials_ciphertext
from paysync_core.domain.ids import payment_id_for
from paysync_core.errors import PaysyncError


class Conflict(PaysyncError):
    """The request contradicts what is registered already."""

    code = "conflict"


class NotFound(PaysyncError):
    """No such resource for this tenant."""

    code = "not_found"


class BadCursor(PaysyncError):
    """A cursor this API did not hand out."""

    code = "bad_cursor"


log = structlog.get_logger()

_SAME_FIELDS = ("domain", "entity_id", "amount_minor", "currency")
T = TypeVar("T")


async def register_payment(
    engine: AsyncEngine,
    pool: DriverPool,
    tenant: str,
    body: RegisterPayment,
    modes: CredentialModes,
    wakeups: MatcherWakeups,
    phone_hash: str | None = None,
) -> tuple[dict[str, Any], bool]:
    """Register a payment to track; idempotent on (tenant, provider, provider_ref).

    Returns the payment (as JSON: `payment_json`) and whether it was new. Re-registering with other
    details is a Conflict. The payment's mode (test or live) is that of the tenant's credentials for
    its gateway now, and stays: observations of the other mode are never applied to it. Without
    credentials keys configured (no credentials can be read) the mode is not known. `phone_hash`
    (the payer's, see paysync_core.phones) is kept on a payment that has none yet. A new payment takes
    one statement (`registrations.py`, on the driver pool: `driver_pool.py`), and the projector's
    matcher is woken for it within a short window (`wakeups.py`); the rest (registered already, a
    reference taken, a failure) the long way, through SQLAlchemy, which wakes it in its transaction.
    """
    provider = body.provider.value
    values = {
        "id": payment_id_for(tenant, provider, body.provider_ref),
        "tenant_id": tenant,
        "provider": provider,
        "provider_ref": body.provider_ref,
        "domain": body.domain,
        "entity_id": body.entity_id,
        "amount_minor": body.amount_minor,
        "currency": body.currency,
        "metadata": body.metadata,
        "phone_hash": phone_hash,
    }
    new = await _registered_new(pool, modes, values, body)
    if new is not None:
        wakeups.registered()
        return payment_json(_with_aliases(dict(new), body)), True
    async with engine.begin() as conn:  # through SQLAlchemy: a dropped connection is reported (503)
        return await _register(conn, values, body, modes)


async def _registered_new(
    pool: DriverPool, modes: CredentialModes, values: dict[str, Any], body: RegisterPayment
) -> Any | None:
    """The new payment's row if one statement registered it; None if not (nothing was written)."""
    try:
        return await register_new(pool, modes, values, body)
    except Exception:  # noqa: BLE001 - no connection to be had: the long way reports why
        return None


async def _register(
    conn: AsyncConnection, values: dict[str, Any], body: RegisterPayment, modes: CredentialModes
) -> tuple[dict[str, Any], bool]:
    """`register_payment` in statements of their own, in the caller's transaction: for a payment that
    may exist already, whose references may be taken, so each case is decided and reported."""
    tenant, provider, payment_id, phone_hash = (
        values[k] for k in ("tenant_id", "provider", "id", "phone_hash")
    )
    mode = await _mode_of(conn, tenant, provider, modes)
    inserted = await repo.insert_payment(conn, {**values, "mode": mode})
    created = inserted is not None
    if not created and phone_hash:
        await repo.add_phone_hash(conn, payment_id, phone_hash)
    if not created:
        existing = await repo.get_payment(conn, tenant, payment_id)
        differing = [f for f in _SAME_FIELDS if getattr(existing, f) != getattr(body, f)]
        if phone_hash and getattr(existing, "phone_hash", None) != phone_hash:
            differing.append("phone")
        if differing:
            raise Conflict(f"{body.provider_ref} is registered already with other {', '.join(differing)}")
    taken = await repo.bind_refs(conn, tenant, provider, [body.provider_ref, *body.aliases], payment_id)
    if taken:
        raise Conflict(f"references already belong to another payment: {sorted(taken)}")
    await repo.announce_registration(conn)
    if inserted is not None:
        return payment_json(_with_aliases(dict(inserted._mapping), body)), True
    return payment_json(await repo.read_payment(conn, tenant, payment_id)), False


def _with_aliases(inserted: dict[str, Any], body: RegisterPayment) -> dict[str, Any]:
    """A new payment's row as `repo.read_payment` reads it, without reading it again: its references
    are exactly those just bound (a reference of a payment goes with it: no older one can point here)."""
    return {**inserted, "aliases": sorted(set(body.aliases) - {body.provider_ref})}


async def _mode_of(conn: AsyncConnection, tenant: str, provider: str, modes: CredentialModes) -> str | None:
    """test or live, from the tenant's credentials for `provider` now; None when they do not say."""
    if not modes.decrypts:
        return None
    return modes.mode(tenant, await credentials_ciphertext(conn, tenant), provider)


def parse_payment_id(payment_id: str) -> uuid.UUID:
    """A payment id from a path; NotFound for anything that cannot be one."""
    try:
        return uuid.UUID(payment_id)
    except ValueError:
        raise NotFound(f"no payment {payment_id!r}") from None


async def get_payment(engine: AsyncEngine, pool: DriverPool, tenant: str, payment_id: str) -> dict[str, Any]:
    """One of the tenant's payments, as JSON (`payment_json`); NotFound otherwise (also for other
    tenants' ids)."""
    key = parse_payment_id(payment_id)
    row = await repo.poll_payment(pool, engine, tenant, key)  # one statement, no transaction
    if row is None:
        raise NotFound(f"no payment {payment_id!r}")
    return payment_json(row)


async def list_payments(
    engine: AsyncEngine,
    tenant: str,
    filters: dict[str, str],
    cursor: str | None,
    limit: int,
    provider_ref: str | None = None,
    times: dict[str, datetime] | None = None,
    phone_hash: str | None = None,
) -> PaymentPage:
    """A page of the tenant's payments, newest first; `provider_ref` matches a reference or an alias,
    `times` bound `created_at` (`created_since`, `created_until`) and `updated_at` (`updated_since`)."""
    after = decode_cursor(cursor, uuid.UUID) if cursor else None
    async with no_transaction(engine) as conn:
        rows = await repo.list_payments(
            conn,
            tenant,
            filters=filters,
            after=after,
            limit=limit + 1,
            provider_ref=provider_ref,
            times=times or {},
            phone_hash=phone_hash,
        )
    items = [to_payment(r._mapping) for r in rows[:limit]]
    last = rows[limit - 1] if len(rows) > limit else None
    return PaymentPage(items=items, next_cursor=encode_cursor(last.created_at, last.id) if last else None)


async def stats(engine: AsyncEngine, tenant: str) -> dict[str, Any]:
    """Totals by status, and amounts by currency."""
    async with no_transaction(engine) as conn:
        rows = await repo.stats(conn, tenant)
    by_status: dict[str, int] = {}
    by_currency: dict[str, dict[str, int]] = {}
    for r in rows:
        by_status[r.status] = by_status.get(r.status, 0) + r.count
        cur = by_currency.setdefault(
            r.currency or "unknown", {"registered_minor": 0, "received_minor": 0, "refunded_minor": 0}
        )
        cur["registered_minor"] += int(r.amount_minor)
        cur["received_minor"] += int(r.received_minor)
        cur["refunded_minor"] += int(r.refunded_minor)
    return {"total": sum(by_status.values()), "by_status": by_status, "by_currency": by_currency}


#: A queued check nobody took from Kafka within this long is run from its record by a reconciler.
QUEUED_PICK_UP_SECONDS = 60.0


async def check_now(
    engine: AsyncEngine, refresh: RefreshCoordinator, request: ReconcileRequest, timeout: float
) -> ReconcileReply | None:
    """Ask the reconciler for a check and wait up to `timeout`; None when it outlasts that.

    The check is recorded first, so the follow-up link of a 202 answers at once. Raises
    RequestNotSent (and forgets the record) when the broker did not take the request.
    """
    async with engine.begin() as conn:
        await repo.queue_request(conn, request, QUEUED_PICK_UP_SECONDS)
    try:
        reply = await refresh.ask(request, timeout)
    except RequestNotSent:
        async with engine.begin() as conn:
            await repo.forget_queued(conn, request.request_id)
        raise
    if reply is None:  # it may have been answered while this process was not listening yet
        async with no_transaction(engine) as conn:
            row = await repo.reconcile_request(conn, request.tenant, request.request_id)
        if row is not None and row.status == "completed" and row.reply:
            reply = ReconcileReply.model_validate(row.reply)
    return reply


async def reconcile_request(
    engine: AsyncEngine, tenant: str, request_id: str
) -> tuple[ReconcileRequest, ReconcileReply | None, str | None]:
    """A check, its reply once it completed, and why it failed if it did (the reconciler gave up after
    its bounded attempts); NotFound for unknown (or other tenants') ids."""
    async with no_transaction(engine) as conn:
        row = await repo.reconcile_request(conn, tenant, request_id)
    if row is None:
        raise NotFound(f"no check {request_id!r}")
    request = ReconcileRequest.model_validate(row.request)
    reply = ReconcileReply.model_validate(row.reply) if row.status == "completed" and row.reply else None
    failure = (row.error or "the check failed") if row.status == "failed" else None
    return request, reply, failure


def payment_fields(row: Any) -> dict[str, Any]:
    """The API's view of a payments row's columns (SQLAlchemy's row mapping, or asyncpg's record), in
    the order of `Payment`'s fields."""
    return {
        "id": str(row["id"]),
        "provider": row["provider"],
        "provider_ref": row["provider_ref"],
        "aliases": sorted(row["aliases"] or []),
        "domain": row["domain"],
        "entity_id": row["entity_id"],
        "amount_minor": row["amount_minor"],
        "currency": row["currency"],
        "status": row["status"],
        "mode": row["mode"],
        "amount_received_minor": row["amount_received_minor"],
        "amount_refunded_minor": row["amount_refunded_minor"],
        "paid_at": row["paid_at"],
        "flags": list(row["flags"]),
        "sequence": row["sequence"],
        "metadata": row["metadata"],
        "created_at": row["created_at"],
        "updated_at": row["updated_at"],
    }


def to_payment(row: Any) -> Payment:
    """A payments row as the API's `Payment`."""
    return Payment(**payment_fields(row))


def payment_json(row: Any) -> dict[str, Any]:
    """`to_payment(row).model_dump(mode="json")`, without the model: the polling read's and a
    registration's answer, built for each request (the model's validation and dump were a tenth of a
    read's CPU, bench/README.md, API reads and registrations). A row's columns are already of the
    model's types (the database's checks see to it), so only its times need rendering."""
    fields = payment_fields(row)
    for name in _TIMES:
        at = fields[name]
        if at is not None:
            fields[name] = json_time(at)
    return fields


_TIMES = ("paid_at", "created_at", "updated_at")


def json_time(at: datetime) -> str:
    """A time as pydantic renders it in JSON: ISO 8601, with `Z` for UTC."""
    text = at.isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def encode_cursor(at: datetime, ident: object) -> str:
    return base64.urlsafe_b64encode(f"{at.isoformat()}|{ident}".encode()).decode()


#: Ids in cursors are PostgreSQL bigints or UUIDs; anything else was not handed out here.
_BIGINT = range(-(2**63), 2**63)


def decode_cursor(cursor: str, ident_type: Callable[[str], T]) -> tuple[datetime, T]:
    """The (timestamp, id) of a cursor; BadCursor for anything `encode_cursor` cannot have made."""
    try:
        at_text, ident_text = base64.urlsafe_b64decode(cursor.encode()).decode().split("|")
        at, ident = datetime.fromisoformat(at_text), ident_type(ident_text)
        if at.tzinfo is None or (isinstance(ident, int) and ident not in _BIGINT):
            raise ValueError("naive timestamp or id out of range")
        return at.astimezone(UTC), ident
    except (ValueError, UnicodeDecodeError, OverflowError) as exc:
        raise BadCursor("cursor is not one this API handed out") from exc
