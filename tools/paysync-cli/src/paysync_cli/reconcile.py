"""`paysync reconcile`: an on-demand sweep of a time window (an outage) through the reconciler.

The command publishes a window tick (`ReconcileTick` with `since` and `until`) on the ticks topic;
one reconciler replica takes it on, reads the gateway's list for the window (M-Pesa, which has none:
checks the window's unsettled payments one by one) within the gateway's rate budget, publishes what
it finds (the projector applies it) and writes its counts on the tick's row (`reconcile_ticks`) as
it goes, which the command follows (a bar: payments checked of those expected, rate, time left)
until the sweep ends.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Annotated, Any

import typer
from rich.table import Table
from sqlalchemy.ext.asyncio import AsyncEngine

from paysync_cli._ops import JsonOption, console, database, fail, print_json, producer, progress_bar
from paysync_core import topics, window_sweeps
from paysync_core.contracts import Provider, ReconcileTick
from paysync_core.db import tenants as tenant_repo
from paysync_core.dead_letters import is_outage


def reconcile(
    tenant: Annotated[str, typer.Option(help="The tenant whose payments to sweep")],
    gateway: Annotated[
        Provider, typer.Option(help="stripe, paystack, or mpesa (no list: unsettled payments one by one)")
    ],
    since: Annotated[datetime, typer.Option(help="Window start (ISO time; UTC if naive)")],
    until: Annotated[datetime, typer.Option(help="Window end (ISO time; UTC if naive)")],
    wait: Annotated[float, typer.Option(min=1, help="Seconds to wait for the sweep to end")] = 900.0,
    as_json: Annotated[bool, JsonOption] = False,
) -> None:
    """Sweep a window (the whole outage) through the reconciler; print what was checked and recovered."""
    try:
        tick = window_sweeps.window_tick(tenant, gateway, since, until, "cli")
    except ValueError:
        raise typer.BadParameter("--since must be before --until", param_hint="--since") from None
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
        report = window_sweeps.report(tick.tick_id, row)
        async with engine.connect() as conn:
            recovered = await window_sweeps.recovered(conn, report.pop("recovered_ids"))
    return {
        "tick_id": tick.tick_id,
        "tenant": tick.tenant,
        "gateway": tick.provider.value,
        "since": tick.since.isoformat() if tick.since else None,
        "until": tick.until.isoformat() if tick.until else None,
        **report,
        "status": row.status if row is not None else "not_taken",
        "recovered": recovered,
    }


async def _follow(engine: AsyncEngine, tick_id: str, wait: float, show_progress: bool) -> Any:
    """The tick's row once its sweep ended; the last row seen (or None) if `wait` ran out first.

    While it runs, a bar shows the payments answered of those expected, the rate and the time left.
    The sweep does not need this command: while the database does not answer (a restart, a failover,
    a dropped connection), the command asks again until `wait` runs out.
    """
    with progress_bar() as bar:
        task = bar.add_task("waiting for a reconciler", total=None, unit="payments", visible=show_progress)
        deadline = asyncio.get_running_loop().time() + wait
        row = None
        while asyncio.get_running_loop().time() < deadline:
            try:
                async with engine.connect() as conn:
                    row = await window_sweeps.sweep_row(conn, tick_id)
            except Exception as exc:
                if not is_outage(exc):
                    raise
                bar.update(
                    task, description=f"the database does not answer ({type(exc).__name__}): asking again"
                )
                await asyncio.sleep(0.5)
                continue
            if row is not None and row.status in window_sweeps.ENDED:
                return row
            if row is not None:
                done, expected = window_sweeps.progress(row)
                bar.update(task, description=f"sweeping on {row.handled_by}", total=expected, completed=done)
            await asyncio.sleep(0.5)
        return row


def _print(report: dict[str, Any]) -> None:
    table = Table("payment", "reference", "status now", title="recovered")
    for p in report["recovered"]:
        table.add_row(p["payment_id"], p["provider_ref"], p["status_now"])
    console.print(table)
    summary = Table(
        "sweep", "status", "payments expected", "checked", "changed", "observations", "gateway calls"
    )
    expected = report["payments_expected"]
    summary.add_row(
        f"{report['gateway']} {report['since']} → {report['until']}",
        report["status"],
        "?" if expected is None else str(expected),
        str(report["payments_checked"]),
        str(report["payments_changed"]),
        str(report["observations"]),
        str(report["gateway_calls"]),
    )
    console.print(summary)
    if report["problem"]:
        console.print(f"[yellow]{report['problem']}[/]")
