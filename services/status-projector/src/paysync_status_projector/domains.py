"""Domains by configuration: which rows follow a payment, and what to write for each status.

A domain maps a payment's merged state onto an app's own rows: the entity's row in its main
table (upserted by tenant and key) and, optionally, one row per payment in a child table.
What a row shows is a function of the final merged states only, never of the order in which
observations arrived; `load_domains` refuses a mapping that could make it depend on the path.
Identifiers from the mapping are validated here and always quoted in SQL.
"""

from __future__ import annotations

import functools
import re
import string
import tomllib
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import Column, MetaData, Table, inspect
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.sql.elements import quoted_name

from paysync_core.domain.status import MONEY_MOVED, UnifiedStatus
from paysync_core.errors import PaysyncError

_IDENT = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
_WHOLE = re.compile(r"^\{([a-z_]+)\}$")

#: What a template may name: the type of its value, and what it means.
FIELDS: dict[str, tuple[type, str]] = {
    "status": (str, "the unified status (pending, succeeded, refunded, ...)"),
    "provider": (str, "stripe, paystack or mpesa"),
    "provider_title": (str, "Stripe, Paystack or M-Pesa"),
    "provider_ref": (str, "the payment's reference at the gateway"),
    "payment_id": (str, "paysync's id of the payment"),
    "entity_id": (str, "the domain entity's id"),
    "session_id": (str, "the Checkout Session id (else the payment's reference)"),
    "payment_intent_id": (str, "the success's PaymentIntent id"),
    "charge_id": (str, "the success's charge id"),
    "transaction_id": (str, "the success's transaction id (Paystack)"),
    "receipt_number": (str, "the success's receipt number (M-Pesa)"),
    "transaction_ref": (
        str,
        "the success's most specific gateway id: receipt, charge, transaction or intent",
    ),
    "evidence": (str, "the success's gateway ids, as 'name=value, ...'"),
    "amount_minor": (int, "the registered amount, minor units"),
    "currency": (str, "the registered currency (else the paid one)"),
    "amount_received_minor": (int, "what the accepted success brought in"),
    "amount_refunded_minor": (int, "what was refunded so far"),
    "amount_net_minor": (int, "received minus refunded"),
    "paid_at": (datetime, "when money first moved"),
    "changed_at": (datetime, "the newest provider time behind the state"),
    "error": (str, "the gateway's words for a failure, while failed, canceled or expired"),
    "flags": (str, "comma-separated flags (amount_mismatch, currency_mismatch)"),
}
#: Which column types can take a value of each field type.
_FITS: dict[type, tuple[type, ...]] = {
    str: (str, uuid.UUID),
    int: (int, Decimal, str),
    datetime: (datetime, str),
}
SUMMABLE = ("amount_minor", "amount_received_minor", "amount_refunded_minor", "amount_net_minor")
_MAIN_KEYS = {
    "table",
    "schema",
    "key_column",
    "tenant_column",
    "default",
    "on",
    "keep",
    "counters",
    "paid",
    "per_payment",
}
_CHILD_KEYS = {"table", "schema", "key_column", "tenant_column", "entity_column", "default", "on", "keep"}
_OPEN = tuple(s for s in UnifiedStatus if s not in MONEY_MOVED)
_MOVED = tuple(s for s in UnifiedStatus if s in MONEY_MOVED)


class DomainConfigError(PaysyncError):
    """The domain mapping is not valid; the message says where."""

    code = "domain_config"


@dataclass(frozen=True, slots=True)
class Counter:
    """A column computed over all the entity's payments: how many, or the sum of one amount."""

    column: str
    kind: str  # "count" or "sum"
    field: str | None
    statuses: frozenset[UnifiedStatus]

    def compute(self, payments: Iterable[tuple[UnifiedStatus, Mapping[str, Any]]]) -> int:
        """The counter's value over (status, context) pairs of the entity's payments."""
        chosen = [ctx for status, ctx in payments if status in self.statuses]
        if self.kind == "count":
            return len(chosen)
        return sum(ctx.get(self.field or "") or 0 for ctx in chosen)


@dataclass(frozen=True, slots=True)
class TableMapping:
    """One table a domain writes and, per unified status, the column templates to write."""

    table: str
    key_column: str
    tenant_column: str
    schema: str | None = None
    entity_column: str | None = None
    default: Mapping[str, str] = field(default_factory=dict)
    on: Mapping[UnifiedStatus, Mapping[str, str]] = field(default_factory=dict)
    keep: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    #: Per status, each written column with its template parsed: rows are rendered for every
    #: payment of every batch, templates are parsed once.
    _renderers: Mapping[UnifiedStatus, tuple[tuple[str, Callable[[Mapping[str, Any]], Any]], ...]] = field(
        init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        renderers = {
            status: tuple((column, _parsed(t)) for column, t in self.templates_for(status).items())
            for status in UnifiedStatus
        }
        object.__setattr__(self, "_renderers", renderers)  # frozen: set once, here

    def templates_for(self, status: UnifiedStatus) -> dict[str, str]:
        """The defaults, then succeeded's once money moved (refunds follow a success), then the status's."""
        templates = dict(self.default)
        if status.money_moved:
            templates.update(self.on.get(UnifiedStatus.SUCCEEDED, {}))
        templates.update(self.on.get(status, {}))
        return templates

    def render_for(self, status: UnifiedStatus, context: Mapping[str, Any]) -> dict[str, Any]:
        """The values `templates_for(status)` gives for one payment's context (see `render`)."""
        return {column: value_of(context) for column, value_of in self._renderers[status]}

    def has_row(self, status: UnifiedStatus) -> bool:
        """For a per-payment table: whether a payment in this status has a row there."""
        if self.default or status in self.on:
            return True
        return status.money_moved and UnifiedStatus.SUCCEEDED in self.on

    @property
    def columns(self) -> set[str]:
        """Every column this mapping names."""
        names = {self.key_column, self.tenant_column, *self.default, *self.keep}
        if self.entity_column:
            names.add(self.entity_column)
        for templates in self.on.values():
            names.update(templates)
        return names


@dataclass(frozen=True, slots=True)
class PaidMarker:
    """How to tell, from its row alone, that an entity is marked paid (for the drift checks)."""

    column: str
    values: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class DomainSpec:
    """One domain: its main table, counters, optional per-payment table and paid marker."""

    name: str
    main: TableMapping
    counters: Mapping[str, Counter] = field(default_factory=dict)
    per_payment: TableMapping | None = None
    paid: PaidMarker | None = None

    def values_for(self, status: UnifiedStatus, context: Mapping[str, Any]) -> dict[str, Any] | None:
        """The main row's templated values for a status, rendered; None if the status writes nothing."""
        return self.main.render_for(status, context) or None


@dataclass(frozen=True, slots=True, eq=False)  # identity: statements are cached per bound table
class BoundTable:
    """A mapped table as the database has it: quoted identifiers, real column types, coercions."""

    mapping: TableMapping
    table: Table
    coerce: Mapping[str, Callable[[Any], Any]]
    #: The columns a row in each status writes (statuses without a row are absent), sorted.
    shapes: Mapping[UnifiedStatus, tuple[str, ...]] = field(default_factory=dict)

    def row(self, tenant: str, key: Any, values: Mapping[str, Any]) -> dict[str, Any]:
        """A full row for an upsert, each value coerced to its column's type."""
        row = {self.mapping.tenant_column: tenant, self.mapping.key_column: key, **values}
        return {name: self.coerce[name](value) for name, value in row.items()}

    @property
    def distinct_shapes(self) -> tuple[tuple[str, ...], ...]:
        """Every column set a row of this table can have, in a stable order."""
        return tuple(sorted(set(self.shapes.values())))


@dataclass(frozen=True, slots=True)
class BoundDomain:
    """A domain whose tables were found and checked at start-up."""

    spec: DomainSpec
    main: BoundTable
    per_payment: BoundTable | None


class Domains:
    """The configured domains; `bind` checks them against the database at start-up."""

    def __init__(self, specs: Mapping[str, DomainSpec]) -> None:
        self.specs = dict(specs)
        self._bound: dict[str, BoundDomain] = {}

    async def bind(self, engine: AsyncEngine) -> None:
        """Find every configured table and column; DomainConfigError names the first that is wrong."""
        async with engine.connect() as conn:
            self._bound = await conn.run_sync(
                lambda sync: {name: _bind_domain(sync, spec) for name, spec in self.specs.items()}
            )

    def get(self, name: str | None) -> BoundDomain | None:
        """The bound domain of that name, or None if no such domain is configured."""
        if name is None:
            return None
        if self.specs and not self._bound:
            raise RuntimeError("domains used before bind()")
        return self._bound.get(name)

    def __iter__(self):  # noqa: ANN204 - iterator of BoundDomain
        return iter(self._bound.values())

    def tables(self) -> tuple[BoundTable, ...]:
        """Every bound table, main then per-payment, in domain-name order."""
        return tuple(
            t
            for name in sorted(self._bound)
            for t in (self._bound[name].main, self._bound[name].per_payment)
            if t is not None
        )


def load_domains(*paths: Path) -> dict[str, DomainSpec]:
    """Read and validate mapping files (later ones add domains); DomainConfigError names the first problem."""
    specs: dict[str, DomainSpec] = {}
    for path in paths:
        try:
            raw = tomllib.loads(path.read_text())
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise DomainConfigError(f"{path}: {exc}") from exc
        for name, body in raw.items():
            if name in specs:
                raise DomainConfigError(f"{path}: domain {name!r} is defined twice")
            specs[name] = _spec(name, body, f"{path}: domain {name!r}")
    return specs


def render(template: str, context: Mapping[str, Any]) -> Any:
    """A template's value: exactly "{name}" gives the typed value, anything else a string."""
    return _parsed(template)(context)


@functools.cache
def _parsed(template: str) -> Callable[[Mapping[str, Any]], Any]:
    """`render` of one template, as a function of the context: the template is parsed here, once."""
    whole = _WHOLE.match(template)
    if whole:
        name = whole.group(1)
        return lambda context: context.get(name)
    names = {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}
    if not names:
        constant = template.format_map({})  # "{{" and "}}" are still braces escaped
        return lambda _: constant
    return lambda context: template.format_map(
        {name: "" if context.get(name) is None else context[name] for name in names}
    )


# -- validation -------------------------------------------------------------------------------


def _spec(name: str, body: Any, where: str) -> DomainSpec:
    if not _IDENT.match(name) or not isinstance(body, dict):
        raise DomainConfigError(f"{where}: a domain is a [name] table with a lower-case name")
    _known_keys(body, _MAIN_KEYS, where)
    main = _table_mapping(body, where, child=False)
    counters = _counters(body.get("counters", {}), where)
    if clash := sorted(set(counters) & (main.columns - {main.key_column, main.tenant_column})):
        raise DomainConfigError(f"{where}: {clash} are counters and also written by templates")
    per_payment = None
    if "per_payment" in body:
        child = body["per_payment"]
        if not isinstance(child, dict):
            raise DomainConfigError(f"{where}: per_payment must be a table")
        _known_keys(child, _CHILD_KEYS, f"{where}, per_payment")
        per_payment = _table_mapping(child, f"{where}, per_payment", child=True)
    paid = _paid_marker(body.get("paid"), main, where)
    return DomainSpec(name, main, counters, per_payment, paid)


def _known_keys(body: dict[str, Any], allowed: set[str], where: str) -> None:
    if unknown := sorted(set(body) - allowed):
        raise DomainConfigError(f"{where}: unknown key(s) {unknown}; allowed: {sorted(allowed)}")


def _table_mapping(body: dict[str, Any], where: str, *, child: bool) -> TableMapping:
    required = ("table", "key_column", "tenant_column", *(("entity_column",) if child else ()))
    for key in required:
        _ident(body.get(key), f"{where}: {key}")
    if body.get("schema") is not None:
        _ident(body["schema"], f"{where}: schema")
    default = _templates(body.get("default", {}), f"{where}, default")
    on: dict[UnifiedStatus, dict[str, str]] = {}
    raw_on = body.get("on", {})
    if not isinstance(raw_on, dict):
        raise DomainConfigError(f"{where}: on must be a table of [on.<status>] tables")
    for status_name, templates in raw_on.items():
        try:
            status = UnifiedStatus(status_name)
        except ValueError:
            raise DomainConfigError(
                f"{where}: {status_name!r} is not a unified status; known: {[s.value for s in UnifiedStatus]}"
            ) from None
        on[status] = _templates(templates, f"{where}, on.{status_name}")
    keep = {}
    for column, values in body.get("keep", {}).items():
        _ident(column, f"{where}, keep: column {column!r}")
        if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
            raise DomainConfigError(
                f"{where}, keep.{column}: a list of the values the app sets and paysync keeps"
            )
        keep[column] = tuple(values)
    mapping = TableMapping(
        table=body["table"],
        key_column=body["key_column"],
        tenant_column=body["tenant_column"],
        schema=body.get("schema"),
        entity_column=body.get("entity_column"),
        default=default,
        on=on,
        keep=keep,
    )
    for reserved in filter(None, (mapping.key_column, mapping.tenant_column, mapping.entity_column)):
        if any(reserved in t for t in (default, *on.values())):
            raise DomainConfigError(f"{where}: {reserved!r} is filled by paysync; do not template it")
    _check_path_independent(mapping, where, child=child)
    return mapping


def _check_path_independent(mapping: TableMapping, where: str, *, child: bool) -> None:
    """Refuse mappings under which a row could show a column left over from an earlier status."""
    rows = [s for s in UnifiedStatus if not child or mapping.has_row(s)]
    written = {s: set(mapping.templates_for(s)) for s in rows}
    everything = set().union(*written.values()) if written else set()
    before_money = (
        set().union(*(written[s] for s in rows if s in _OPEN)) if any(s in _OPEN for s in rows) else set()
    )
    for column in sorted(everything):
        if column in before_money:
            open_missing = [s.value for s in rows if s in _OPEN and column not in written[s]]
            if open_missing:
                raise DomainConfigError(
                    f"{where}: column {column!r} is written before money moves but not for {open_missing}, "
                    f"so it could keep a value from an earlier status; give it a value in [default]"
                )
        moved_missing = [s.value for s in rows if s in _MOVED and column not in written[s]]
        if moved_missing:
            raise DomainConfigError(
                f"{where}: column {column!r} is not written for {moved_missing}, so it could keep a value "
                f"from an earlier status; write it in [on.succeeded] (refunds and disputes inherit it) "
                f"or in [default]"
            )


def _templates(templates: Any, where: str) -> dict[str, str]:
    if not isinstance(templates, dict):
        raise DomainConfigError(f'{where}: expected a table of column = "template"')
    for column, template in templates.items():
        if not _IDENT.match(column):
            raise DomainConfigError(f"{where}: column {column!r} is not a lower-case SQL identifier")
        _check_template(template, f"{where}.{column}")
    return dict(templates)


def _counters(body: Any, where: str) -> dict[str, Counter]:
    if not isinstance(body, dict):
        raise DomainConfigError(f"{where}: counters must be a table")
    counters = {}
    for column, spec in body.items():
        at = f"{where}, counters.{column}"
        _ident(column, at)
        if not isinstance(spec, dict) or len({"count", "sum"} & set(spec)) != 1:
            raise DomainConfigError(f'{at}: write {{ count = "payments" }} or {{ sum = "<amount field>" }}')
        _known_keys(spec, {"count", "sum", "statuses"}, at)
        if "count" in spec and spec["count"] != "payments":
            raise DomainConfigError(f'{at}: count = "payments" is the only count')
        if "sum" in spec and spec["sum"] not in SUMMABLE:
            raise DomainConfigError(f"{at}: can sum one of {list(SUMMABLE)}")
        statuses = _statuses(spec.get("statuses"), at)
        counters[column] = Counter(column, "count" if "count" in spec else "sum", spec.get("sum"), statuses)
    return counters


def _statuses(names: Any, where: str) -> frozenset[UnifiedStatus]:
    if names is None:
        return frozenset(UnifiedStatus)
    try:
        return frozenset(UnifiedStatus(n) for n in names)
    except (TypeError, ValueError):
        raise DomainConfigError(f"{where}: statuses must be unified statuses") from None


def _paid_marker(body: Any, main: TableMapping, where: str) -> PaidMarker | None:
    if body is None:
        return None
    if not isinstance(body, dict) or set(body) != {"column", "values"}:
        raise DomainConfigError(f'{where}: paid = {{ column = "...", values = ["..."] }}')
    column, values = body["column"], body["values"]
    _ident(column, f"{where}: paid.column")
    written = main.templates_for(UnifiedStatus.SUCCEEDED).get(column)
    if written is None or written not in values:
        raise DomainConfigError(
            f"{where}: on.succeeded must write {column!r} as one of the paid values {values} "
            f"(it writes {written!r})"
        )
    return PaidMarker(column, tuple(values))


def _ident(value: Any, where: str) -> None:
    if not isinstance(value, str) or not _IDENT.match(value):
        raise DomainConfigError(f"{where} must be a lower-case SQL identifier (got {value!r})")


def _check_template(template: Any, where: str) -> None:
    if not isinstance(template, str):
        raise DomainConfigError(f"{where}: values are strings (templates)")
    try:
        parts = [(f, spec, conversion) for _, f, spec, conversion in string.Formatter().parse(template)]
    except ValueError as exc:
        raise DomainConfigError(f"{where}: {exc}") from exc
    names = {f for f, _, _ in parts if f is not None}
    if any(spec or conversion for f, spec, conversion in parts if f is not None):
        raise DomainConfigError(f"{where}: write plain {{name}}, without a format spec or conversion")
    if unknown := sorted(names - set(FIELDS)):
        raise DomainConfigError(f"{where}: unknown name(s) {unknown}; known: {sorted(FIELDS)}")


# -- binding to the database ------------------------------------------------------------------


def _bind_domain(sync: Connection, spec: DomainSpec) -> BoundDomain:
    where = f"domain {spec.name!r}"
    main = _bind_table(
        sync, spec.main, set(spec.counters) | ({spec.paid.column} if spec.paid else set()), where
    )
    main = replace(
        main,
        shapes={
            s: tuple(
                sorted(
                    {
                        spec.main.tenant_column,
                        spec.main.key_column,
                        *spec.main.templates_for(s),
                        *spec.counters,
                    }
                )
            )
            for s in UnifiedStatus
            if spec.main.templates_for(s) or spec.counters
        },
    )
    child = None
    if spec.per_payment is not None:
        m = spec.per_payment
        child = _bind_table(sync, m, set(), f"{where}, per_payment")
        child = replace(
            child,
            shapes={
                s: tuple(sorted({m.tenant_column, m.key_column, m.entity_column or "", *m.templates_for(s)}))
                for s in UnifiedStatus
                if m.has_row(s)
            },
        )
    return BoundDomain(spec, main, child)


def _bind_table(sync: Connection, mapping: TableMapping, extra: set[str], where: str) -> BoundTable:
    inspector = inspect(sync)
    name = f"{mapping.schema + '.' if mapping.schema else ''}{mapping.table}"
    if not inspector.has_table(mapping.table, schema=mapping.schema):
        raise DomainConfigError(f"{where}: table {name!r} does not exist")
    found = {c["name"]: c for c in inspector.get_columns(mapping.table, schema=mapping.schema)}
    wanted = mapping.columns | extra
    if missing := sorted(wanted - set(found)):
        raise DomainConfigError(f"{where}: table {name!r} has no column(s) {missing}")
    key = {mapping.tenant_column, mapping.key_column}
    uniques = [set(inspector.get_pk_constraint(mapping.table, schema=mapping.schema)["constrained_columns"])]
    uniques += [
        set(u["column_names"]) for u in inspector.get_unique_constraints(mapping.table, schema=mapping.schema)
    ]
    uniques += [
        set(i["column_names"])
        for i in inspector.get_indexes(mapping.table, schema=mapping.schema)
        if i["unique"] and not i.get("dialect_options", {}).get("postgresql_where")
    ]
    if key not in uniques:
        raise DomainConfigError(
            f"{where}: table {name!r} needs a primary key or unique constraint on "
            f"({mapping.tenant_column}, {mapping.key_column}) to upsert by it"
        )
    table = Table(
        quoted_name(mapping.table, quote=True),
        MetaData(),
        *(Column(quoted_name(c, quote=True), found[c]["type"], key=c) for c in sorted(wanted)),
        schema=quoted_name(mapping.schema, quote=True) if mapping.schema else None,
    )
    coerce = {c: _coercion(found[c]["type"]) for c in wanted}
    for templates in (mapping.default, *mapping.on.values()):
        for column, template in templates.items():
            _check_fits(template, column, found[column]["type"], coerce[column], where)
    return BoundTable(mapping, table, coerce)


def _check_fits(template: str, column: str, sql_type: Any, coerce: Callable[[Any], Any], where: str) -> None:
    target = _python_type(sql_type)
    whole = _WHOLE.match(template)
    if whole:
        kind = FIELDS[whole.group(1)][0]
        if target is not None and target not in _FITS[kind]:
            raise DomainConfigError(
                f"{where}: column {column!r} ({sql_type}) cannot take {template} (a {kind.__name__})"
            )
        return
    if "{" in template:
        if target not in (None, str):
            raise DomainConfigError(f"{where}: column {column!r} ({sql_type}) cannot take text {template!r}")
        return
    try:
        coerce(template)
    except (ValueError, TypeError, KeyError, ArithmeticError):
        raise DomainConfigError(
            f"{where}: {template!r} is not a valid value for column {column!r} ({sql_type})"
        ) from None


def _python_type(sql_type: Any) -> type | None:
    try:
        return sql_type.python_type
    except NotImplementedError:
        return None


def _to_text(value: Any) -> str:
    return value.isoformat() if isinstance(value, datetime) else str(value)


def _to_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    return {"true": True, "false": False}[str(value).lower()]


def _to_datetime(value: Any) -> datetime:
    return value if isinstance(value, datetime) else datetime.fromisoformat(str(value))


def _to_uuid(value: Any) -> uuid.UUID:
    return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))


_CONVERTERS: dict[type, Callable[[Any], Any]] = {
    str: _to_text,
    int: int,
    bool: _to_bool,
    Decimal: lambda v: Decimal(str(v)),
    datetime: _to_datetime,
    uuid.UUID: _to_uuid,
}


def _coercion(sql_type: Any) -> Callable[[Any], Any]:
    target = _python_type(sql_type)
    convert = _CONVERTERS.get(target) if target is not None else None
    if convert is None:
        return lambda value: value

    def coerce(value: Any) -> Any:
        if value is None or (value == "" and target is not str):
            return None
        return convert(value)

    return coerce
