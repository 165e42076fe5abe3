"""A list sweep: read the gateway's list since the watermark, publish what it says, note each payment's
answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import structlog

from paysync_core.contracts import Provider
from paysync_core.domain.status import UnifiedStatus
from paysync_core.errors import GatewayError
from paysync_reconciler import drift, metrics
from paysync_reconciler.alerts import raise_all
from paysync_reconciler.listing import Listed
from paysync_reconciler.models import ListedPage, RunStats
from paysync_reconciler.ports import Deps, Port, target_of
from paysync_reconciler.repository import checks as checks_repo
from paysync_reconciler.repository import listing as listing_repo
from paysync_reconciler.schedule import resolved

log = structlog.get_logger()

#: Most in-window aliases a list sweep remembers (a Session's PaymentIntent, a charge).
_MAX_WINDOW_ALIASES = 200_000


@dataclass(slots=True)
class ListWindow:
    """What a list sweep learned that the database may not know yet: more references of known payments."""

    aliases: dict[str, uuid.UUID] = field(default_factory=dict)

    def payment_of(self, refs: Sequence[str], known: dict[str, uuid.UUID]) -> uuid.UUID | None:
        """The payment one of these references belongs to, if any is known."""
        for ref in refs:
            pid = known.get(ref) or self.aliases.get(ref)
            if pid is not None:
                return pid
        return None

    def learn(self, refs: Sequence[str], pid: uuid.UUID) -> None:
        """Remember the references as the payment's (a Session's PaymentIntent, a charge), bounded."""
        if len(self.aliases) < _MAX_WINDOW_ALIASES:
            for ref in refs:
                self.aliases.setdefault(ref, pid)


async def list_sweep(
    deps: Deps, port: Port, now: datetime, window: ListWindow, stats: RunStats, fetched: asyncio.Event
) -> None:
    """Read the gateway's list since the watermark; advance it once everything found is acknowledged."""
    # Fetching marks the payments each page touches (the list answers for them) at the budget's
    # pace; reading pages into observations (CPU-heavy, in a worker) and publishing them follow
    # behind. `fetched` is set when fetching ends, however it ends.
    s = deps.settings
    name = port.list_name
    overlap = timedelta(
        seconds=s.paystack_list_overlap_seconds
        if port.provider is Provider.PAYSTACK
        else s.list_overlap_seconds
    )
    async with deps.engine.connect() as conn:
        mark = await listing_repo.watermark(conn, port.tenant, port.provider.value, name)
        oldest = (
            None if mark else await checks_repo.oldest_open_payment(conn, port.tenant, port.provider.value)
        )
    if mark is not None:
        start = mark - overlap
    elif oldest is not None:  # a payment may have been paid before it was registered
        start = oldest - timedelta(seconds=s.first_window_margin_seconds)
    else:
        start = now - overlap
    start = max(start, now - timedelta(seconds=s.initial_lookback_seconds))
    stats.extra["window_start"] = start.isoformat()
    queue: asyncio.Queue[tuple[ListedPage, dict[str, uuid.UUID]]] = asyncio.Queue(maxsize=s.list_buffer_pages)

    async def fetch() -> None:
        try:
            async for page in port.list_pages(start, now):
                known = await _touch_listed(deps, port, page, now, window)
                await queue.put((page, known))
                stats.extra["pages"] = stats.extra.get("pages", 0) + 1
        finally:
            fetched.set()

    async def next_batch() -> list[tuple[ListedPage, dict[str, uuid.UUID]]]:
        """Fetched pages, up to a batch's worth; empty once fetching has ended and all were taken."""
        pages: list[tuple[ListedPage, dict[str, uuid.UUID]]] = []
        if queue.empty() and not fetcher.done():
            getter = asyncio.ensure_future(queue.get())
            await asyncio.wait({getter, fetcher}, return_when=asyncio.FIRST_COMPLETED)
            if getter.done() and not getter.cancelled():
                pages.append(getter.result())
            else:
                getter.cancel()
        while not queue.empty() and sum(len(p.refs) for p, _ in pages) < s.list_batch:
            pages.append(queue.get_nowait())
        return pages

    fetcher = asyncio.create_task(fetch())
    reading: asyncio.Future[list[list[Listed]]] | None = None
    try:
        # One batch is read in the worker while the one before is published and noted.
        pages, previous = await next_batch(), None
        while pages or previous:
            read = _read_listed(deps, port, pages) if pages else None
            reading = asyncio.ensure_future(read) if read else None
            if previous is not None:
                await _absorb_listed(deps, port, previous[0], await previous[1], now, window, stats)
            previous = (pages, reading) if reading is not None else None
            pages = await next_batch() if reading is not None else []
        await fetcher  # raises what stopped the list, if anything did
    except GatewayError as exc:
        stats.gateway_errors += 1
        stats.extra["list_error"] = f"{exc.code}: {str(exc)[:200]}"
        metrics.GATEWAY_ERRORS.labels(port.provider.value, exc.code).inc()
        log.warning("reconcile.list.failed", tenant=port.tenant, provider=port.provider.value, error=exc.code)
        return
    finally:
        for task in (fetcher, reading):
            if task is not None and not task.done():
                task.cancel()
            with contextlib.suppress(BaseException):
                await task  # type: ignore[misc]
    async with deps.engine.begin() as conn:
        await listing_repo.advance_watermark(conn, port.tenant, port.provider.value, name, now)


async def _touch_listed(
    deps: Deps, port: Port, page: ListedPage, now: datetime, window: ListWindow
) -> dict[str, uuid.UUID]:
    """Mark the payments a fetched page is about (the list answers for them); its references' payments."""
    refs = {r for item in page.refs for r in item if r not in window.aliases}
    touched: set[uuid.UUID] = set()
    async with deps.engine.begin() as conn:
        known = await listing_repo.resolve_refs(conn, port.tenant, port.provider.value, refs)
        for item in page.refs:
            pid = window.payment_of(item, known)
            if pid is not None:
                touched.add(pid)
                window.learn([r for r in item if r not in known], pid)
        await listing_repo.touch_listed(conn, touched, now)
    return known


async def _read_listed(
    deps: Deps, port: Port, pages: list[tuple[ListedPage, dict[str, uuid.UUID]]]
) -> list[list[Listed]]:
    """Read fetched pages into observations: the CPU-heavy part, done by a worker process."""
    return await deps.read_pages(port.provider, port.tenant, [page.payload for page, _ in pages])


async def _absorb_listed(
    deps: Deps,
    port: Port,
    pages: list[tuple[ListedPage, dict[str, uuid.UUID]]],
    read: list[list[Listed]],
    now: datetime,
    window: ListWindow,
    stats: RunStats,
) -> None:
    """Publish the observations of read pages, and note each payment's newest answer."""
    known: dict[str, uuid.UUID] = {}
    for _, resolved_refs in pages:
        known |= resolved_refs  # what the fetcher looked up already
    batch = [item for page in read for item in page]
    refs = {r for item in batch for r in item.refs if r not in window.aliases and r not in known}
    if refs:
        async with deps.engine.connect() as conn:
            known |= await listing_repo.resolve_refs(conn, port.tenant, port.provider.value, refs)
    newest: dict[uuid.UUID, Listed] = {}
    for item in batch:  # newest first (Stripe) or one per transaction (Paystack): the first answer stands
        pid = window.payment_of(item.refs, known)
        if pid is not None and item.status is not None and pid not in newest:
            newest[pid] = item
    # Every mapped observation goes out, as its webhook would have: the projector parks unknown ones.
    await deps.outbound.records([(item.key, item.value) for item in batch])
    metrics.OBSERVATIONS.labels(port.provider.value, "list").inc(len(batch))
    stats.extra["observations"] = stats.extra.get("observations", 0) + len(batch)
    async with deps.engine.begin() as conn:
        rows = await listing_repo.payments_by_id(conn, newest)
        targets = {pid: target_of(row) for pid, row in rows.items()}
        # A due check the list answers for good ends here, unless the answer would un-see money
        # paysync shows as moved: that one is for the gateway to confirm, by a direct check.
        answers = {
            pid: (item.status.value, _closes(targets[pid].status, item.status))
            for pid, item in newest.items()
            if item.status is not None and pid in targets
        }
        noted = await listing_repo.note_listed(conn, answers, now)
    stats.listed += len(noted)
    stats.checked += sum(noted.values())
    metrics.CHECKED.labels(port.provider.value, "list").inc(len(noted))
    findings: list[drift.Finding] = []
    # A Paystack list shows each transaction as it is now; Stripe's Events are history.
    current = port.provider is Provider.PAYSTACK
    for pid in noted:
        target, item = targets[pid], newest[pid]
        if drift.is_fix(target.status, item.status):
            stats.fixed += 1
        findings += drift.drift_between(target, item, current=current)
    await raise_all(deps, findings, stats)


def _closes(local: UnifiedStatus | None, said: UnifiedStatus | None) -> bool:
    """Whether a list's answer ends a payment's checks without a call of its own."""
    if not resolved(said) or said is None:
        return False
    return not (local is not None and local.money_moved and not said.money_moved)
