"""SQL of the domain tables: every configured table's upserts and deletes in one statement."""

from __future__ import annotations

import functools
from collections import defaultdict
from typing import Any

from sqlalchemy import String, any_, case, cast, delete, literal, select
from sqlalchemy.dialects.postgresql import ARRAY, insert
from sqlalchemy.ext.asyncio import AsyncConnection

from paysync_core.domains import BoundTable
from paysync_status_projector.repository.statements import Compiled, bulk_rows, compile_once, records


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
) -> tuple[Compiled, tuple[tuple[BoundTable, str, tuple[str, ...], str], ...]]:
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
    return compile_once(select(literal(1)).add_cte(*ctes)), tuple(parts)


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
