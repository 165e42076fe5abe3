"""A hot statement run on the pooled connection's asyncpg connection, compiled once.

SQLAlchemy's execution layer (execution context, parameter processing, result wrapping, the greenlet
hop) costs about three times asyncpg's own work for a one-row statement: ~300 µs against ~80 µs of
CPU for the reconciler's references read on a loaded host (bench/README.md, "The reconciler's
confirmations, part 2"). `DriverStatement` compiles the statement for asyncpg once and sends it on
the connection SQLAlchemy checked out, its parameters processed as SQLAlchemy would (JSON serialized).

Only on a connection in autocommit (`no_transaction`): SQLAlchemy begins its transaction with its own
first statement, which a statement sent past it would not be part of. Should the statement fail on
the driver, it runs again through SQLAlchemy, so a failure (a dropped connection above all: the pool
then lets go of its peers) is reported as it is for every other statement.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg
from sqlalchemy.dialects.postgresql.asyncpg import dialect as asyncpg_dialect
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.expression import Executable

_DIALECT = asyncpg_dialect()


class Row(asyncpg.Record):
    """An asyncpg record whose columns also read as attributes, as SQLAlchemy's rows do."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


@dataclass(frozen=True, slots=True)
class DriverStatement:
    """`statement` compiled for asyncpg: its SQL, its parameters' order, defaults and processing."""

    statement: Executable
    sql: str
    names: tuple[str, ...]
    defaults: Mapping[str, Any]
    processors: Mapping[str, Callable[[Any], Any]]

    @classmethod
    def of(cls, statement: Executable) -> DriverStatement:
        """Compile `statement` once (its values bound at execution; literal values become defaults)."""
        compiled = statement.compile(dialect=_DIALECT)  # type: ignore[attr-defined]
        names = tuple(compiled.positiontup or ())
        processors = {}
        for name in names:
            bind_type = compiled.binds[name].type
            processor = bind_type.dialect_impl(_DIALECT).bind_processor(_DIALECT)
            if processor is not None:
                processors[name] = processor
        return cls(statement, str(compiled), names, dict(compiled.params), processors)

    async def fetch(self, conn: AsyncConnection, params: Mapping[str, Any]) -> Sequence[Any]:
        """The statement's rows (columns as attributes), run on `conn`'s asyncpg connection when it is
        in autocommit, else (and after a failure there) through SQLAlchemy."""
        sync = conn.sync_connection
        if sync is None or sync.get_execution_options().get("isolation_level") != "AUTOCOMMIT":
            return list(await conn.execute(self.statement, dict(params)))
        driver: Any = (await conn.get_raw_connection()).driver_connection
        try:
            return await driver.fetch(self.sql, *self._arguments(params), record_class=Row)
        except Exception:  # noqa: BLE001 - any failure is SQLAlchemy's to report, as below
            return list(await conn.execute(self.statement, dict(params)))

    def _arguments(self, params: Mapping[str, Any]) -> list[Any]:
        arguments = []
        for name in self.names:
            value = params[name] if name in params else self.defaults[name]
            processor = self.processors.get(name)
            arguments.append(value if processor is None else processor(value))
        return arguments
