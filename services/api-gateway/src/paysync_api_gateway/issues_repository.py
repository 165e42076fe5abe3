"""SQL of sync issues as the API shows and handles them: read with their audit, change by hand."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import func, select, tuple_, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from paysync_core.db.schema import api_keys, sync_issue_actions, sync_issues
from paysync_core.db.tenants import hash_api_key

#: What each state means in rows: resolved_at decides; acknowledged_at only matters while open.
_STATE = {
    "open": (sync_issues.c.resolved_at.is_(None), sync_issues.c.acknowledged_at.is_(None)),
    "acknowledged": (sync_issues.c.resolved_at.is_(None), sync_issues.c.acknowledged_at.isnot(None)),
    "resolved": (sync_issues.c.resolved_at.isnot(None),),
    None: (sync_issues.c.resolved_at.is_(None),),  # unresolved: open or acknowledged
}


async def list_issues(
    conn: AsyncConnection,
    tenant: str,
    *,
    state: str | None,
    filters: dict[str, str],
    after: tuple[Any, int] | None,
    limit: int,
) -> list[Any]:
    """The tenant's sync issues in `state` (default: unresolved), newest first, after the cursor."""
    query = select(sync_issues).where(sync_issues.c.tenant_id == tenant, *_STATE[state])
    for column, value in filters.items():
        query = query.where(sync_issues.c[column] == value)
    if after is not None:
        query = query.where(tuple_(sync_issues.c.opened_at, sync_issues.c.id) < tuple_(*after))
    newest_first = (sync_issues.c.opened_at.desc(), sync_issues.c.id.desc())
    return list(await conn.execute(query.order_by(*newest_first).limit(limit)))


async def get_issue(conn: AsyncConnection, tenant: str, issue_id: int, *, lock: bool = False) -> Any | None:
    """One of the tenant's issues (locked against concurrent changes if `lock`), or None."""
    query = select(sync_issues).where(sync_issues.c.tenant_id == tenant, sync_issues.c.id == issue_id)
    return (await conn.execute(query.with_for_update() if lock else query)).first()


async def actions_of(conn: AsyncConnection, issue_ids: Sequence[int]) -> dict[int, list[Any]]:
    """The audit of each issue, oldest first."""
    if not issue_ids:
        return {}
    rows = await conn.execute(
        select(sync_issue_actions)
        .where(sync_issue_actions.c.issue_id.in_(issue_ids))
        .order_by(sync_issue_actions.c.id)
    )
    found: dict[int, list[Any]] = {}
    for row in rows:
        found.setdefault(row.issue_id, []).append(row)
    return found


async def other_open_occurrence(conn: AsyncConnection, issue: Any) -> int | None:
    """The id of an unresolved issue of the same kind and subject (only one may be open), or None."""
    result = await conn.execute(
        select(sync_issues.c.id).where(
            sync_issues.c.tenant_id == issue.tenant_id,
            sync_issues.c.kind == issue.kind,
            sync_issues.c.subject == issue.subject,
            sync_issues.c.resolved_at.is_(None),
            sync_issues.c.id != issue.id,
        )
    )
    return result.scalar_one_or_none()


#: The columns each action sets on the issue.
_CHANGES: dict[str, dict[str, Any]] = {
    "acknowledge": {"acknowledged_at": func.now()},
    "resolve": {"resolved_at": func.now()},
    "reopen": {"resolved_at": None, "acknowledged_at": None},
}


async def record_action(
    conn: AsyncConnection, issue: Any, action: str, note: str | None, api_key: str
) -> None:
    """Change the issue as `action` says and audit it, with the API key's id and prefix (never the key)."""
    await conn.execute(update(sync_issues).where(sync_issues.c.id == issue.id).values(**_CHANGES[action]))
    key = (
        await conn.execute(
            select(api_keys.c.id, api_keys.c.prefix).where(api_keys.c.key_hash == hash_api_key(api_key))
        )
    ).first()
    await conn.execute(
        insert(sync_issue_actions).values(
            issue_id=issue.id,
            tenant_id=issue.tenant_id,
            action=action,
            note=note,
            api_key_id=key.id if key else None,
            api_key_prefix=key.prefix if key else None,
        )
    )
