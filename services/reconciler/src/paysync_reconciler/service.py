"""The reconciler's use cases: sweep on ticks, answer targeted checks, raise each drift alert once.

Everything the gateways say becomes a verified RECONCILE observation on the observations topic;
the status-projector applies it. Nothing here imports a framework: the broker, the database
engine and the gateway ports come in through `Deps`.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import structlog
from sqlalchemy.ext.asyncio import AsyncEngine

from paysync_core.contracts import (
    Alert,
    AlertKind,
    CheckedPayment,
    PaymentObservation,
    Provider,
    ReconcileReply,
    ReconcileRequest,
)
from paysync_core.credentials import GatewayCredentials
from paysync_core.domain.status import UnifiedStatus
from paysync_core.errors import GatewayError, ProviderNotConfigured
from paysync_core.providers.clients import BudgetExhausted, NotFoundAtGateway
from paysync_reconciler import drift, failures, metrics
from paysync_reconciler import repository as repo
from paysync_reconciler.budget import Priority, priority
from paysync_reconciler.failures import CheckFailed
from paysync_reconciler.listing import Listed, PageReader, read_inline
from paysync_reconciler.models import ListedPage, ReconcileTick, RunStats, Target, scheduled_tick
from paysync_reconciler.runner import TaskRunner
from paysync_reconciler.schedule import CheckSchedule, Next, resolved
from paysync_reconciler.settings import ReconcilerSettings

log = structlog.get_logger()

#: Statuses a payment ends in without money having moved: nothing left to ask the gateway.
_ENDED_UNPAID = frozenset({UnifiedStatus.FAILED, UnifiedStatus.CANCELED, UnifiedStatus.EXPIRED})
#: Issues that close when their cause goes away, so a recurrence is alerted again.
_REOPENABLE = frozenset({AlertKind.GATEWAY_ERROR})
#: Most in-window aliases a list sweep remembers (a Session's PaymentIntent, a charge).
_MAX_WINDOW_ALIASES = 200_000
#: Enrolments this large make the table's planner statistics stale.
_ANALYZE_AFTER = 5_000


class Port(Protocol):
    """One tenant's account at one gateway."""

    tenant: str
    provider: Provider

    @property
    def can_list(self) -> bool:
        """Whether a list call can answer for many payments."""
        ...

    @property
    def list_name(self) -> str:
        """The list sweep's watermark name."""
        ...

    def calls(self, level: Priority) -> int:
        """Requests sent at one priority so far."""
        ...

    async def check(self, provider_ref: str) -> PaymentObservation:
        """The payment's state now."""
        ...

    def list_pages(self, start: datetime, end: datetime) -> AsyncIterator[ListedPage]:
        """The list for the window, page by page."""
        ...


class Gateways(Protocol):
    """Finds a tenant's gateway ports and credentials."""

    async def port(self, tenant: str, provider: Provider) -> Port:
        """The port, or ProviderNotConfigured."""
        ...

    async def credentials(self, tenant: str) -> GatewayCredentials:
        """The tenant's gateway credentials."""
        ...


class Outbound(Protocol):
    """Where findings go; every call returns once the broker acknowledged."""

    async def observations(self, batch: Sequence[PaymentObservation]) -> None:
        """Publish observations (keyed by payment)."""
        ...

    async def records(self, records: Sequence[tuple[bytes, bytes]]) -> None:
        """Publish observations already serialized, as (key, value)."""
        ...

    async def alert(self, alert: Alert) -> None:
        """Publish an alert (keyed by tenant)."""
        ...

    async def reply(self, topic: str, reply: ReconcileReply) -> None:
        """Publish a reply (keyed by tenant)."""
        ...

    async def tick(self, tick: ReconcileTick) -> None:
        """Publish a tick (keyed by tenant:provider)."""
        ...


def utcnow() -> datetime:
    """Now, timezone-aware UTC."""
    return datetime.now(UTC)


@dataclass
class Deps:
    """The use cases' collaborators: one composition root builds them, tests may pass fakes."""

    engine: AsyncEngine
    gateways: Gateways
    outbound: Outbound
    settings: ReconcilerSettings
    clock: Callable[[], datetime] = utcnow
    schedules: dict[Provider, CheckSchedule] = field(default_factory=dict)
    read_pages: PageReader = read_inline

    def __post_init__(self) -> None:
        for provider in Provider:
            self.schedules.setdefault(
                provider,
                CheckSchedule.of(
                    self.settings.schedule_for(provider), self.settings.retry_after_error_seconds
                ),
            )

    @property
    def me(self) -> str:
        """This replica's name in claims and leases."""
        return self.settings.instance_id


@dataclass(slots=True)
class Answer:
    """What a check of one payment came to: the gateway's observation, a list's word, or an error."""

    how: str  # gateway | list | local | error
    status: UnifiedStatus | None = None
    observation: PaymentObservation | None = None
    error: GatewayError | None = None

    @property
    def answered(self) -> bool:
        """True when the gateway (or a list) said something definite about the payment."""
        return self.how != "error" or isinstance(self.error, NotFoundAtGateway)


# -- ticks and sweeps ---------------------------------------------------------------------------


async def handle_tick(deps: Deps, runner: TaskRunner, tick: ReconcileTick) -> str:
    """Take a tick on once (whatever the number of replicas or schedulers) and start its sweep."""
    async with deps.engine.begin() as conn:
        if not await repo.tenant_exists(conn, tick.tenant):
            return "unknown_tenant"
        fresh = await repo.record_tick(
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
        async with _sweep_lock(deps.engine, tick.tenant, provider.value) as held:
            if not held:
                status = "skipped"
                stats.extra["reason"] = "another replica is sweeping this account"
            else:
                with priority(Priority.SWEEP):
                    await _sweep_locked(deps, tick.tenant, provider, stats)
                if stats.extra.get("list_error"):
                    status = "partial"
    except ProviderNotConfigured:
        status = "skipped"
        stats.extra["reason"] = f"{provider.value} is not configured for this tenant"
    except asyncio.CancelledError:
        status = "cancelled"
        raise
    except Exception as exc:  # noqa: BLE001 - recorded on the tick; the next tick resumes from the database
        status = "failed"
        stats.extra["error"] = f"{type(exc).__name__}: {str(exc)[:300]}"
        bound.exception("reconcile.sweep.failed")
    finally:
        seconds = time.perf_counter() - started
        stats.extra["seconds"] = round(seconds, 3)
        with contextlib.suppress(Exception):
            await asyncio.shield(_finish_tick(deps, tick, status, stats.as_json()))
        _count_run(provider, stats, seconds)
        bound.info("reconcile.sweep.completed", status=status, **stats.as_json())
    return stats


async def _sweep_locked(deps: Deps, tenant: str, provider: Provider, stats: RunStats) -> None:
    port = await deps.gateways.port(tenant, provider)
    schedule = deps.schedules[provider]
    with _phase(stats, "enroll"):
        async with deps.engine.begin() as conn:
            stats.extra["enrolled"] = enrolled = await repo.enroll(
                conn, tenant, provider.value, schedule.delays[0]
            )
        if enrolled >= _ANALYZE_AFTER:
            await _analyze(deps.engine)
    now = deps.clock()
    window = _Window()
    calls_before = port.calls(Priority.SWEEP)
    try:
        if port.can_list:
            # Once the list is fetched, it is known which payments it answers for: the others are
            # checked one by one while the listed pages are still being read and published.
            fetched = asyncio.Event()
            listing = asyncio.create_task(_list_sweep(deps, port, now, window, stats, fetched))
            try:
                with _phase(stats, "fetch"):
                    await _first_of(fetched, listing)
                with _phase(stats, "unlisted_checks"):
                    await _scheduled_checks(deps, port, schedule, now, stats, unlisted_only=True)
                await listing
            finally:
                if not listing.done():
                    listing.cancel()
                with contextlib.suppress(BaseException):
                    await listing
        with _phase(stats, "checks"):
            await _scheduled_checks(deps, port, schedule, now, stats)
        with _phase(stats, "unrecorded"):
            await _record_orphaned_successes(deps, port, window, stats)
    finally:
        stats.gateway_calls = port.calls(Priority.SWEEP) - calls_before


async def _analyze(engine: AsyncEngine) -> None:
    """Fresh planner statistics after a large enrolment, so per-batch updates use the primary key."""
    try:
        async with engine.begin() as conn:
            await repo.analyze_checks(conn)
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
def _phase(stats: RunStats, name: str) -> Iterator[None]:
    """Time one phase of a sweep into its stats (`<name>_s`)."""
    started = time.perf_counter()
    try:
        yield
    finally:
        stats.extra[f"{name}_s"] = round(time.perf_counter() - started, 3)


async def _finish_tick(deps: Deps, tick: ReconcileTick, status: str, stats: dict[str, Any]) -> None:
    async with deps.engine.begin() as conn:
        await repo.finish_tick(conn, tick.tick_id, status, stats)


@contextlib.asynccontextmanager
async def _sweep_lock(engine: AsyncEngine, tenant: str, provider: str) -> AsyncIterator[bool]:
    """A session-level advisory lock on a connection of its own, held for the whole sweep."""
    async with engine.connect() as conn:
        held = await repo.try_sweep_lock(conn, tenant, provider)
        await conn.commit()
        try:
            yield held
        finally:
            if held:
                try:
                    await asyncio.shield(_unlock(conn, tenant, provider))
                except BaseException:
                    await conn.invalidate()  # never hand a connection that holds the lock back to the pool
                    raise


async def _unlock(conn: Any, tenant: str, provider: str) -> None:
    await repo.release_sweep_lock(conn, tenant, provider)
    await conn.commit()


@dataclass(slots=True)
class _Window:
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


async def _list_sweep(
    deps: Deps, port: Port, now: datetime, window: _Window, stats: RunStats, fetched: asyncio.Event
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
        mark = await repo.watermark(conn, port.tenant, port.provider.value, name)
        oldest = None if mark else await repo.oldest_open_payment(conn, port.tenant, port.provider.value)
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
        await repo.advance_watermark(conn, port.tenant, port.provider.value, name, now)


async def _touch_listed(
    deps: Deps, port: Port, page: ListedPage, now: datetime, window: _Window
) -> dict[str, uuid.UUID]:
    """Mark the payments a fetched page is about (the list answers for them); its references' payments."""
    refs = {r for item in page.refs for r in item if r not in window.aliases}
    touched: set[uuid.UUID] = set()
    async with deps.engine.begin() as conn:
        known = await repo.resolve_refs(conn, port.tenant, port.provider.value, refs)
        for item in page.refs:
            pid = window.payment_of(item, known)
            if pid is not None:
                touched.add(pid)
                window.learn([r for r in item if r not in known], pid)
        await repo.touch_listed(conn, touched, now)
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
    window: _Window,
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
            known |= await repo.resolve_refs(conn, port.tenant, port.provider.value, refs)
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
        rows = await repo.payments_by_id(conn, newest)
        targets = {pid: _target(row) for pid, row in rows.items()}
        # A due check the list answers for good ends here, unless the answer would un-see money
        # paysync shows as moved: that one is for the gateway to confirm, by a direct check.
        answers = {
            pid: (item.status.value, _closes(targets[pid].status, item.status))
            for pid, item in newest.items()
            if item.status is not None and pid in targets
        }
        noted = await repo.note_listed(conn, answers, now)
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
    await _raise_all(deps, findings, stats)


def _closes(local: UnifiedStatus | None, said: UnifiedStatus | None) -> bool:
    """Whether a list's answer ends a payment's checks without a call of its own."""
    if not resolved(said) or said is None:
        return False
    return not (local is not None and local.money_moved and not said.money_moved)


async def _scheduled_checks(
    deps: Deps,
    port: Port,
    schedule: CheckSchedule,
    now: datetime,
    stats: RunStats,
    *,
    unlisted_only: bool = False,
) -> None:
    """Check every payment whose step is due (only those no list touched, if so asked), each claimed once."""
    s = deps.settings
    while True:
        async with deps.engine.begin() as conn:
            rows = await repo.claim_due(
                conn,
                port.tenant,
                port.provider.value,
                due_by=now,
                owner=deps.me,
                lease=s.claim_lease_seconds,
                limit=s.claim_batch,
                not_listed_at=now if unlisted_only else None,
            )
        if not rows:
            return
        targets = [_target(r) for r in rows]
        listed = {
            r.payment_id: UnifiedStatus(r.listed_status)
            for r in rows
            if r.listed_at == now and r.listed_status
        }
        try:
            answers = await _answer_due(port, targets, listed, s.check_concurrency)
            await _settle_due(deps, port, schedule, targets, answers, stats)
        except BaseException:
            async with deps.engine.begin() as conn:
                await asyncio.shield(
                    repo.release_claims(conn, [t.payment_id for t in targets if t.payment_id])
                )
            raise


async def _answer_due(
    port: Port, targets: list[Target], listed: dict[uuid.UUID, UnifiedStatus], concurrency: int
) -> list[Answer]:
    """Each due payment's answer: from a list at this sweep if one answered, else from the gateway."""
    slots = asyncio.Semaphore(concurrency)

    async def one(target: Target) -> Answer:
        if target.status in _ENDED_UNPAID:
            return Answer("local", target.status)  # ended without money moving: nothing to confirm
        said = listed.get(target.payment_id) if target.payment_id else None
        # A list's word stands, unless it would un-see money paysync shows as moved: that needs the gateway.
        if said is not None and not (target.status and target.status.money_moved and not said.money_moved):
            return Answer("list", said)
        async with slots:
            return await _ask(port, target)

    return list(await asyncio.gather(*(one(t) for t in targets)))


async def _ask(port: Port, target: Target) -> Answer:
    try:
        observation = await port.check(target.provider_ref)
    except GatewayError as exc:
        return Answer("error", error=exc)
    except Exception as exc:  # noqa: BLE001 - one payment's problem never fails the sweep or request
        return Answer("error", error=failures.check_failed(target, exc))
    return Answer("gateway", observation.status, observation)


async def _settle_due(
    deps: Deps,
    port: Port,
    schedule: CheckSchedule,
    targets: list[Target],
    answers: list[Answer],
    stats: RunStats,
) -> None:
    """Publish what the gateway said, raise what drifted, and move each payment's schedule on."""
    fetched = [a.observation for a in answers if a.observation is not None]
    await deps.outbound.observations(fetched)
    metrics.OBSERVATIONS.labels(port.provider.value, "direct").inc(len(fetched))
    now = deps.clock()
    rows: list[dict[str, Any]] = []
    findings: list[drift.Finding] = []
    for target, answer in zip(targets, answers, strict=True):
        if not answer.answered:
            error = answer.error
            assert error is not None
            if not isinstance(error, BudgetExhausted):  # our own pacing is not the gateway's fault
                stats.gateway_errors += 1
                metrics.GATEWAY_ERRORS.labels(port.provider.value, error.code).inc()
            if isinstance(error, CheckFailed):
                rows.append(_after_check_failed(schedule, target, error, now, stats, findings))
                continue
            move = schedule.after_error(target.step, now)
            rows.append(_outcome(target, move.step, move.due_at, None, error.code, made=0, now=now))
            continue
        if answer.how == "local":
            stats.extra["ended_unpaid"] = stats.extra.get("ended_unpaid", 0) + 1
        else:
            stats.checked += 1
        if answer.how == "gateway" or answer.error is not None:
            stats.extra["direct"] = stats.extra.get("direct", 0) + 1
            metrics.CHECKED.labels(port.provider.value, "direct").inc()
            if answer.error is not None:
                stats.gateway_errors += 1
                metrics.GATEWAY_ERRORS.labels(port.provider.value, answer.error.code).inc()
        if answer.how == "gateway" and drift.is_fix(target.status, answer.status):
            stats.fixed += 1  # a list's answers were counted when the list was read
        if answer.observation is not None:
            findings += drift.drift_between(target, answer.observation, current=True)
        move = schedule.after_answer(target.step, answer.status, now)
        error_code = answer.error.code if answer.error is not None else None
        if move.next is Next.STALE:
            stats.gave_up += 1
            findings.append(
                drift.stale(
                    target, answer.status, move.step, str(answer.error)[:200] if answer.error else None
                )
            )
        rows.append(
            _outcome(
                target,
                move.step,
                move.due_at,
                answer.status,
                error_code,
                made=1 if answer.how != "local" else 0,
                now=now,
                done=move.next is Next.DONE,
                gave_up=move.next is Next.STALE,
            )
        )
    await _raise_all(deps, findings, stats)
    async with deps.engine.begin() as conn:
        await repo.save_outcomes(conn, rows)


def _after_check_failed(
    schedule: CheckSchedule,
    target: Target,
    error: CheckFailed,
    now: datetime,
    stats: RunStats,
    findings: list[drift.Finding],
) -> dict[str, Any]:
    """A payment whose check failed for a reason of its own: one sync issue, and it moves along its
    schedule as if unanswered (retrying it every minute would only fail again), stale after the last step."""
    findings.append(drift.check_failed(target, error.reason))
    move = schedule.after_answer(target.step, None, now)
    if move.next is Next.STALE:
        stats.gave_up += 1
        findings.append(drift.stale(target, None, move.step, error.reason))
    gave_up = move.next is Next.STALE
    return _outcome(target, move.step, move.due_at, None, error.code, made=1, now=now, gave_up=gave_up)


def _outcome(
    target: Target,
    step: int,
    due_at: datetime | None,
    status: UnifiedStatus | None,
    error: str | None,
    *,
    made: int,
    now: datetime,
    done: bool = False,
    gave_up: bool = False,
) -> dict[str, Any]:
    return {
        "pid": target.payment_id,
        "step": step,
        "next_check_at": due_at,
        "made": made,
        "checked_at": now if made else None,
        "status": status.value if status else None,
        "error": error,
        "done_at": now if done else None,
        "gave_up_at": now if gave_up else None,
    }


async def _record_orphaned_successes(deps: Deps, port: Port, window: _Window, stats: RunStats) -> None:
    """Paid at the gateway, no payment record: verified successes parked past the grace period."""
    s = deps.settings
    older_than = deps.clock() - timedelta(seconds=s.unrecorded_grace_seconds)
    async with deps.engine.connect() as conn:
        rows = await repo.orphaned_successes(conn, port.tenant, port.provider.value, older_than, limit=500)
        if not rows:
            return
        found = [PaymentObservation.model_validate(r.payload) for r in rows]
        all_refs = [ref for obs in found for ref in obs.refs]
        known = await repo.resolve_refs(conn, port.tenant, port.provider.value, all_refs)
        owned = await repo.parked_aliases(
            conn, port.tenant, port.provider.value, [o.provider_ref for o in found]
        )
    roots: dict[str, PaymentObservation] = {}
    for obs in sorted(found, key=lambda o: (o.provider_time, o.observation_id)):
        if any(ref in known or ref in window.aliases for ref in obs.refs) or obs.provider_ref in owned:
            continue  # its payment is known (the projector will match it), or it belongs to another root
        roots.setdefault(obs.provider_ref, obs)
    for obs in roots.values():
        if await _create_unrecorded(deps, obs, stats):
            stats.created += 1


async def _create_unrecorded(deps: Deps, obs: PaymentObservation, stats: RunStats) -> bool:
    """Create the record a gateway success has no match for, from the gateway's data; alert once."""
    pid = repo.payment_id_for(obs.tenant, obs.provider.value, obs.provider_ref)
    entity = obs.entity
    values = {
        "id": pid,
        "tenant_id": obs.tenant,
        "provider": obs.provider.value,
        "provider_ref": obs.provider_ref,
        "domain": entity.domain if entity else None,
        "entity_id": entity.entity_id if entity else None,
        "amount_minor": obs.amount_minor,
        "currency": obs.currency,
        "registered": False,
        "metadata": {
            "created_by": "reconciler",
            "reason": "paid at the gateway without a payment record",
            "observation_id": obs.observation_id,
        },
    }
    async with deps.engine.begin() as conn:
        created = await repo.create_payment(conn, values, obs.refs)
    if not created:
        return False
    target = Target(
        pid,
        obs.tenant,
        obs.provider,
        obs.provider_ref,
        None,
        obs.amount_minor,
        obs.currency,
        values["domain"],
        values["entity_id"],
    )
    log.warning(
        "reconcile.payment.unrecorded",
        tenant=obs.tenant,
        provider=obs.provider.value,
        provider_ref=obs.provider_ref,
    )
    await _raise_all(deps, [drift.unrecorded(target, obs)], stats)
    return True


# -- alerts ------------------------------------------------------------------------------------


async def _raise_all(deps: Deps, findings: Sequence[drift.Finding], stats: RunStats) -> None:
    """Raise each finding's alert once: one transaction for many, the re-openable ones one by one."""
    stats.issues_found += len(findings)
    raised = 0
    once = [f for f in findings if f.kind not in _REOPENABLE]
    if once:
        now = deps.clock()
        alerts = {}
        for finding in once:
            alert = finding.alert(now)
            alerts.setdefault(alert.alert_id, (finding, alert))
        async with deps.engine.begin() as conn:
            new = await repo.open_issues(conn, [f.issue_row(a) for f, a in alerts.values()])
            # Inside the transaction: an issue is never recorded without its alert having gone out.
            await asyncio.gather(*(deps.outbound.alert(alerts[i][1]) for i in new))
        for alert_id in new:
            _raised(alerts[alert_id][1])
        raised += len(new)
    for finding in findings:
        if finding.kind in _REOPENABLE:
            raised += await raise_once(deps, finding)
    if raised:
        stats.extra["alerts_raised"] = stats.extra.get("alerts_raised", 0) + raised


def _raised(alert: Alert) -> None:
    metrics.ISSUES.labels(alert.kind.value).inc()
    log.warning(
        "reconcile.issue.raised",
        tenant=alert.tenant,
        kind=alert.kind.value,
        alert_id=alert.alert_id,
        provider_ref=alert.provider_ref,
    )


async def raise_once(deps: Deps, finding: drift.Finding) -> bool:
    """Record the issue and publish its alert, unless it is known already (its alert went out before)."""
    now = deps.clock()
    subject = finding.subject or str(finding.target.payment_id)
    async with deps.engine.begin() as conn:
        occurrence = finding.occurrence
        if finding.kind in _REOPENABLE:
            occurrence = (
                await repo.issues_so_far(conn, finding.target.tenant, finding.kind.value, subject) + 1
            )
        alert = finding.alert(now, occurrence=occurrence)
        if not await repo.open_issue(conn, finding.issue_row(alert)):
            return False
        await deps.outbound.alert(alert)  # inside the transaction: no record without its alert
    _raised(alert)
    return True


async def circuit_changed(deps: Deps, tenant: str, provider: Provider, opened: bool) -> None:
    """A tenant's circuit to a gateway opened (alert once) or closed again (resolve, so a relapse alerts)."""
    try:
        if opened:
            finding = drift.circuit_opened(tenant, provider, deps.settings.breaker_threshold, occurrence=1)
            await raise_once(deps, finding)
        else:
            async with deps.engine.begin() as conn:
                await repo.resolve_issue(
                    conn, tenant, AlertKind.GATEWAY_ERROR.value, f"circuit:{provider.value}"
                )
    except Exception as exc:  # noqa: BLE001 - reporting must never break the check that noticed
        log.warning(
            "reconcile.circuit.report_failed", tenant=tenant, provider=provider.value, error=repr(exc)
        )


# -- on-demand checks --------------------------------------------------------------------------


async def handle_request(deps: Deps, runner: TaskRunner, request: ReconcileRequest) -> str:
    """Take a targeted check on (or replay its stored reply) and start it in the background."""
    values = {
        "request_id": request.request_id,
        "tenant": request.tenant,
        "kind": request.kind,
        "request": request.model_dump(mode="json"),
    }
    async with deps.engine.begin() as conn:
        if not await repo.tenant_exists(conn, request.tenant):
            return "unknown_tenant"  # not ours to answer (api-gateway only asks for its tenants)
        s = deps.settings
        state, stored = await repo.start_request(
            conn, values, deps.me, s.request_lease_seconds, s.request_max_attempts
        )
    if state == "completed":
        if request.reply_topic and stored:
            await deps.outbound.reply(request.reply_topic, ReconcileReply.model_validate(stored))
        return "replayed"
    if state == "busy" or not runner.start(request.request_id, lambda: answer_request(deps, request)):
        return "busy"
    return state


async def recover_requests(deps: Deps, runner: TaskRunner, limit: int = 20) -> int:
    """Take over requests whose worker died or whose attempt failed (its lease ran out) and answer them;
    those out of attempts end failed."""
    s = deps.settings
    async with deps.engine.begin() as conn:
        given_up = await repo.fail_abandoned_requests(conn, s.request_max_attempts)
        found = await repo.claim_orphaned_requests(
            conn, deps.me, s.request_lease_seconds, limit, s.request_max_attempts
        )
    if given_up:
        metrics.REQUESTS.labels("any", "failed").inc(given_up)
        log.warning("reconcile.request.abandoned", count=given_up, attempts=s.request_max_attempts)
    started = 0
    for payload in found:
        request = ReconcileRequest.model_validate(payload)
        started += runner.start(request.request_id, lambda r=request: answer_request(deps, r))
    return started


async def forget_old_records(deps: Deps) -> int:
    """Delete answered requests and finished ticks older than `keep_records_hours`; how many."""
    before = deps.clock() - timedelta(hours=deps.settings.keep_records_hours)
    async with deps.engine.begin() as conn:
        return await repo.purge_finished(conn, before)


async def answer_request(deps: Deps, request: ReconcileRequest) -> ReconcileReply | None:
    """Check the payments at on-demand priority, wait for the projector, store and send the reply.

    A check that fails as a whole is tried again when its lease ends, `request_max_attempts` times in
    all; then it is recorded as failed with its reason (None is returned).
    """
    keeper = asyncio.create_task(_keep_lease(deps, request.request_id))
    started = time.perf_counter()
    try:
        level = Priority.CONFIRM if request.kind == "confirm_callback" else Priority.ON_DEMAND
        try:
            with priority(level):
                reply = await _check_request(deps, request)
        except Exception as exc:  # noqa: BLE001 - bounded: recorded, retried after its lease, then failed
            await _attempt_failed(deps, request, exc)
            return None
        async with deps.engine.begin() as conn:
            await repo.complete_request(conn, request.request_id, reply.model_dump(mode="json"))
        if request.reply_topic:
            await deps.outbound.reply(request.reply_topic, reply)
        metrics.REQUESTS.labels(request.kind, "answered").inc()
        log.info(
            "reconcile.request.answered",
            tenant=request.tenant,
            kind=request.kind,
            request_id=request.request_id,
            checked=reply.payments_checked,
            updated=reply.payments_updated,
            found_paid=reply.payments_found_paid,
            gateway_errors=reply.gateway_errors,
            seconds=round(time.perf_counter() - started, 3),
        )
        return reply
    finally:
        keeper.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await keeper


async def _attempt_failed(deps: Deps, request: ReconcileRequest, exc: Exception) -> None:
    """One attempt at a request failed: logged once by type, counted; after the last, recorded failed."""
    reason = failures.reason_of(exc)
    async with deps.engine.begin() as conn:
        final = await repo.fail_request(
            conn, request.request_id, deps.me, reason, deps.settings.request_max_attempts
        )
    metrics.REQUESTS.labels(request.kind, "failed" if final else "attempt_failed").inc()
    log.warning(
        "reconcile.request.failed" if final else "reconcile.request.attempt_failed",
        tenant=request.tenant,
        kind=request.kind,
        request_id=request.request_id,
        error=type(exc).__name__,
    )


async def _keep_lease(deps: Deps, request_id: str) -> None:
    every = deps.settings.request_lease_seconds / 3
    while True:
        await asyncio.sleep(every)
        with contextlib.suppress(Exception):
            async with deps.engine.begin() as conn:
                await repo.renew_lease(conn, request_id, deps.me, deps.settings.request_lease_seconds)


async def _targets_of(deps: Deps, request: ReconcileRequest) -> list[Target]:
    async with deps.engine.connect() as conn:
        if request.kind == "entity":
            if not request.domain or not request.entity_id:
                return []
            rows = await repo.payments_of_entity(conn, request.tenant, request.domain, request.entity_id)
            return [_target(r) for r in rows]
        if request.kind == "bulk":
            return [
                _target(r) for r in await repo.open_payments(conn, request.tenant, deps.settings.bulk_limit)
            ]
        provider = request.provider.value if request.provider else None
        by_ref = await repo.payments_by_refs(conn, request.tenant, provider, request.refs)
    targets: list[Target] = []
    seen: set[uuid.UUID] = set()
    for ref in dict.fromkeys(request.refs):
        row = by_ref.get(ref)
        if row is not None:
            if row.id not in seen:
                seen.add(row.id)
                targets.append(_target(row))
        elif request.provider is not None:  # the gateway may know it even though paysync does not
            targets.append(Target(None, request.tenant, request.provider, ref))
    return targets


async def _check_request(deps: Deps, request: ReconcileRequest) -> ReconcileReply:
    targets = await _targets_of(deps, request)
    answers = await _ask_all(deps, targets)
    observations = [a.observation for a in answers if a.observation is not None]
    await deps.outbound.observations(observations)
    metrics.OBSERVATIONS.labels("any", "on_demand").inc(len(observations))
    stats = RunStats()
    findings: list[drift.Finding] = []
    ended: dict[uuid.UUID, str] = {}
    for target, answer in zip(targets, answers, strict=True):
        if target.payment_id is not None and isinstance(answer.error, CheckFailed):
            findings.append(drift.check_failed(target, answer.error.reason))
        if target.payment_id is None or answer.observation is None:
            continue
        findings += drift.drift_between(target, answer.observation, current=True)
        if resolved(answer.status) and answer.status is not None:
            ended[target.payment_id] = answer.status.value
    await _raise_all(deps, findings, stats)
    async with deps.engine.begin() as conn:
        await repo.resolve_schedules(conn, ended, deps.clock())
    waited_for = {
        a.observation.observation_id
        for t, a in zip(targets, answers, strict=True)
        if t.payment_id is not None and a.observation is not None
    }
    await _wait_applied(deps, request.tenant, waited_for)
    async with deps.engine.connect() as conn:
        after = await repo.statuses(conn, [t.payment_id for t in targets if t.payment_id])
    return _reply(request, targets, answers, after, deps.clock())


async def _ask_all(deps: Deps, targets: list[Target]) -> list[Answer]:
    """Ask each target's gateway, several at a time; a gateway the tenant has not configured is an error."""
    slots = asyncio.Semaphore(deps.settings.on_demand_concurrency)

    async def one(target: Target) -> Answer:
        try:
            port = await deps.gateways.port(target.tenant, target.provider)
        except ProviderNotConfigured as exc:
            return Answer(
                "error", error=GatewayError(str(exc), provider=target.provider.value, retryable=False)
            )
        async with slots:
            return await _ask(port, target)

    return list(await asyncio.gather(*(one(t) for t in targets)))


async def _wait_applied(deps: Deps, tenant: str, observation_ids: set[str]) -> bool:
    """Wait (bounded) until the projector has applied these observations, domain rows included."""
    deadline = time.monotonic() + deps.settings.apply_wait_seconds
    pending = set(observation_ids)
    while pending:
        async with deps.engine.connect() as conn:
            pending -= await repo.applied(conn, tenant, pending)
        if not pending:
            return True
        if time.monotonic() >= deadline:
            log.warning("reconcile.request.apply_timeout", tenant=tenant, pending=len(pending))
            return False
        await asyncio.sleep(0.05)
    return True


def _reply(
    request: ReconcileRequest,
    targets: list[Target],
    answers: list[Answer],
    after: dict[uuid.UUID, str],
    now: datetime,
) -> ReconcileReply:
    checked: list[CheckedPayment] = []
    updated = found_paid = errors = 0
    entities: set[tuple[str, str]] = set()
    for target, answer in zip(targets, answers, strict=True):
        before = target.status.value if target.status else None
        status_after = after.get(target.payment_id) if target.payment_id else None
        changed = status_after is not None and status_after != before
        error = None if answer.answered else (str(answer.error) if answer.error else "no answer")[:300]
        if isinstance(answer.error, NotFoundAtGateway):
            error = f"not found at {target.provider.title}"
        errors += error is not None
        updated += changed
        if (
            changed
            and UnifiedStatus(status_after).money_moved
            and not (target.status and target.status.money_moved)
        ):
            found_paid += 1
        if target.domain and target.entity_id:
            entities.add((target.domain, target.entity_id))
        checked.append(
            CheckedPayment(
                payment_id=str(target.payment_id) if target.payment_id else None,
                provider=target.provider,
                provider_ref=target.provider_ref,
                status_before=before,
                status_after=status_after,
                changed=changed,
                error=error,
            )
        )
    return ReconcileReply(
        request_id=request.request_id,
        tenant=request.tenant,
        kind=request.kind,
        entities_checked=len(entities),
        payments_checked=len(targets),
        payments_updated=updated,
        payments_found_paid=found_paid,
        gateway_errors=errors,
        payments=tuple(checked) if request.kind != "bulk" else (),
        completed_at=now,
    )


# -- the scheduler -----------------------------------------------------------------------------


@dataclass
class SchedulerState:
    """What the scheduler loop remembers between rounds."""

    sent: dict[tuple[str, Provider], str] = field(default_factory=dict)  # the last tick per gateway
    unreadable: set[str] = field(default_factory=set)  # tenants whose credentials no key decrypts


async def publish_due_ticks(deps: Deps, state: SchedulerState) -> int:
    """Publish the current cadence slot's tick of every tenant's configured gateway, once per slot."""
    async with deps.engine.connect() as conn:
        tenants = await repo.tenants_with_credentials(conn, deps.settings.scheduler_tenants)
    now, published, sent = deps.clock(), 0, state.sent
    for tenant in tenants:
        try:
            credentials = await deps.gateways.credentials(tenant)
        except Exception as exc:  # noqa: BLE001 - one tenant's unreadable credentials must not stop the others
            if tenant not in state.unreadable:  # said once, not every round: the gauge keeps showing it
                error = type(exc).__name__
                log.warning("reconcile.scheduler.credentials_unreadable", tenant=tenant, error=error)
            state.unreadable.add(tenant)
            metrics.UNREADABLE_TENANTS.set(len(state.unreadable))
            continue
        if tenant in state.unreadable:
            state.unreadable.discard(tenant)
            metrics.UNREADABLE_TENANTS.set(len(state.unreadable))
            log.info("reconcile.scheduler.credentials_readable_again", tenant=tenant)
        for provider in Provider:
            if getattr(credentials, provider.value) is None:
                continue
            tick = scheduled_tick(tenant, provider, deps.settings.cadence_for(provider), now)
            if sent.get((tenant, provider)) == tick.tick_id:
                continue
            async with deps.engine.connect() as conn:
                # A gateway the tenant has not tracked one payment through yet has nothing to sweep.
                if not await repo.has_payments(conn, tenant, provider.value):
                    continue
            await deps.outbound.tick(tick)
            sent[(tenant, provider)] = tick.tick_id
            published += 1
    return published


# -- helpers -----------------------------------------------------------------------------------


def _target(row: Any) -> Target:
    """A payment row (from payments, or a claimed check joined with its payment) as a check target."""
    pid = getattr(row, "payment_id", None) or row.id
    return Target(
        payment_id=pid,
        tenant=row.tenant_id,
        provider=Provider(row.provider),
        provider_ref=row.provider_ref,
        status=UnifiedStatus(row.status) if row.status else None,
        amount_minor=row.amount_minor,
        currency=row.currency,
        domain=row.domain,
        entity_id=row.entity_id,
        step=getattr(row, "step", 0),
    )


def _count_run(provider: Provider, stats: RunStats, seconds: float) -> None:
    metrics.SWEEP_SECONDS.labels(provider.value).observe(seconds)
    for name, value in stats.as_json().items():
        if isinstance(value, int) and not isinstance(value, bool):
            metrics.RUN_STATS.labels(provider.value, name).inc(value)
            metrics.LAST_RUN.labels(provider.value, name).set(value)
