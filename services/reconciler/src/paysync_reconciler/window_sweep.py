"""What a window sweep (`paysync reconcile`) adds to a list sweep: the one-by-one check of a window's
payments where the gateway has no list (Daraja), and the progress written on the tick's row.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import datetime

import structlog

from paysync_core.contracts import PaymentObservation
from paysync_reconciler import drift, metrics
from paysync_reconciler.models import MAX_RECOVERED, RunStats, Target
from paysync_reconciler.on_demand import conclude
from paysync_reconciler.ports import Answer, AnswerFrom, Deps, Port, ask_each, target_of
from paysync_reconciler.repository import window as window_repo

log = structlog.get_logger()


async def expected_in_window(deps: Deps, port: Port, span: tuple[datetime, datetime]) -> int:
    """The payments the sweep will answer for: registered in the window (those not ended, if checked
    one by one: then the number is exact; a list's is an estimate)."""
    async with deps.engine.connect() as conn:
        return await window_repo.count_in_window(
            conn, port.tenant, port.provider.value, span, open_only=not port.can_list
        )


async def check_window(deps: Deps, port: Port, span: tuple[datetime, datetime], stats: RunStats) -> None:
    """Ask the gateway about each payment registered in the window that paysync does not show as ended
    (Daraja's transaction status / STK query), `check_concurrency` at a time, within the sweep budget;
    publish what it says and report each payment it corrects."""
    after: window_repo.After | None = None
    while True:
        async with deps.engine.connect() as conn:
            rows = await window_repo.open_in_window(
                conn, port.tenant, port.provider.value, span, after, deps.settings.claim_batch
            )
        if not rows:
            return
        after = (rows[-1].created_at, rows[-1].id)
        targets = [target_of(r) for r in rows]
        answers = await ask_each(port, targets, deps.settings.check_concurrency)
        await _settle(deps, port, targets, answers, stats)


async def _settle(
    deps: Deps, port: Port, targets: list[Target], answers: list[Answer], stats: RunStats
) -> None:
    """Publish the answers (the projector applies them), count them, raise what drifted, and end the
    check schedules of payments the gateway says have ended."""
    fetched = [a.observation for a in answers if a.observation is not None]
    await deps.outbound.observations(fetched)
    metrics.OBSERVATIONS.labels(port.provider.value, "window").inc(len(fetched))
    answered: list[tuple[Target, PaymentObservation]] = []
    for target, answer in zip(targets, answers, strict=True):
        if answer.how is not AnswerFrom.GATEWAY or answer.observation is None:
            if answer.error is not None:
                stats.gateway_errors += 1
                metrics.GATEWAY_ERRORS.labels(port.provider.value, answer.error.code).inc()
            continue
        stats.checked += 1
        stats.direct += 1
        metrics.CHECKED.labels(port.provider.value, "window").inc()
        if drift.is_fix(target.status, answer.status):
            stats.fixed += 1
            if len(stats.recovered) < MAX_RECOVERED:
                stats.recovered.append(str(target.payment_id))
        answered.append((target, answer.observation))
    await conclude(deps, answered, [], stats)


@contextlib.asynccontextmanager
async def progress_on_tick(deps: Deps, tick_id: str, stats: RunStats) -> AsyncIterator[None]:
    """Write the sweep's counts on its tick's row now and every `window_progress_seconds` while it
    runs: what `paysync reconcile` shows as a bar with rate and time left."""

    async def report() -> None:
        while True:
            try:
                async with deps.engine.begin() as conn:
                    await window_repo.note_progress(conn, tick_id, stats.as_json())
            except Exception as exc:  # noqa: BLE001 - only the progress display: the sweep goes on
                log.info("reconcile.window.progress_skipped", tick_id=tick_id, error=type(exc).__name__)
            await asyncio.sleep(deps.settings.window_progress_seconds)

    reporter = asyncio.create_task(report())
    try:
        yield
    finally:
        reporter.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reporter
