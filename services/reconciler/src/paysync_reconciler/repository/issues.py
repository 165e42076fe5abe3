"""SQL of sync issues (shared with the projector): each drift alert recorded once."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from paysync_core.db.issues import open_issues
from paysync_core.db.schema import sync_issues

__all__ = ["issues_so_far", "open_issue", "open_issues", "resolve_issue"]


async def open_issue(conn: AsyncConnection, row: dict[str, Any]) -> bool:
    """Open an issue; False if this alert (or an open issue of its kind and subject) exists already."""
    result = await conn.execute(
        insert(sync_issues).values(**row).on_conflict_do_nothing().returning(sync_issues.c.alert_id)
    )
    return result.first() is not None


async def issues_so_far(conn: AsyncConnection, tenant: str, kind: str, subject: str) -> int:
    """How many issues of `kind` about `subject` there have been."""
    result = await conn.execute(
        select(func.count()).where(
            sync_issues.c.tenant_id == tenant, sync_issues.c.kind == kind, sync_issues.c.subject == subject
        )
    )
    return int(result.scalar() or 0)


async def resolve_issue(conn: AsyncConnection, tenant: str, kind: str, subject: str) -> None:
    """Close the open issue of `kind` about `subject`, so a recurrence is a new one."""
    await conn.execute(
        update(sync_issues)
        .where(
            sync_issues.c.tenant_id == tenant,
            sync_issues.c.kind == kind,
            sync_issues.c.subject == subject,
            sync_issues.c.resolved_at.is_(None),
        )
        .values(resolved_at=func.now())
    )
