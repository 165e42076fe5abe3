"""Domains bound to the database at start-up: tables found, columns checked, values coerced."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Column, MetaData, Table, inspect
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.sql.elements import quoted_name

from paysync_core.domain.status import UnifiedStatus
from paysync_core.domains.spec import FIELDS, WHOLE, DomainConfigError, DomainSpec, TableMapping

#: Which column types can take a value of each field type.
_FITS: dict[type, tuple[type, ...]] = {
    str: (str, uuid.UUID),
    int: (int, Decimal, str),
    datetime: (datetime, str),
}


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

    def __iter__(self) -> Iterator[BoundDomain]:
        return iter(self._bound.values())

    def tables(self) -> tuple[BoundTable, ...]:
        """Every bound table, main then per-payment, in domain-name order."""
        return tuple(
            t
            for name in sorted(self._bound)
            for t in (self._bound[name].main, self._bound[name].per_payment)
            if t is not None
        )


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
    # An index's column_names holds None for an expression, so such an index never equals `key`.
    uniques: list[set[str | None]] = [
        set(inspector.get_pk_constraint(mapping.table, schema=mapping.schema)["constrained_columns"])
    ]
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
    whole = WHOLE.match(template)
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
