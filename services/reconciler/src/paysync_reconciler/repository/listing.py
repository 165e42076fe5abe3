"""SQL of list sweeps: the watermark, references a list names, the answers it gave."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import String, any_, bindparam, func, select, text
from sqlalchemy.dialects.postgresql import ARRAY, UUID, insert
from sqlalchemy.ext.asyncio import AsyncConnection

from paysync_core.db.schema import payment_refs, payments, reconcile_watermarks
from paysync_reconciler.repository.columns import PAYMENT_COLUMNS


async def watermark(conn: AsyncConnection, tenant: str, provider: str, sweep: str) -> datetime | None:
    """How far the list sweep has read, if it ever has."""
    result = await conn.execute(
        select(reconcile_watermarks.c.watermark).where(
            reconcile_watermarks.c.tenant_id == tenant,
            reconcile_watermarks.c.provider == provider,
            reconcile_watermarks.c.sweep == sweep,
        )
    )
    return result.scalar()


async def advance_watermark(
    conn: AsyncConnection, tenant: str, provider: str, sweep: str, to: datetime
) -> None:
    """Move the watermark forward (never back)."""
    stmt = insert(reconcile_watermarks).values(tenant_id=tenant, provider=provider, sweep=sweep, watermark=to)
    await conn.execute(
        stmt.on_conflict_do_update(
            index_elements=[
                reconcile_watermarks.c.tenant_id,
                reconcile_watermarks.c.provider,
                reconcile_watermarks.c.sweep,
            ],
            set_={
                "watermark": func.greatest(reconcile_watermarks.c.watermark, stmt.excluded.watermark),
                "updated_at": func.now(),
            },
        )
    )


async def resolve_refs(
    conn: AsyncConnection, tenant: str, provider: str, refs: Iterable[str]
) -> dict[str, uuid.UUID]:
    """The payment each known reference (or alias) belongs to."""
    refs = list(set(refs))
    if not refs:
        return {}
    rows = await conn.execute(
        select(payment_refs.c.ref, payment_refs.c.payment_id).where(
            payment_refs.c.tenant_id == tenant,
            payment_refs.c.provider == provider,
            payment_refs.c.ref == any_(bindparam("refs", refs, type_=ARRAY(String))),  # one plan, any count
        )
    )
    return {r.ref: r.payment_id for r in rows}


async def payments_by_id(conn: AsyncConnection, ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, Any]:
    """Payments by id."""
    ids = list(set(ids))
    if not ids:
        return {}
    rows = await conn.execute(
        select(*PAYMENT_COLUMNS).where(payments.c.id == any_(bindparam("ids", ids, type_=ARRAY(UUID))))
    )
    return {r.id: r for r in rows}


async def note_listed(
    conn: AsyncConnection, listed: dict[uuid.UUID, tuple[str, bool]], at: datetime
) -> dict[uuid.UUID, bool]:
    """Note each payment's listed answer (status, closes?); a due check it closes ends. Those noted."""
    # The first (newest) answer of a sweep stands; a due check the answer closes needs no call.
    if not listed:
        return {}
    ends = "(v.closes AND c.next_check_at <= :at AND c.done_at IS NULL AND c.gave_up_at IS NULL)"
    rows = await conn.execute(
        text(
            "UPDATE reconcile_checks AS c SET listed_at = :at, listed_status = v.status,"  # noqa: S608 - a constant SQL fragment; every value is a bound parameter
            f" done_at = CASE WHEN {ends} THEN :at ELSE c.done_at END,"
            f" checks_made = c.checks_made + CASE WHEN {ends} THEN 1 ELSE 0 END,"
            f" last_checked_at = CASE WHEN {ends} THEN :at ELSE c.last_checked_at END,"
            f" last_status = CASE WHEN {ends} THEN v.status ELSE c.last_status END,"
            f" step = c.step + CASE WHEN {ends} THEN 1 ELSE 0 END"
            " FROM unnest(CAST(:ids AS uuid[]), CAST(:statuses AS text[]), CAST(:closes AS boolean[]))"
            " AS v(pid, status, closes)"
            " WHERE c.payment_id = v.pid AND (c.listed_status IS NULL OR c.listed_at IS DISTINCT FROM :at)"
            " RETURNING c.payment_id, c.done_at = :at AS ended"
        ),
        {
            "at": at,
            "ids": list(listed),
            "statuses": [v[0] for v in listed.values()],
            "closes": [v[1] for v in listed.values()],
        },
    )
    return {r.payment_id: bool(r.ended) for r in rows}


async def touch_listed(conn: AsyncConnection, payment_ids: set[uuid.UUID], at: datetime) -> None:
    """Mark payments a list touched at this sweep; their answers (statuses) are noted when read."""
    if payment_ids:
        await conn.execute(
            text(
                "UPDATE reconcile_checks SET listed_at = :at, listed_status = NULL"
                " WHERE payment_id = ANY(CAST(:ids AS uuid[])) AND listed_at IS DISTINCT FROM :at"
            ),
            {"at": at, "ids": list(payment_ids)},
        )
