"""The domain rows a replay touches: each row's columns before → after.

A dry run computes the rows the status-projector would write for the shadow's states, with the
projector's own mapping code (`paysync_core.domains`); a real run reads the rows before it publishes
and again once everything is applied. Both report the same way, so the two can be compared.
"""

from __future__ import annotations

import functools
import re
import uuid
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Column, Select, bindparam, func, inspect, select, tuple_
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection

from paysync_cli.replay_shadow import PaymentRow, keyed, load_payments
from paysync_core.db.schema import payments
from paysync_core.domain.merge import PaymentState
from paysync_core.domains import BoundDomain, BoundTable, Domains
from paysync_core.domains.values import PaymentView, entity_values, per_payment_values, view_of

_READ_CHUNK = 10_000  # keys per query: one statement, compiled once, whatever the number of keys


@dataclass(frozen=True, slots=True)
class RowKey:
    """One domain row: its table (main or per-payment) and its (tenant, key)."""

    domain: str
    table: BoundTable
    tenant: str
    key: Any  # as the key column's type (the projector coerces it so)

    @property
    def table_name(self) -> str:
        """The table's name as the mapping gives it (schema-qualified if it has one)."""
        return _table_name(self.table)


#: A payment as read, with its merged state (the shadow's where it folded the payment).
Folded = tuple[PaymentRow, PaymentState]

#: A row's mapped columns as JSON-ready values; None: no such row.
Row = dict[str, Any] | None


@dataclass(frozen=True, slots=True)
class DomainRowChange:
    """One domain row a replay changes (dry run: would change): insert, update or delete."""

    key: RowKey
    change: str
    columns: tuple[tuple[str, Any, Any], ...]  # (column, before, after), changed columns only

    def to_json(self) -> dict[str, Any]:
        """The change as JSON."""
        return {
            "domain": self.key.domain,
            "table": self.key.table_name,
            "tenant": self.key.tenant,
            "key": _plain(self.key.key),
            "change": self.change,
            "columns": {c: {"before": b, "after": a} for c, b, a in self.columns},
        }

    def describe(self) -> str:
        """One line: `workshop_jobs J-17: payment_status pending → paid`."""
        shown = ", ".join(f"{c} {_shown(b)} → {_shown(a)}" for c, b, a in self.columns)
        verb = "" if self.change == "update" else f" ({self.change})"
        return f"{self.key.table_name} {self.key.key}{verb}: {shown}"


def row_keys(domains: Domains, rows: Iterable[PaymentRow]) -> set[RowKey]:
    """The domain rows these payments drive: their entities' rows and their own per-payment rows."""
    keys: set[RowKey] = set()
    for row in rows:
        if (entity := entity_row_key(domains, row)) is not None:
            keys.add(entity)
        if (own := payment_row_key(domains, row)) is not None:
            keys.add(own)
    return keys


def entity_row_key(domains: Domains, row: PaymentRow) -> RowKey | None:
    """The row of the payment's entity in its domain's main table (None: it drives no domain row)."""
    domain = domains.get(row.domain)
    if domain is None or row.entity_id is None:
        return None
    main = domain.main
    return RowKey(domain.spec.name, main, row.tenant, main.coerce[main.mapping.key_column](row.entity_id))


def payment_row_key(domains: Domains, row: PaymentRow) -> RowKey | None:
    """The payment's own row in its domain's per-payment table (None: its domain has none)."""
    domain = domains.get(row.domain)
    if domain is None or row.entity_id is None or (child := domain.per_payment) is None:
        return None
    return RowKey(domain.spec.name, child, row.tenant, child.coerce[child.mapping.key_column](str(row.id)))


async def folded_changes(
    conn: AsyncConnection, domains: Domains, folded: Mapping[uuid.UUID, Folded], keys: Iterable[RowKey]
) -> list[DomainRowChange]:
    """The rows of `keys` that would change, as the projector would write them for `folded` (a dry run).

    Every payment folded that drives an entity row of `keys` must be in `folded`: an entity's row
    follows all its payments (those not folded are read as stored).
    """
    before = await read_rows(conn, keys)
    return changes(before, await expected_rows(conn, domains, folded, before))


async def read_rows(conn: AsyncConnection, keys: Iterable[RowKey]) -> dict[RowKey, Row]:
    """The rows as stored now (None where there is none), one query per table and chunk of keys."""
    by_table: dict[BoundTable, list[RowKey]] = defaultdict(list)
    for key in keys:
        by_table[key.table].append(key)
    found: dict[RowKey, Row] = {}
    for bound, wanted in by_table.items():
        mapped = _mapped(bound)
        for start in range(0, len(wanted), _READ_CHUNK):
            chunk = {(k.tenant, k.key): k for k in wanted[start : start + _READ_CHUNK]}
            tenants, keys = [t for t, _ in chunk], [k for _, k in chunk]
            rows = await conn.execute(_rows_of(bound), {"tenants": tenants, "keys": keys})
            stored = {(r[0], r[1]): r[2:] for r in rows}
            for ident, key in chunk.items():
                hit = stored.get(ident)
                found[key] = None if hit is None else dict(zip(mapped, map(_plain, hit), strict=True))
    return found


@functools.cache  # per bound table (compared by identity): built and compiled once
def _rows_of(bound: BoundTable) -> Select[Any]:
    """The table's rows of the keys given as two arrays (`tenants`, `keys`): its ids, then `_mapped` columns.

    The keys travel as one array per column, unnested into rows: one statement whatever their number
    (an IN list of key tuples is rendered anew for every chunk, and that was most of the read's CPU).
    """
    table, mapping = bound.table, bound.mapping
    ids = (table.c[mapping.tenant_column], table.c[mapping.key_column])
    arrays = [bindparam(name, type_=ARRAY(c.type)) for name, c in zip(("tenants", "keys"), ids, strict=True)]
    wanted = select(func.unnest(*arrays).table_valued("k0", "k1").render_derived())
    columns: list[Column[Any]] = [*ids, *(table.c[c] for c in _mapped(bound))]
    return select(*columns).where(tuple_(*ids).in_(wanted))


async def expected_rows(
    conn: AsyncConnection,
    domains: Domains,
    folded: Mapping[uuid.UUID, Folded],
    before: Mapping[RowKey, Row],
) -> dict[RowKey, Row]:
    """The rows the projector would leave for these payments' merged states (`before`: rows as stored).

    An entity's row follows all its payments (the one that matters most, and counters over all), so
    the entity's other payments are read too, as stored.
    """
    mains = {d.main for d in domains}
    entities = {(k.tenant, k.domain, k.key) for k in before if k.table in mains}
    by_entity: dict[tuple[str, str, Any], list[PaymentView]] = defaultdict(list)
    by_payment: dict[str, PaymentView] = {}
    for row, state in await _payments_of_entities(conn, entities, folded):
        domain = _domain(domains, row.domain)
        view = view_of(row, state)
        entity = domain.main.coerce[domain.main.mapping.key_column](row.entity_id)
        by_entity[(row.tenant, domain.spec.name, entity)].append(view)
        by_payment[str(row.id)] = view
    defaults = await _column_defaults(conn, {k.table for k, row in before.items() if row is None})
    after: dict[RowKey, Row] = {}
    for key, stored in before.items():
        domain = _domain(domains, key.domain)
        if key.table in mains:
            values = entity_values(domain.spec, by_entity[(key.tenant, key.domain, key.key)])
        else:
            values = per_payment_values(domain.spec, by_payment[str(key.key)])
        after[key] = _written(key, stored if stored is not None else defaults[key.table], values)
    return after


def changes(before: Mapping[RowKey, Row], after: Mapping[RowKey, Row]) -> list[DomainRowChange]:
    """The rows whose mapped columns differ between `before` and `after`, in a stable order."""
    return sorted(changed_rows(before, after), key=listed_row_order)


def changed_rows(before: Mapping[RowKey, Row], after: Mapping[RowKey, Row]) -> list[DomainRowChange]:
    """The rows whose mapped columns differ between `before` and `after`, unordered."""
    found = []
    for key, old in before.items():
        new = after.get(key)
        if old == new:  # no row either time, or the same columns: nothing to compare column by column
            continue
        change = "insert" if old is None else "delete" if new is None else "update"
        was, now = old or {}, new or {}
        columns = tuple((c, b, a) for c in _mapped(key.table) if (b := was.get(c)) != (a := now.get(c)))
        if columns:
            found.append(DomainRowChange(key, change, columns))
    return found


def listed_row_order(change: DomainRowChange) -> tuple[str, str, str]:
    """Domain rows are listed by tenant, table name, then key as text."""
    return change.key.tenant, _table_name(change.key.table), str(change.key.key)


def _written(key: RowKey, stored: Row | _New, values: dict[str, Any] | None) -> Row:
    """The row after the projector's upsert of `values` (None: delete) over `stored`, honouring `[keep]`.

    `stored` is a `_New` row (the columns' defaults) where there is no row yet.
    """
    bound = key.table
    new = isinstance(stored, _New)
    if values is None:
        # An entity with no values is left alone; a per-payment row without a status mapping is deleted.
        return None if new or key.table.mapping.entity_column is not None else stored
    coerce, keep = bound.coerce, bound.mapping.keep
    row = dict(stored or {})
    for column in _mapped(bound):
        if column not in values:
            continue
        if not new and column in keep and row.get(column) is not None and str(row[column]) in keep[column]:
            continue  # the app's own value: the projector's upsert keeps it
        row[column] = _plain(coerce[column](values[column]))  # as `BoundTable.row` coerces it
    return row


class _New(dict[str, Any]):
    """A row not written yet: each column's default (None where it has none, or one not a constant)."""


#: A column default that is a constant: 'text'::type, a number, true or false.
_LITERAL = re.compile(r"^(?:'((?:[^']|'')*)'(?:::[\w .\[\]]+)?|(-?\d+)|(true|false))$")


async def _column_defaults(conn: AsyncConnection, tables: set[BoundTable]) -> dict[BoundTable, _New]:
    """Each table's new row: what PostgreSQL puts in the mapped columns an insert does not name."""

    def read(sync: Connection) -> dict[BoundTable, _New]:
        inspector = inspect(sync)
        found = {}
        for bound in tables:
            columns = inspector.get_columns(bound.mapping.table, schema=bound.mapping.schema)
            given = {c["name"]: _constant(c.get("default")) for c in columns}
            found[bound] = _New({c: given.get(c) for c in _mapped(bound)})
        return found

    return await conn.run_sync(read) if tables else {}


def _constant(default: str | None) -> Any:
    match = _LITERAL.match(default or "")
    if match is None:
        return None
    text, number, flag = match.groups()
    if text is not None:
        return text.replace("''", "'")
    return int(number) if number is not None else flag == "true"


async def _payments_of_entities(
    conn: AsyncConnection, entities: set[tuple[str, str, Any]], folded: Mapping[uuid.UUID, Folded]
) -> list[Folded]:
    """Every payment of these entities with its state: the shadow's, else as stored."""
    wanted = [(t, d, str(e)) for t, d, e in entities]
    ids: list[uuid.UUID] = []
    p = payments.c
    for start in range(0, len(wanted), _READ_CHUNK):
        chunk = wanted[start : start + _READ_CHUNK]
        of_entities = select(p.id).where(keyed((p.tenant_id, p.domain, p.entity_id), chunk))
        ids += (await conn.execute(of_entities)).scalars()
    # The shadow has most of them already: only the entities' other payments are read whole.
    stored = await load_payments(conn, [pid for pid in ids if pid not in folded])
    found = [folded[pid] for pid in ids if pid in folded]
    return found + [(row, PaymentState.from_json(row.merge_state)) for row in stored.values()]


def _domain(domains: Domains, name: str | None) -> BoundDomain:
    domain = domains.get(name)
    if domain is None:
        raise RuntimeError(f"domain {name!r} is not bound")
    return domain


@functools.cache  # per bound table (compared by identity): asked for every row
@functools.cache  # per bound table: a real run's report compares every row it touched column by column
def _mapped(bound: BoundTable) -> tuple[str, ...]:
    """The columns the mapping writes (its key aside), in table order."""
    ids = (bound.mapping.tenant_column, bound.mapping.key_column)
    return tuple(c.key for c in bound.table.columns if c.key not in ids)


@functools.cache  # per bound table: every row change is sorted by it
def _table_name(bound: BoundTable) -> str:
    mapping = bound.mapping
    return f"{mapping.schema}.{mapping.table}" if mapping.schema else mapping.table


#: Column values JSON shows as they are (most of them): `_plain` returns these at once.
_AS_IS = frozenset({str, int, bool, float, type(None)})


def _plain(value: Any) -> Any:
    """A column value as JSON shows it (and as before/after compare)."""
    if type(value) in _AS_IS:
        return value
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else str(value)
    if isinstance(value, uuid.UUID):
        return str(value)
    return value


def _shown(value: Any) -> str:
    return "(none)" if value is None else str(value)
