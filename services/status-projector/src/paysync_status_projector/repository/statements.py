"""Statements compiled once and run many times, and many rows passed as one JSON parameter."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import Select, Table, Text, bindparam, cast, column, func, select
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.dialects.postgresql.asyncpg import dialect as asyncpg_dialect
from sqlalchemy.ext.asyncio import AsyncConnection

_DIALECT = asyncpg_dialect()


@dataclass(frozen=True, slots=True)
class Compiled:
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


def compile_once(statement: Any) -> Compiled:
    """Compile `statement` for asyncpg, to run it many times."""
    compiled = statement.compile(dialect=_DIALECT)
    return Compiled(str(compiled), tuple(compiled.positiontup or ()), dict(compiled.params))


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
