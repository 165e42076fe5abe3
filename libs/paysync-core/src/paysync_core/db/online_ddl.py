"""Schema changes a running system does not notice: for migrations of tables the services write.

A plain `CREATE INDEX` holds a SHARE lock on its table while it reads every row: on a live `payments`
table every webhook's write waits behind it for as long as the build takes. `CREATE INDEX
CONCURRENTLY` takes no lock that writers wait for; it cannot run inside a transaction, so it runs in
Alembic's autocommit block (the migrations before it are committed first; env.py's session-level
advisory lock still keeps other migrators out). A concurrent build that failed leaves an INVALID
index behind, which `IF NOT EXISTS` would then take for done: it is dropped and built again.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from alembic import op
from sqlalchemy import text

_INVALID = text(
    "SELECT 1 FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid"
    " WHERE c.relname = :name AND c.relnamespace = current_schema()::regnamespace AND NOT i.indisvalid"
)


def create_index_concurrently(
    name: str, table: str, columns: Sequence[str], *, using: str | None = None
) -> None:
    """Build an index without blocking the table's writers (again, if a build before failed half-way)."""
    options: dict[str, Any] = {"postgresql_concurrently": True}
    if using:
        options["postgresql_using"] = using
    with op.get_context().autocommit_block():
        if op.get_bind().execute(_INVALID, {"name": name}).first():
            op.drop_index(name, table_name=table, postgresql_concurrently=True)
        op.create_index(name, table, list(columns), if_not_exists=True, **options)


def drop_index_concurrently(name: str, table: str) -> None:
    """Drop an index without blocking the table's readers and writers."""
    with op.get_context().autocommit_block():
        op.drop_index(name, table_name=table, postgresql_concurrently=True, if_exists=True)
