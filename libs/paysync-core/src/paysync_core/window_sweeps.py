"""Window sweeps (`paysync reconcile`, `POST /admin/v1/reconcile-sweeps`): the tick that asks for one,
and the report of one read from its tick's row, shared by the CLI and the admin API.

A window sweep is a `ReconcileTick` with `since` and `until`; the reconciler replica that takes it on
records it in `reconcile_ticks` (status `running`), writes its counts there as it goes (`expected`:
payments it estimates it will answer for; `listed` + `direct`: payments answered so far) and its
final status and counts when it ends.
"""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime
from typing import Any, Literal

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from paysync_core.contracts import Provider, ReconcileTick
from paysync_core.db.schema import payments, reconcile_ticks

#: How a window sweep can end; its row says `running` until then.
ENDED = ("completed", "partial", "failed", "skipped", "cancelled")

#: The ids `window_tick` gives: tenant, gateway, `window`, a random hex.
_WINDOW_ID = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}:(stripe|paystack|mpesa):window:[0-9a-f]{32}$")


def window_tick(
    tenant: str, gateway: Provider, since: datetime, until: datetime, source: Literal["cli", "admin"]
) -> ReconcileTick:
    """The tick asking for a sweep of the window; ValueError unless `since` is before `until`."""
    start, end = _utc(since), _utc(until)
    if start >= end:
        raise ValueError("since must be before until")
    return ReconcileTick(
        tick_id=f"{tenant}:{gateway.value}:window:{uuid.uuid4().hex}",
        tenant=tenant,
        provider=gateway,
        scheduled_at=datetime.now(UTC),
        source=source,
        since=start,
        until=end,
    )


def is_window_id(tick_id: str) -> bool:
    """Whether the id is one `window_tick` gives (one not taken on yet is `queued`, not unknown)."""
    return _WINDOW_ID.match(tick_id) is not None


async def sweep_row(conn: AsyncConnection, tick_id: str) -> Any:
    """The sweep's tick row, once a reconciler took it on (None before)."""
    return (await conn.execute(select(reconcile_ticks).where(reconcile_ticks.c.tick_id == tick_id))).first()


def progress(row: Any) -> tuple[int, int | None]:
    """Payments answered so far and the number expected (None: not estimated yet)."""
    stats = row.stats or {}
    return stats.get("listed", 0) + stats.get("direct", 0), stats.get("expected")


def report(tick_id: str, row: Any) -> dict[str, Any]:
    """What a sweep did (or has done so far): status, counts, the ids of the payments it recovered."""
    stats = dict(row.stats) if row is not None else {}
    done, expected = progress(row) if row is not None else (0, None)
    return {
        "tick_id": tick_id,
        "status": row.status if row is not None else "queued",
        "handled_by": row.handled_by if row is not None else None,
        # A list answers for payments (`listed`); without one each is asked (`direct`).
        "payments_checked": done,
        "payments_expected": expected,
        "payments_changed": stats.get("fixed", 0),
        "recovered_ids": list(stats.get("recovered", [])),
        "observations": stats.get("observations", 0),
        "gateway_calls": stats.get("gateway_calls", 0),
        "problem": stats.get("list_error") or stats.get("error") or stats.get("reason"),
    }


async def recovered(conn: AsyncConnection, ids: list[str]) -> list[dict[str, Any]]:
    """The recovered payments as they stand now: id, reference, status."""
    if not ids:
        return []
    rows = await conn.execute(
        select(payments.c.id, payments.c.provider_ref, payments.c.status).where(
            payments.c.id.in_([uuid.UUID(i) for i in ids])
        )
    )
    found = {str(r.id): r for r in rows}
    return [
        {"payment_id": i, "provider_ref": found[i].provider_ref, "status_now": found[i].status}
        for i in ids
        if i in found
    ]


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
