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
from paysync_reconciler.models import MAX_RECOVERED, ListedPage, RunStats
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


@dataclass(slots=True)
class ListAnswers:
    """What a list said about each payment, kept for a bulk check: those it named (`touched`, known as
    each page is fetched) and its newest answer about each that names one of the payment's registered
    references (`newest`, once the page is read): one the projector can apply as soon as it arrives."""

    touched: set[uuid.UUID] = field(default_factory=set)
    newest: dict[uuid.UUID, Listed] = field(default_factory=dict)


_Fetched = tuple[ListedPage, dict[str, uuid.UUID]]  # a page, and the payments its references name


class ListSweep:
    """Read one account's list at the gateway since the watermark, in two stages under a TaskGroup.

    - fetch: pages at the budget's pace; each marks the payments it touches (the list answers for
      them) and is queued (`list_buffer_pages` at most); `fetched` is set when fetching ends, however it ends;
    - read and absorb: a batch of queued pages (`list_batch` references) is read into observations
      (CPU-heavy, in a worker) while the batch before is published and each payment's newest answer
      noted.

    The watermark advances once everything found is acknowledged. A gateway error while fetching
    ends the sweep partial (`stats.list_error`) after the pages already fetched are absorbed.
    """

    def __init__(
        self,
        deps: Deps,
        port: Port,
        now: datetime,
        window: ListWindow,
        stats: RunStats,
        fetched: asyncio.Event,
        span: tuple[datetime, datetime] | None = None,
        answers: ListAnswers | None = None,
    ) -> None:
        self.deps, self.port, self.now, self.window, self.stats = deps, port, now, window, stats
        self.fetched = fetched
        #: A window sweep's (since, until): read that, and leave the watermark where it is.
        self.span = span
        #: Where a bulk check learns which payments the list answered for, and what it said.
        self.answers = answers
        self._queue: asyncio.Queue[_Fetched] = asyncio.Queue(maxsize=deps.settings.list_buffer_pages)
        # What stopped the list: a fetching error is kept until the pages before it are absorbed.
        self._error: Exception | None = None

    async def run(self) -> None:
        """Fetch, read and absorb the list; advance the watermark unless the list could not be read."""
        start, end = self.span or (await self._window_start(), self.now)
        self.stats.window_start = start
        try:
            async with asyncio.TaskGroup() as stages:
                fetching = stages.create_task(self._fetch(start, end))
                stages.create_task(self._read_and_absorb(fetching))
        except BaseExceptionGroup as failed:
            # Only reading and absorbing raise (fetching keeps its error): that one error, unwrapped.
            self._error = failed.exceptions[0]  # type: ignore[assignment]
        if isinstance(self._error, GatewayError):
            self._list_failed(self._error)
            return
        if self._error is not None:
            raise self._error
        if self.span is not None:
            return
        async with self.deps.engine.begin() as conn:
            await listing_repo.advance_watermark(
                conn, self.port.tenant, self.port.provider.value, self.port.list_name, self.now
            )

    async def _window_start(self) -> datetime:
        """Since when to read: the watermark less an overlap, else just before the oldest open payment."""
        s, port, now = self.deps.settings, self.port, self.now
        overlap = timedelta(
            seconds=s.paystack_list_overlap_seconds
            if port.provider is Provider.PAYSTACK
            else s.list_overlap_seconds
        )
        async with self.deps.engine.connect() as conn:
            mark = await listing_repo.watermark(conn, port.tenant, port.provider.value, port.list_name)
            oldest = (
                None
                if mark
                else await checks_repo.oldest_open_payment(conn, port.tenant, port.provider.value)
            )
        if mark is not None:
            start = mark - overlap
        elif oldest is not None:  # a payment may have been paid before it was registered
            start = oldest - timedelta(seconds=s.first_window_margin_seconds)
        else:
            start = now - overlap
        return max(start, now - timedelta(seconds=s.initial_lookback_seconds))

    async def _fetch(self, start: datetime, end: datetime) -> None:
        """The fetch stage: queue each page with its payments, marked as touched by the list."""
        try:
            async for page in self.port.list_pages(start, end):
                known, touched = await _touch_listed(self.deps, self.port, page, self.now, self.window)
                if self.answers is not None:
                    self.answers.touched |= touched
                await self._queue.put((page, known))
                self.stats.pages += 1
        except Exception as exc:  # noqa: BLE001 - raised by `run` once the pages before it are absorbed
            self._error = exc
        finally:
            self.fetched.set()

    async def _read_and_absorb(self, fetching: asyncio.Task[None]) -> None:
        """The read and absorb stage: one batch read in the worker while the one before is absorbed."""
        reading: asyncio.Future[list[list[Listed]]] | None = None
        try:
            pages, previous = await self._next_batch(fetching), None
            while pages or previous:
                reading = asyncio.ensure_future(_read_listed(self.deps, self.port, pages)) if pages else None
                if previous is not None:
                    await _absorb_listed(
                        self.deps,
                        self.port,
                        previous[0],
                        await previous[1],
                        self.now,
                        self.window,
                        self.stats,
                        self.answers,
                    )
                previous = (pages, reading) if reading is not None else None
                pages = await self._next_batch(fetching) if reading is not None else []
        finally:
            if reading is not None:
                reading.cancel()
                with contextlib.suppress(BaseException):
                    await reading

    async def _next_batch(self, fetching: asyncio.Task[None]) -> list[_Fetched]:
        """Fetched pages, up to a batch's worth; empty once fetching has ended and all were taken."""
        pages: list[_Fetched] = []
        if self._queue.empty() and not fetching.done():
            getter = asyncio.ensure_future(self._queue.get())
            await asyncio.wait({getter, fetching}, return_when=asyncio.FIRST_COMPLETED)
            if getter.done() and not getter.cancelled():
                pages.append(getter.result())
            else:
                getter.cancel()
        while not self._queue.empty() and sum(len(p.refs) for p, _ in pages) < self.deps.settings.list_batch:
            pages.append(self._queue.get_nowait())
        return pages

    def _list_failed(self, exc: GatewayError) -> None:
        """The gateway would not give the list: counted, and the sweep is partial."""
        self.stats.gateway_errors += 1
        self.stats.list_error = f"{exc.code}: {str(exc)[:200]}"
        metrics.GATEWAY_ERRORS.labels(self.port.provider.value, exc.code).inc()
        log.warning(
            "reconcile.list.failed",
            tenant=self.port.tenant,
            provider=self.port.provider.value,
            error=exc.code,
        )


async def _touch_listed(
    deps: Deps, port: Port, page: ListedPage, now: datetime, window: ListWindow
) -> tuple[dict[str, uuid.UUID], set[uuid.UUID]]:
    """Mark the payments a fetched page is about (the list answers for them); its references' payments,
    and those payments."""
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
    return known, touched


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
    kept: ListAnswers | None = None,
) -> None:
    """Publish the observations of read pages, and note each payment's newest answer (in `kept` too)."""
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
        # A bulk check settles a payment only by an answer that names one of its registered references.
        named = pid is not None and any(known.get(ref) == pid for ref in item.refs)
        if kept is not None and named and pid is not None and item.status is not None:
            kept.newest.setdefault(pid, item)
    # What paysync shows before the list's observations go out: the projector may apply them at once,
    # and a payment read afterwards would look as if the list had told nothing new (no fix, no drift).
    async with deps.engine.connect() as conn:
        rows = await listing_repo.payments_by_id(conn, newest)
    targets = {pid: target_of(row) for pid, row in rows.items()}
    # Every mapped observation goes out, as its webhook would have: the projector parks unknown ones.
    await deps.outbound.records([(item.key, item.value) for item in batch])
    metrics.OBSERVATIONS.labels(port.provider.value, "list").inc(len(batch))
    stats.observations += len(batch)
    async with deps.engine.begin() as conn:
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
            if len(stats.recovered) < MAX_RECOVERED:
                stats.recovered.append(str(pid))
        findings += drift.drift_between(target, item, current=current)
    await raise_all(deps, findings, stats)


def _closes(local: UnifiedStatus | None, said: UnifiedStatus | None) -> bool:
    """Whether a list's answer ends a payment's checks without a call of its own."""
    if not resolved(said) or said is None:
        return False
    return not (local is not None and local.money_moved and not said.money_moved)
