"""SQL of sync issues: open them once, count their occurrences, resolve them."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import func, select, tuple_, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from paysync_core.db.schema import sync_issues


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
