"""Sweeps: take a tick on once, hold the account's sweep lock, enrol new payments, read the lists, check
what is due.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterator
from typing import Any

import structlog
from sqlalchemy.ext.asyncio import AsyncEngine

from paysync_core.contracts import Provider
from paysync_core.db.engine import session_lock
from paysync_core.errors import ProviderNotConfigured
from paysync_reconciler import metrics
from paysync_reconciler.budget import Priority, priority
from paysync_reconciler.due_checks import check_due
from paysync_reconciler.list_sweep import ListSweep, ListWindow
from paysync_reconciler.models import Phase, ReconcileTick, RunStats
from paysync_reconciler.ports import Deps
from paysync_reconciler.repository import checks as checks_repo
from paysync_reconciler.repository import tenants as tenants_repo
from paysync_reconciler.repository import ticks as ticks_repo
from paysync_reconciler.runner import TaskRunner
from paysync_reconciler.unrecorded import record_orphaned_successes
from paysync_reconciler.window_sweep import check_window, expected_in_window, progress_on_tick

log = structlog.get_logger()

#: Enrolments this large make the table's planner statistics stale.
_ANALYZE_AFTER = 5_000


async def handle_tick(deps: Deps, runner: TaskRunner, tick: ReconcileTick) -> str:
    """Take a tick on once (whatever the number of replicas or schedulers) and start its sweep."""
    async with deps.engine.begin() as conn:
        if not await tenants_repo.tenant_exists(conn, tick.tenant):
            return "unknown_tenant"
        fresh = await ticks_repo.record_tick(
            conn,
            {
                "tick_id": tick.tick_id,
                "tenant_id": tick.tenant,
                "provider": tick.provider.value,
                "scheduled_at": tick.scheduled_at,
                "source": tick.source,
                "handled_by": deps.me,
            },
        )
    if not fresh:
        return "duplicate"
    if not runner.start((tick.tenant, tick.provider), lambda: sweep(deps, tick)):
        await _finish_tick(deps, tick, "skipped", {"reason": "a sweep of this account is still running"})
        return "skipped"
    return "started"


async def sweep(deps: Deps, tick: ReconcileTick) -> RunStats:
    """One tenant's sweep at one gateway: enrol new payments, read the lists, check what is due."""
    stats, status, started = RunStats(), "completed", time.perf_counter()
    provider = Provider(tick.provider)
    bound = log.bind(tenant=tick.tenant, provider=provider.value, tick_id=tick.tick_id)
    try:
        # Held for the whole sweep, on a connection of its own with no transaction open.
        async with session_lock(deps.engine, ticks_repo.sweep_lock(tick.tenant, provider.value)) as held:
            if held is None:
                status = "skipped"
                stats.reason = "another replica is sweeping this account"
            else:
                with priority(Priority.SWEEP):
                    if tick.window is not None:
                        await sweep_window(deps, tick, provider, stats)
                    else:
                        await _sweep_locked(deps, tick.tenant, provider, stats)
                if stats.list_error:
                    status = "partial"
    except ProviderNotConfigured:
        status = "skipped"
        stats.reason = f"{provider.value} is not configured for this tenant"
    except asyncio.CancelledError:
        status = "cancelled"
        raise
    except Exception as exc:  # noqa: BLE001 - recorded on the tick; the next tick resumes from the database
        status = "failed"
        stats.error = f"{type(exc).__name__}: {str(exc)[:300]}"
        bound.exception("reconcile.sweep.failed")
    finally:
        seconds = time.perf_counter() - started
        stats.seconds = round(seconds, 3)
        with contextlib.suppress(Exception):
            await asyncio.shield(_finish_tick(deps, tick, status, stats.as_json()))
        _count_run(provider, stats, seconds)
        bound.info("reconcile.sweep.completed", status=status, **stats.as_json())
    return stats


async def _sweep_locked(deps: Deps, tenant: str, provider: Provider, stats: RunStats) -> None:
    port = await deps.gateways.port(tenant, provider)
    schedule = deps.schedules[provider]
    with _phase(stats, Phase.ENROLL):
        async with deps.engine.begin() as conn:
            stats.enrolled = enrolled = await checks_repo.enroll(
                conn, tenant, provider.value, schedule.delays[0]
            )
        if enrolled >= _ANALYZE_AFTER:
            await _analyze(deps.engine)
    now = deps.clock()
    window = ListWindow()
    calls_before = port.calls(Priority.SWEEP)
    try:
        if port.can_list:
            # Once the list is fetched, it is known which payments it answers for: the others are
            # checked one by one while the listed pages are still being read and published.
            fetched = asyncio.Event()
            listing = asyncio.create_task(ListSweep(deps, port, now, window, stats, fetched).run())
            try:
                with _phase(stats, Phase.FETCH):
                    await _first_of(fetched, listing)
                with _phase(stats, Phase.UNLISTED_CHECKS):
                    await check_due(deps, port, schedule, now, stats, unlisted_only=True)
                await listing
            finally:
                if not listing.done():
                    listing.cancel()
                with contextlib.suppress(BaseException):
                    await listing
        with _phase(stats, Phase.CHECKS):
            await check_due(deps, port, schedule, now, stats)
        with _phase(stats, Phase.UNRECORDED):
            await record_orphaned_successes(deps, port, window, stats)
    finally:
        stats.gateway_calls = port.calls(Priority.SWEEP) - calls_before


async def sweep_window(deps: Deps, tick: ReconcileTick, provider: Provider, stats: RunStats) -> None:
    """An operator's window sweep (`paysync reconcile`): the window's payments at the gateway, only.

    Stripe and Paystack: the gateway's list for the window is read; new payments are enrolled and the
    list's answers noted on their checks, as by any sweep, and the list's watermark stays where it is,
    so the regular sweeps read on from where they were. M-Pesa (no list): each payment registered in
    the window that has not ended is checked one by one. Observations are published (the projector
    applies them); each payment whose status is corrected is reported in `stats.recovered`; the counts
    so far are on the tick's row while it runs.
    """
    span = tick.window
    if span is None:
        raise ValueError("a window sweep needs a window")
    port = await deps.gateways.port(tick.tenant, provider)
    with _phase(stats, Phase.ENROLL):  # as every sweep does: the list's answers are noted on check rows
        async with deps.engine.begin() as conn:
            stats.enrolled = await checks_repo.enroll(
                conn, tick.tenant, provider.value, deps.schedules[provider].delays[0]
            )
    stats.expected = await expected_in_window(deps, port, span)
    calls_before = port.calls(Priority.SWEEP)
    try:
        async with progress_on_tick(deps, tick.tick_id, stats):
            if port.can_list:
                with _phase(stats, Phase.FETCH):
                    listing = ListSweep(deps, port, deps.clock(), ListWindow(), stats, asyncio.Event(), span)
                    await listing.run()
            else:
                with _phase(stats, Phase.CHECKS):
                    await check_window(deps, port, span, stats)
    finally:
        stats.gateway_calls = port.calls(Priority.SWEEP) - calls_before


async def _analyze(engine: AsyncEngine) -> None:
    """Fresh planner statistics after a large enrolment, so per-batch updates use the primary key."""
    try:
        async with engine.begin() as conn:
            await checks_repo.analyze_checks(conn)
    except Exception as exc:  # noqa: BLE001 - only an optimisation; autovacuum will analyze in time
        log.info("reconcile.analyze.skipped", error=type(exc).__name__)


async def _first_of(event: asyncio.Event, task: asyncio.Task[Any]) -> None:
    """Wait until the event is set or the task ends, whichever comes first."""
    waiter = asyncio.ensure_future(event.wait())
    try:
        await asyncio.wait({waiter, task}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        waiter.cancel()


@contextlib.contextmanager
def _phase(stats: RunStats, phase: Phase) -> Iterator[None]:
    """Time one phase of a sweep into its stats (`<name>_s`)."""
    started = time.perf_counter()
    try:
        yield
    finally:
        stats.phases[phase] = round(time.perf_counter() - started, 3)


async def _finish_tick(deps: Deps, tick: ReconcileTick, status: str, stats: dict[str, Any]) -> None:
    async with deps.engine.begin() as conn:
        await ticks_repo.finish_tick(conn, tick.tick_id, status, stats)


def _count_run(provider: Provider, stats: RunStats, seconds: float) -> None:
    metrics.SWEEP_SECONDS.labels(provider.value).observe(seconds)
    for name, value in stats.as_json().items():
        if isinstance(value, int) and not isinstance(value, bool):
            metrics.RUN_STATS.labels(provider.value, name).inc(value)
            metrics.LAST_RUN.labels(provider.value, name).set(value)
