"""`paysync reconcile`: an on-demand sweep of a time window (an outage) through the reconciler.

The command publishes a window tick (`ReconcileTick` with `since` and `until`) on the ticks topic;
one reconciler replica takes it on, reads the gateway's list for the window within the gateway's
rate budget, publishes what it finds (the projector applies it) and records its counts on the
tick's row (`reconcile_ticks`), which the command follows until the sweep ends.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from paysync_cli._ops import JsonOption, console, database, fail, print_json, producer
from paysync_core import topics
from paysync_core.contracts import Provider, ReconcileTick
from paysync_core.db import tenants as tenant_repo
from paysync_core.db.schema import payments, reconcile_ticks

#: How a window sweep can end; a tick row says `running` until then.
_ENDED = ("completed", "partial", "failed", "skipped", "cancelled")


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def reconcile(
    tenant: Annotated[str, typer.Option(help="The tenant whose payments to sweep")],
    gateway: Annotated[Provider, typer.Option(help="stripe or paystack (M-Pesa has no list to read)")],
    since: Annotated[datetime, typer.Option(help="Window start (ISO time; UTC if naive)")],
    until: Annotated[datetime, typer.Option(help="Window end (ISO time; UTC if naive)")],
    wait: Annotated[float, typer.Option(min=1, help="Seconds to wait for the sweep to end")] = 900.0,
    as_json: Annotated[bool, JsonOption] = False,
) -> None:
    """Sweep a window (the whole outage) through the reconciler; print what was checked and recovered."""
    start, end = _utc(since), _utc(until)
    if start >= end:
        raise typer.BadParameter("--since must be before --until", param_hint="--since")
    if gateway is Provider.MPESA:
        raise typer.BadParameter("M-Pesa has no list to sweep a window of", param_hint="--gateway")
    tick = ReconcileTick(
        tick_id=f"{tenant}:{gateway.value}:window:{uuid.uuid4().hex}",
        tenant=tenant,
        provider=gateway,
        scheduled_at=datetime.now(UTC),
        source="cli",
        since=start,
        until=end,
    )
    report = asyncio.run(_sweep(tick, wait, show_progress=not as_json))
    if as_json:
        print_json(report)
    else:
        _print(report)
    if report["status"] != "completed":
        raise typer.Exit(3 if report["status"] == "not_taken" else 1)


async def _sweep(tick: ReconcileTick, wait: float, *, show_progress: bool) -> dict[str, Any]:
    """Publish the tick and follow its row until the sweep ends (or `wait` runs out)."""
    async with database() as engine:
        async with engine.connect() as conn:
            if not await tenant_repo.tenant_exists(conn, tick.tenant):
                raise fail(f"unknown tenant {tick.tenant}")
        async with producer("paysync-cli-reconcile") as sender:
            await sender.send(
                topics.RECONCILE_TICKS.name, f"{tick.tenant}:{tick.provider.value}".encode(), tick.to_bytes()
            )
        row = await _follow(engine, tick.tick_id, wait, show_progress)
        stats = dict(row.stats) if row is not None else {}
        recovered = await _payments(engine, stats.get("recovered", []))
    return {
        "tick_id": tick.tick_id,
        "tenant": tick.tenant,
        "gateway": tick.provider.value,
        "since": tick.since.isoformat() if tick.since else None,
        "until": tick.until.isoformat() if tick.until else None,
        "status": row.status if row is not None else "not_taken",
        "payments_checked": stats.get("listed", 0),
        "payments_changed": stats.get("fixed", 0),
        "recovered": recovered,
        "observations": stats.get("observations", 0),
        "gateway_calls": stats.get("gateway_calls", 0),
        "problem": stats.get("list_error") or stats.get("error") or stats.get("reason"),
    }


async def _follow(engine: AsyncEngine, tick_id: str, wait: float, show_progress: bool) -> Any:
    """The tick's row once its sweep ended; the last row seen (or None) if `wait` ran out first."""
    columns = (TextColumn("{task.description}"), SpinnerColumn(), TimeElapsedColumn())
    with Progress(*columns, console=Console(stderr=True), transient=True, disable=not show_progress) as bar:
        task = bar.add_task("waiting for a reconciler to take the sweep on")
        deadline = asyncio.get_running_loop().time() + wait
        row = None
        while asyncio.get_running_loop().time() < deadline:
            async with engine.connect() as conn:
                row = (
                    await conn.execute(select(reconcile_ticks).where(reconcile_ticks.c.tick_id == tick_id))
                ).first()
            if row is not None and row.status in _ENDED:
                return row
            if row is not None:
                bar.update(task, description=f"sweeping on {row.handled_by}")
            await asyncio.sleep(0.5)
        return row


async def _payments(engine: AsyncEngine, ids: list[str]) -> list[dict[str, Any]]:
    """The recovered payments as they stand now: id, reference, status."""
    if not ids:
        return []
    async with engine.connect() as conn:
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


def _print(report: dict[str, Any]) -> None:
    table = Table("payment", "reference", "status now", title="recovered")
    for p in report["recovered"]:
        table.add_row(p["payment_id"], p["provider_ref"], p["status_now"])
    console.print(table)
    summary = Table("sweep", "status", "payments checked", "changed", "observations", "gateway calls")
    summary.add_row(
        f"{report['gateway']} {report['since']} → {report['until']}",
        report["status"],
        str(report["payments_checked"]),
        str(report["payments_changed"]),
        str(report["observations"]),
        str(report["gateway_calls"]),
    )
    console.print(summary)
    if report["problem"]:
        console.print(f"[yellow]{report['problem']}[/]")
