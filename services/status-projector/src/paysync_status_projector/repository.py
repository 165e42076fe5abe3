"""All SQL of the status-projector."""

from __future__ import annotations

import functools
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

import orjson
from sqlalchemy import (
    Select,
    String,
    Table,
    Text,
    and_,
    any_,
    bindparam,
    case,
    cast,
    column,
    delete,
    exists,
    func,
    literal,
    not_,
    or_,
    select,
    text,
    tuple_,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, insert
from sqlalchemy.dialects.postgresql.asyncpg import dialect as asyncpg_dialect
from sqlalchemy.ext.asyncio import AsyncConnection

from paysync_core.contracts import PaymentObservation
from paysync_core.db import OUTBOX_CHANNEL
from paysync_core.db.schema import (
    observations,
    outbox,
    parked_observations,
    payment_refs,
    payments,
    sync_issues,
    tenants,
)
from paysync_core.domain.status import MONEY_MOVED, UnifiedStatus
from paysync_status_projector.domains import BoundDomain, BoundTable

_DIALECT = asyncpg_dialect()


@dataclass(frozen=True, slots=True)
class _Compiled:
    """A statement compiled once (its SQL and the order of its parameters), run many times."""

    # The per-batch statements run thousands of times a minute; compiling (or even computing
    # SQLAlchemy's cache key of) a statement with dozens of CTEs each time would cost more than
    # PostgreSQL takes to run it. Identifiers in the SQL are those SQLAlchemy quoted.

    sql: str
    names: tuple[str, ...]
    defaults: dict[str, Any]

    async def run(self, conn: AsyncConnection, params: dict[str, Any]) -> Any:
        """Execute with named parameters; those not given take the value bound at build time."""
        values = tuple(params[n] if n in params else self.defaults[n] for n in self.names)
        return await conn.exec_driver_sql(self.sql, values)


def _compile(statement: Any) -> _Compiled:
    compiled = statement.compile(dialect=_DIALECT)
    return _Compiled(str(compiled), tuple(compiled.positiontup or ()), dict(compiled.params))


#: Advisory-lock keys.
_RELAY_LOCK = 7355609
_DRIFT_LOCK = 7355610

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
    payments.c.merge_state,
    payments.c.status_changed_at,
)
# merge_state as text, parsed with orjson (`PaymentRow`): the driver's stdlib json is the slower part.
_SELECTED = [
    f"p.{c.name}::text AS {c.name}" if c.name == "merge_state" else f"p.{c.name}" for c in _PAYMENT_COLUMNS
]
_LOCK_FOR_BATCH = text(
    "WITH matched AS ("
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


_LOCK_FOR_BATCH_SQL = _compile(_LOCK_FOR_BATCH)


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
        payment = PaymentRow(*columns, orjson.loads(merge_state), status_changed_at)
        locked[payment.id] = payment
        for ref in matched_refs or ():
            found[(payment.tenant_id, payment.provider, ref)] = payment.id
    return found, locked


def bulk_rows(table: Table, columns: Sequence[str], prefix: str = "bulk_") -> Select:
    """SELECT ... FROM jsonb_to_recordset(:rows) AS r(column type, ...): many rows as one JSON parameter."""
    # Compiled once per table and set of columns; the rows travel as one JSON document that
    # PostgreSQL takes apart in C (see `records`): no per-row statement building or per-value
    # encoding in Python, which is most of the cost of executemany or of a multi-row VALUES.
    source = (
        func.jsonb_to_recordset(cast(bindparam(f"{prefix}rows", type_=Text), JSONB))
        .table_valued(*(column(name, table.c[name].type) for name in columns))
        .render_derived(name=f"{prefix}r", with_types=True)
    )
    return select(*(source.c[name] for name in columns))


def records(
    table: Table, columns: Sequence[str], rows: Sequence[dict[str, Any]], prefix: str = "bulk_"
) -> dict[str, str]:
    """The parameter of `bulk_rows`: rows with exactly `columns` as JSON (a str in a JSONB column is JSON)."""
    for name in columns:
        if isinstance(table.c[name].type, JSONB):
            for row in rows:
                if isinstance(row[name], str):
                    row[name] = orjson.Fragment(row[name])
    return {f"{prefix}rows": orjson.dumps(rows, default=str).decode()}


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


_RECORD_HISTORY_SQL = _compile(_RECORD_HISTORY)


async def record_history(conn: AsyncConnection, rows: Sequence[dict[str, Any]]) -> set[tuple[str, str]]:
    """Insert history rows; return the (tenant, observation id) pairs that were new (the rest: duplicates)."""
    if not rows:
        return set()
    result = await _RECORD_HISTORY_SQL.run(conn, records(observations, _HISTORY_COLUMNS, rows))
    return {(r.tenant_id, r.observation_id) for r in result}


async def add_refs(conn: AsyncConnection, rows: Sequence[dict[str, Any]]) -> None:
    """Remember aliases; a reference already bound to a payment keeps its binding."""
    if rows:
        await conn.execute(insert(payment_refs).on_conflict_do_nothing(), list(rows))


_MERGED_COLUMNS = ("id", *PAYMENT_UPDATE_COLUMNS)
_OUTBOX_COLUMNS = ("topic", "key", "payload")


@functools.cache
def _write_merged(with_events: bool) -> _Compiled:
    merged = bulk_rows(payments, _MERGED_COLUMNS, "p_").subquery("merged")
    updated = (
        update(payments)
        .where(payments.c.id == merged.c.id)
        .values(updated_at=func.now(), **{c: merged.c[c] for c in PAYMENT_UPDATE_COLUMNS})
        .cte("updated")
    )
    if not with_events:
        return _compile(select(literal(1)).add_cte(updated))
    # Events are inserted in the order given: a payment's changes get ids in sequence order.
    queued = (
        insert(outbox).from_select(_OUTBOX_COLUMNS, bulk_rows(outbox, _OUTBOX_COLUMNS, "o_")).cte("queued")
    )
    return _compile(select(func.pg_notify(OUTBOX_CHANNEL, "")).add_cte(updated, queued))


async def write_merged(
    conn: AsyncConnection, payment_rows: Sequence[dict[str, Any]], events: Sequence[dict[str, Any]]
) -> None:
    """In one statement: the payments' merged states, their events in the outbox, the relays' wake-up."""
    params = records(payments, _MERGED_COLUMNS, payment_rows, "p_")
    if events:
        params |= records(outbox, _OUTBOX_COLUMNS, events, "o_")
    await _write_merged(bool(events)).run(conn, params)


async def enqueue(conn: AsyncConnection, rows: Sequence[dict[str, Any]]) -> None:
    """Add events to the outbox, in the given order, and wake the relays when this transaction commits."""
    if rows:
        await conn.execute(
            insert(outbox).from_select(_OUTBOX_COLUMNS, bulk_rows(outbox, _OUTBOX_COLUMNS)),
            records(outbox, _OUTBOX_COLUMNS, rows),
        )
        await conn.execute(text(f"NOTIFY {OUTBOX_CHANNEL}"))


async def park(conn: AsyncConnection, observations_: Sequence[PaymentObservation]) -> None:
    """Keep observations of unknown references until their payment is registered."""
    if observations_:
        await conn.execute(
            insert(parked_observations).on_conflict_do_nothing(),
            [
                {
                    "tenant_id": o.tenant,
                    "provider": o.provider.value,
                    "observation_id": o.observation_id,
                    "refs": list(o.refs),
                    "payload": o.model_dump(mode="json"),
                }
                for o in observations_
            ],
        )


async def take_matched_parked(conn: AsyncConnection, limit: int) -> list[PaymentObservation]:
    """Remove and return parked observations whose payment is now registered (by reference or alias)."""
    matched = (
        select(parked_observations.c.id)
        .where(
            text(
                "EXISTS (SELECT 1 FROM payment_refs r WHERE r.tenant_id = parked_observations.tenant_id"
                " AND r.provider = parked_observations.provider"
                " AND r.ref IN (SELECT jsonb_array_elements_text(parked_observations.refs)))"
            )
        )
        .order_by(parked_observations.c.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    rows = await conn.execute(
        delete(parked_observations)
        .where(parked_observations.c.id.in_(matched.scalar_subquery()))
        .returning(parked_observations.c.payload)
    )
    return [PaymentObservation.model_validate(r.payload) for r in rows]


# -- sync issues ------------------------------------------------------------------------------


async def open_issues(conn: AsyncConnection, rows: Sequence[dict[str, Any]]) -> set[str]:
    """Open issues that are not open already; returns the alert ids of those that are new."""
    if not rows:
        return set()
    result = await conn.execute(
        insert(sync_issues).on_conflict_do_nothing().returning(sync_issues.c.alert_id), list(rows)
    )
    return set(result.scalars())


async def occurrences(
    conn: AsyncConnection, kind: str, keys: Iterable[tuple[str, str]]
) -> dict[tuple[str, str], int]:
    """How many issues of `kind` each (tenant, subject) has had so far."""
    keys = list(set(keys))
    if not keys:
        return {}
    rows = await conn.execute(
        select(sync_issues.c.tenant_id, sync_issues.c.subject, func.count().label("n"))
        .where(sync_issues.c.kind == kind, tuple_(sync_issues.c.tenant_id, sync_issues.c.subject).in_(keys))
        .group_by(sync_issues.c.tenant_id, sync_issues.c.subject)
    )
    return {(r.tenant_id, r.subject): r.n for r in rows}


async def open_issue_subjects(conn: AsyncConnection, kind: str, domain: str) -> dict[tuple[str, str], int]:
    """The open issues of `kind` about `domain`'s entities: (tenant, subject) -> issue id."""
    rows = await conn.execute(
        select(sync_issues.c.id, sync_issues.c.tenant_id, sync_issues.c.subject).where(
            sync_issues.c.kind == kind, sync_issues.c.domain == domain, sync_issues.c.resolved_at.is_(None)
        )
    )
    return {(r.tenant_id, r.subject): r.id for r in rows}


async def resolve_issues(conn: AsyncConnection, ids: Sequence[int]) -> None:
    """Mark issues resolved: the drift is gone; if it comes back, it is a new occurrence."""
    if ids:
        await conn.execute(
            update(sync_issues).where(sync_issues.c.id.in_(ids)).values(resolved_at=func.now())
        )


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


# -- domain rows ------------------------------------------------------------------------------


@functools.cache
def _upsert(bound: BoundTable, shape: tuple[str, ...], prefix: str) -> Any:
    """INSERT ... SELECT unnest ... ON CONFLICT (tenant, key) DO UPDATE, honouring `keep`."""
    table, mapping = bound.table, bound.mapping
    stmt = insert(table).from_select(shape, bulk_rows(table, shape, prefix))
    kept = mapping.keep
    return stmt.on_conflict_do_update(
        index_elements=[table.c[mapping.tenant_column], table.c[mapping.key_column]],
        set_={
            table.c[c].key: (
                case(
                    (cast(table.c[c], String) == any_(literal(list(kept[c]), ARRAY(String))), table.c[c]),
                    else_=stmt.excluded[c],
                )
                if c in kept
                else stmt.excluded[c]
            )
            for c in shape
            if c not in (mapping.tenant_column, mapping.key_column)
        },
    )


@functools.cache
def _delete(bound: BoundTable, prefix: str) -> Any:
    """DELETE rows whose (tenant, key) is in two parallel arrays."""
    table, mapping = bound.table, bound.mapping
    gone = bulk_rows(table, (mapping.tenant_column, mapping.key_column), prefix).subquery()
    return delete(table).where(
        table.c[mapping.tenant_column] == gone.c[mapping.tenant_column],
        table.c[mapping.key_column] == gone.c[mapping.key_column],
    )


@functools.cache
def _domain_writes(
    tables: tuple[BoundTable, ...],
) -> tuple[_Compiled, tuple[tuple[BoundTable, str, tuple[str, ...], str], ...]]:
    """One statement able to write every configured table: an upsert per row shape, a delete per child."""
    parts, ctes = [], []
    for i, bound in enumerate(tables):
        for j, shape in enumerate(bound.distinct_shapes):
            prefix = f"t{i}u{j}_"
            ctes.append(_upsert(bound, shape, prefix).cte(f"t{i}u{j}"))
            parts.append((bound, "upsert", shape, prefix))
        if bound.mapping.entity_column is not None:  # a per-payment row goes when its status has none
            prefix = f"t{i}d_"
            ctes.append(_delete(bound, prefix).cte(f"t{i}d"))
            parts.append((bound, "delete", (bound.mapping.tenant_column, bound.mapping.key_column), prefix))
    return _compile(select(literal(1)).add_cte(*ctes)), tuple(parts)


async def write_domain_rows(
    conn: AsyncConnection,
    tables: tuple[BoundTable, ...],
    upserts: dict[BoundTable, list[dict[str, Any]]],
    deletes: dict[BoundTable, list[dict[str, Any]]],
) -> None:
    """Upsert and delete domain rows of every table in one statement (one round trip)."""
    # `tables` is every configured table, so the statement is the same whatever the batch holds;
    # parts with nothing to write get an empty set of rows.
    if not any(upserts.values()) and not any(deletes.values()):
        return
    statement, parts = _domain_writes(tables)
    shaped: dict[tuple[BoundTable, tuple[str, ...]], list[dict[str, Any]]] = defaultdict(list)
    for bound, rows in upserts.items():
        for row in rows:
            shaped[(bound, tuple(sorted(row)))].append(row)
    params: dict[str, Any] = {}
    for bound, kind, shape, prefix in parts:
        rows = shaped.pop((bound, shape), []) if kind == "upsert" else deletes.get(bound, [])
        params |= records(bound.table, shape, rows, prefix)
    if shaped:
        raise AssertionError(f"rows of unexpected shape: {[(b.mapping.table, s) for b, s in shaped]}")
    await statement.run(conn, params)


# -- outbox -----------------------------------------------------------------------------------


_UNPUBLISHED = _compile(
    select(outbox.c.id, outbox.c.topic, outbox.c.key, cast(outbox.c.payload, Text).label("payload"))
    # The relay lock is taken by the first row it reads: one relay at a time keeps each payment's
    # events in commit order; a relay that does not get it reads nothing.
    .where(outbox.c.published_at.is_(None), func.pg_try_advisory_xact_lock(_RELAY_LOCK))
    .order_by(outbox.c.id)
    .limit(bindparam("limit"))
    .with_for_update()
)
_MARK_PUBLISHED = _compile(
    update(outbox)
    .where(outbox.c.id == any_(bindparam("ids", type_=ARRAY(outbox.c.id.type))))
    .values(published_at=func.now())
)


async def unpublished(conn: AsyncConnection, limit: int) -> list[Any]:
    """The oldest events not yet published, locked for this relay; payloads as the JSON text stored."""
    return list(await _UNPUBLISHED.run(conn, {"limit": limit}))


async def mark_published(conn: AsyncConnection, ids: Sequence[int]) -> None:
    """Record that these events are on their topic."""
    await _MARK_PUBLISHED.run(conn, {"ids": list(ids)})


async def purge_published(conn: AsyncConnection, before: datetime, limit: int = 10_000) -> int:
    """Delete events published before `before`; returns how many."""
    oldest = (
        select(outbox.c.id)
        .where(outbox.c.published_at.isnot(None), outbox.c.published_at < before)
        .limit(limit)
        .scalar_subquery()
    )
    result = await conn.execute(delete(outbox).where(outbox.c.id.in_(oldest)))
    return result.rowcount or 0
