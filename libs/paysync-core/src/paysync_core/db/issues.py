"""Sync issues: one open issue per tenant, kind and subject, opened with its alert and resolved once.

SQL shared by whoever raises alerts (the projector, the reconciler, the notifier's rules); each
caller decides what is found and when it clears.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import func, select, tuple_, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from paysync_core.contracts import Alert
from paysync_core.db.schema import sync_issues


def issue_row(alert: Alert, *, subject: str) -> dict[str, Any]:
    """The sync issue an alert opens, about `subject`."""
    return {
        "alert_id": alert.alert_id,
        "tenant_id": alert.tenant,
        "kind": alert.kind.value,
        "subject": subject,
        "payment_id": alert.payment_id,
        "domain": alert.entity.domain if alert.entity else None,
        "entity_id": alert.entity.entity_id if alert.entity else None,
        "detail": alert.detail,
        "facts": alert.facts,
        "occurrence": alert.occurrence,
    }


async def open_issues(conn: AsyncConnection, rows: Sequence[dict[str, Any]]) -> set[str]:
    """Open the issues not open (or alerted) already; the alert ids of those that are new."""
    if not rows:
        return set()
    # Executemany (batched by SQLAlchemy), not one VALUES list: a drift check may open thousands at once.
    result = await conn.execute(
        insert(sync_issues).on_conflict_do_nothing().returning(sync_issues.c.alert_id), list(rows)
    )
    return set(result.scalars())


async def occurrences(
    conn: AsyncConnection, kind: str, keys: Iterable[tuple[str, str]]
) -> dict[tuple[str, str], int]:
    """How many issues of `kind` each (tenant, subject) has had so far (a recurrence is a new one)."""
    keys = list(set(keys))
    if not keys:
        return {}
    rows = await conn.execute(
        select(sync_issues.c.tenant_id, sync_issues.c.subject, func.count().label("n"))
        .where(sync_issues.c.kind == kind, tuple_(sync_issues.c.tenant_id, sync_issues.c.subject).in_(keys))
        .group_by(sync_issues.c.tenant_id, sync_issues.c.subject)
    )
    return {(r.tenant_id, r.subject): r.n for r in rows}


async def resolve_issues(conn: AsyncConnection, ids: Sequence[int]) -> None:
    """Mark issues resolved: their cause is gone; if it comes back, it is a new occurrence."""
    if ids:
        await conn.execute(
            update(sync_issues)
            .where(sync_issues.c.id.in_(list(ids)), sync_issues.c.resolved_at.is_(None))
            .values(resolved_at=func.now())
        )
