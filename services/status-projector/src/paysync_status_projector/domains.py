"""Domains by configuration: which table follows a payment, and what to write for each status."""

from __future__ import annotations

import re
import string
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Column, MetaData, Table, inspect
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from paysync_core.domain.status import UnifiedStatus
from paysync_core.errors import PaysyncError

_IDENT = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
_WHOLE = re.compile(r"^\{([a-z_]+)\}$")
FIELDS = frozenset(
    {"status", "provider", "provider_title", "provider_ref", "session_id", "amount_minor", "currency",
     "amount_received_minor", "amount_refunded_minor", "paid_at", "changed_at"}
)


class DomainConfigError(PaysyncError):
    """The domain mapping is not valid; the message says where."""

    code = "domain_config"


@dataclass(frozen=True, slots=True)
class DomainSpec:
    """One domain: its table and, per unified status, the column values to write."""

    name: str
    table: str
    key_column: str
    tenant_column: str
    on: dict[UnifiedStatus, dict[str, str]]

    def sa_table(self) -> Table:
        """The table as SQLAlchemy sees it: identifiers quoted by the dialect, never pasted."""
        columns = {self.key_column, self.tenant_column, *(c for vals in self.on.values() for c in vals)}
        return Table(self.table, MetaData(), *(Column(c) for c in sorted(columns)))

    def values_for(self, status: UnifiedStatus, context: dict[str, Any]) -> dict[str, Any] | None:
        """The column values for a status, rendered from the context; None if the status is not mapped."""
        mapping = self.on.get(status)
        if mapping is None:
            return None
        return {column: _render(template, context) for column, template in mapping.items()}


def load_domains(path: Path) -> dict[str, DomainSpec]:
    """Read and validate the mapping file; DomainConfigError names the first problem."""
    try:
        raw = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise DomainConfigError(f"{path}: {exc}") from exc
    return {name: _spec(name, body, path) for name, body in raw.items()}


async def check_tables(engine: AsyncEngine, domains: dict[str, DomainSpec]) -> None:
    """Fail at start-up if a configured table or column does not exist."""
    async with engine.connect() as conn:
        for spec in domains.values():
            columns = await conn.run_sync(_columns_of, spec.table)
            if columns is None:
                raise DomainConfigError(f"domain {spec.name!r}: table {spec.table!r} does not exist")
            wanted = {c.name for c in spec.sa_table().columns}
            if missing := sorted(wanted - columns):
                raise DomainConfigError(f"domain {spec.name!r}: table {spec.table!r} has no column {missing}")


async def write_domain_row(
    conn: AsyncConnection, spec: DomainSpec, tenant: str, entity_id: str, values: dict[str, Any]
) -> None:
    """Upsert the entity's row with the values for its payment's new status."""
    table = spec.sa_table()
    stmt = insert(table).values({spec.tenant_column: tenant, spec.key_column: entity_id, **values})
    stmt = stmt.on_conflict_do_update(
        index_elements=[table.c[spec.tenant_column], table.c[spec.key_column]],
        set_={name: stmt.excluded[name] for name in values},
    )
    await conn.execute(stmt)


def _columns_of(sync_conn: Any, table: str) -> set[str] | None:
    inspector = inspect(sync_conn)
    if not inspector.has_table(table):
        return None
    return {c["name"] for c in inspector.get_columns(table)}


def _spec(name: str, body: Any, path: Path) -> DomainSpec:
    where = f"{path}: domain {name!r}"
    if not _IDENT.match(name) or not isinstance(body, dict):
        raise DomainConfigError(f"{where}: a domain is a [name] table with a lower-case name")
    for field in ("table", "key_column", "tenant_column"):
        if not isinstance(body.get(field), str) or not _IDENT.match(body[field]):
            raise DomainConfigError(f"{where}: {field} must be a lower-case SQL identifier")
    on: dict[UnifiedStatus, dict[str, str]] = {}
    for status_name, columns in body.get("on", {}).items():
        try:
            status = UnifiedStatus(status_name)
        except ValueError:
            raise DomainConfigError(f"{where}: {status_name!r} is not a unified status") from None
        for column, template in columns.items():
            if not _IDENT.match(column):
                raise DomainConfigError(f"{where}: column {column!r} is not a lower-case SQL identifier")
            _check_template(template, f"{where}, on.{status_name}.{column}")
        on[status] = dict(columns)
    return DomainSpec(name, body["table"], body["key_column"], body["tenant_column"], on)


def _check_template(template: Any, where: str) -> None:
    if not isinstance(template, str):
        raise DomainConfigError(f"{where}: values are strings (templates)")
    try:
        names = {f for _, f, _, _ in string.Formatter().parse(template) if f is not None}
    except ValueError as exc:
        raise DomainConfigError(f"{where}: {exc}") from exc
    if unknown := sorted(names - FIELDS):
        raise DomainConfigError(f"{where}: unknown name(s) {unknown}; known: {sorted(FIELDS)}")


def _render(template: str, context: dict[str, Any]) -> Any:
    whole = _WHOLE.match(template)
    if whole:
        return context.get(whole.group(1))
    return template.format_map({k: "" if v is None else v for k, v in context.items()})
