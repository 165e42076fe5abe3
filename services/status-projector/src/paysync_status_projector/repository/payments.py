"""SQL of a batch's payments: lock them, record their history and aliases, write their merged states."""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from typing import Any, NamedTuple

import orjson
from sqlalchemy import Text, bindparam, column, exists, func, literal, select, text, update
from sqlalchemy.dialects.postgresql import ARRAY, insert
from sqlalchemy.ext.asyncio import AsyncConnection

from paysync_core.db import OUTBOX_CHANNEL
from paysync_core.db.schema import observations, outbox, parked_observations, payment_refs, payments
from paysync_status_projector.repository.outbox import OUTBOX_COLUMNS
from paysync_status_projector.repository.statements import Compiled, bulk_rows, compile_once, records

#: Columns of a payment the projector rewrites after a merge.
PAYMENT_UPDATE_COLUMNS = (
    "merge_state",
    "status",
    "sequence",
    "flags",
    "amount_received_minor",
    "amount_refunded_minor",
    "paid_at",
    "status_changed_at",
)


class PaymentRow(NamedTuple):
    """A payment as the projector reads it, its merged state already parsed."""

    id: Any
    tenant_id: str
    provider: str
    provider_ref: str
    domain: str | None
    entity_id: str | None
    amount_minor: int | None
    currency: str | None
    status: str
    sequence: int
    mode: str | None
    sends: int
    merge_state: dict[str, Any]
    status_changed_at: Any


#: The payment columns the projector reads (in PaymentRow's order).
_PAYMENT_COLUMNS = (
    payments.c.id,
    payments.c.tenant_id,
    payments.c.provider,
    payments.c.provider_ref,
    payments.c.domain,
    payments.c.entity_id,
    payments.c.amount_minor,
    payments.c.currency,
    payments.c.status,
    payments.c.sequence,
    payments.c.mode,
    payments.c.sends,
    payments.c.merge_state,
    payments.c.status_changed_at,
)
# merge_state as text, parsed with orjson (`PaymentRow`): the driver's stdlib json is the slower part.
_SELECTED = [
    f"p.{c.name}::text AS {c.name}" if c.name == "merge_state" else f"p.{c.name}" for c in _PAYMENT_COLUMNS
]
_LOCK_FOR_BATCH = text(
    "WITH matched AS ("  # noqa: S608 - column names from our own schema; every value is a bound parameter
    "  SELECT r.payment_id, array_agg(r.ref) AS refs FROM payment_refs r"
    "  JOIN unnest(CAST(:tenants AS text[]), CAST(:providers AS text[]), CAST(:refs AS text[]))"
    "    AS k(tenant_id, provider, ref)"
    "  ON r.tenant_id = k.tenant_id AND r.provider = k.provider AND r.ref = k.ref"
    "  GROUP BY r.payment_id"
    "), targets AS ("
    "  SELECT payment_id AS id FROM matched"
    "  UNION"
    "  SELECT s.id FROM matched m JOIN payments p ON p.id = m.payment_id"
    "  JOIN payments s ON s.tenant_id = p.tenant_id AND s.domain = p.domain AND s.entity_id = p.entity_id"
    ")"
    f" SELECT {', '.join(_SELECTED)}, m.refs AS matched_refs"
    " FROM payments p JOIN targets t ON t.id = p.id LEFT JOIN matched m ON m.payment_id = p.id"
    " ORDER BY p.id FOR UPDATE OF p"
).columns(
    *(column(c.name, Text if c.name == "merge_state" else c.type) for c in _PAYMENT_COLUMNS),
    column("matched_refs", ARRAY(Text)),
)


_LOCK_FOR_BATCH_SQL = compile_once(_LOCK_FOR_BATCH)


async def lock_for_batch(
    conn: AsyncConnection, keys: Iterable[tuple[str, str, str]]
) -> tuple[dict[tuple[str, str, str], Any], dict[Any, Any]]:
    """Which payment each known (tenant, provider, ref) is; the rows of those and their entities, locked."""
    # Rows are locked in id order (no deadlock between projectors), and an entity's row is written
    # only by whoever holds all its payments, from their states as locked.
    keys = list(set(keys))
    if not keys:
        return {}, {}
    tenants, providers, refs = (list(c) for c in zip(*keys, strict=True))
    rows = await _LOCK_FOR_BATCH_SQL.run(conn, {"tenants": tenants, "providers": providers, "refs": refs})
    found: dict[tuple[str, str, str], Any] = {}
    locked: dict[Any, Any] = {}
    for row in rows:  # unpacked by position: a thousand rows' names looked up one by one cost more
        *columns, merge_state, status_changed_at, matched_refs = row
        payment = PaymentRow._make((*columns, orjson.loads(merge_state), status_changed_at))
        locked[payment.id] = payment
        for ref in matched_refs or ():
            found[(payment.tenant_id, payment.provider, ref)] = payment.id
    return found, locked


_HISTORY_COLUMNS = (
    "tenant_id",
    "observation_id",
    "payment_id",
    "provider_ref",
    "status",
    "provider_time",
    "source",
    "verified",
    "amount_minor",
    "currency",
    "evidence",
    "status_after",
    "mode",
    "refused",
)


_RECORD_HISTORY = (
    insert(observations)
    .from_select(_HISTORY_COLUMNS, bulk_rows(observations, _HISTORY_COLUMNS))
    .on_conflict_do_nothing(index_elements=[observations.c.tenant_id, observations.c.observation_id])
    .returning(observations.c.tenant_id, observations.c.observation_id)
)


_RECORD_HISTORY_SQL = compile_once(_RECORD_HISTORY)


async def record_history(conn: AsyncConnection, rows: Sequence[dict[str, Any]]) -> set[tuple[str, str]]:
    """Insert history rows; return the (tenant, observation id) pairs that were new (the rest: duplicates)."""
    if not rows:
        return set()
    result = await _RECORD_HISTORY_SQL.run(conn, records(observations, _HISTORY_COLUMNS, rows))
    return {(r.tenant_id, r.observation_id) for r in result}


_REF_COLUMNS = ("tenant_id", "provider", "ref", "payment_id")

_NEW_REFS = (
    insert(payment_refs)
    .from_select(_REF_COLUMNS, bulk_rows(payment_refs, _REF_COLUMNS))
    .on_conflict_do_nothing()
    .returning(payment_refs.c.tenant_id, payment_refs.c.provider, payment_refs.c.ref)
    .cte("new_refs")
)

#: The aliases inserted, and whether a parked observation names one of them (its GIN index on refs
#: answers `?` per new alias): one round trip, as the insert alone was.
_ADD_REFS_SQL = compile_once(
    select(
        exists().where(
            parked_observations.c.tenant_id == _NEW_REFS.c.tenant_id,
            parked_observations.c.provider == _NEW_REFS.c.provider,
            parked_observations.c.refs.has_key(_NEW_REFS.c.ref),
        )
    )
)


async def add_refs(conn: AsyncConnection, rows: Sequence[dict[str, Any]]) -> bool:
    """Remember aliases (one already bound to a payment keeps its binding); tell whether an observation
    parked for want of its payment names one of those newly bound, so the unpark can take it now."""
    if not rows:
        return False
    result = await _ADD_REFS_SQL.run(conn, records(payment_refs, _REF_COLUMNS, list(rows)))
    return bool(result.scalar_one())


async def add_phone_hashes(conn: AsyncConnection, rows: Sequence[dict[str, Any]]) -> None:
    """Keep each payer phone hash on its payment, if it has none yet (the registered one stays)."""
    if rows:
        await conn.execute(
            update(payments)
            .where(payments.c.id == bindparam("b_payment_id"), payments.c.phone_hash.is_(None))
            .values(phone_hash=bindparam("b_phone_hash")),
            [{"b_payment_id": r["payment_id"], "b_phone_hash": r["phone_hash"]} for r in rows],
        )


_MERGED_COLUMNS = ("id", *PAYMENT_UPDATE_COLUMNS)


@functools.cache
def _write_merged(with_events: bool) -> Compiled:
    merged = bulk_rows(payments, _MERGED_COLUMNS, "p_").subquery("merged")
    updated = (
        update(payments)
        .where(payments.c.id == merged.c.id)
        .values(updated_at=func.now(), **{c: merged.c[c] for c in PAYMENT_UPDATE_COLUMNS})
        .cte("updated")
    )
    if not with_events:
        return compile_once(select(literal(1)).add_cte(updated))
    # Events are inserted in the order given: a payment's changes get ids in sequence order.
    queued = insert(outbox).from_select(OUTBOX_COLUMNS, bulk_rows(outbox, OUTBOX_COLUMNS, "o_")).cte("queued")
    return compile_once(select(func.pg_notify(OUTBOX_CHANNEL, "")).add_cte(updated, queued))


async def write_merged(
    conn: AsyncConnection, payment_rows: Sequence[dict[str, Any]], events: Sequence[dict[str, Any]]
) -> None:
    """In one statement: the payments' merged states, their events in the outbox, the relays' wake-up."""
    params = records(payments, _MERGED_COLUMNS, payment_rows, "p_")
    if events:
        params |= records(outbox, OUTBOX_COLUMNS, events, "o_")
    await _write_merged(bool(events)).run(conn, params)
