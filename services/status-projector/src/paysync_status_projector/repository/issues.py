"""SQL of sync issues: open them once, count their occurrences, resolve them (the shared part is
`paysync_core.db.issues`; the drift's own query is here)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from paysync_core.db.issues import occurrences, open_issues, resolve_issues
from paysync_core.db.schema import sync_issues

__all__ = ["occurrences", "open_issue_subjects", "open_issues", "resolve_issues"]


async def open_issue_subjects(conn: AsyncConnection, kind: str, domain: str) -> dict[tuple[str, str], int]:
    """The open issues of `kind` about `domain`'s entities: (tenant, subject) -> issue id."""
    rows = await conn.execute(
        select(sync_issues.c.id, sync_issues.c.tenant_id, sync_issues.c.subject).where(
            sync_issues.c.kind == kind, sync_issues.c.domain == domain, sync_issues.c.resolved_at.is_(None)
        )
    )
    return {(r.tenant_id, r.subject): r.id for r in rows}
