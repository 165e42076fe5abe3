"""The reconciler's sweeps (being split by use case: on-demand checks, the scheduler and alerts have their
own modules, re-exported here for the handlers and the composition root)."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import structlog
from sqlalchemy.ext.asyncio import AsyncEngine

from paysync_core.contracts import PaymentObservation, Provider
from paysync_core.domain.status import UnifiedStatus
from paysync_core.errors import GatewayError, ProviderNotConfigured
from paysync_core.providers.clients import BudgetExhausted
from paysync_reconciler import drift, metrics
from paysync_reconciler.alerts import circuit_changed, raise_all, raise_once
from paysync_reconciler.budget import Priority, priority
from paysync_reconciler.failures import CheckFailed
from paysync_reconciler.listing import Listed
from paysync_reconciler.models import ListedPage, ReconcileTick, RunStats, Target
from paysync_reconciler.on_demand import answer_request, forget_old_records, handle_request, recover_requests
from paysync_reconciler.ports import Answer, Deps, Gateways, Outbound, Port, ask, target_of, utcnow
from paysync_reconciler.repository import checks as checks_repo
from paysync_reconciler.repository import listing as listing_repo
from paysync_reconciler.repository import tenants as tenants_repo
from paysync_reconciler.repository import ticks as ticks_repo
from paysync_reconciler.repository import unrecorded as unrecorded_repo
from paysync_reconciler.runner import TaskRunner
from paysync_reconciler.schedule import CheckSchedule, Next, resolved
from paysync_reconciler.scheduler import SchedulerState, publish_due_ticks

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
            stats.extra["enrolled"] = enrolled = await checks_repo.enroll(
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
def _phase(stats: RunStats, name: str) -> Iterator[None]:
    """Time one phase of a sweep into its stats (`<name>_s`)."""
    started = time.perf_counter()
    try:
        yield
    finally:
        stats.extra[f"{name}_s"] = round(time.perf_counter() - started, 3)


async def _finish_tick(deps: Deps, tick: ReconcileTick, status: str, stats: dict[str, Any]) -> None:
    async with deps.engine.begin() as conn:
        await ticks_repo.finish_tick(conn, tick.tick_id, status, stats)


@contextlib.asynccontextmanager
async def _sweep_lock(engine: AsyncEngine, tenant: str, provider: str) -> AsyncIterator[bool]:
    """A session-level advisory lock on a connection of its own, held for the whole sweep."""
    async with engine.connect() as conn:
        held = await ticks_repo.try_sweep_lock(conn, tenant, provider)
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
    await ticks_repo.release_sweep_lock(conn, tenant, provider)
    await conn.commit()


def _count_run(provider: Provider, stats: RunStats, seconds: float) -> None:
    metrics.SWEEP_SECONDS.labels(provider.value).observe(seconds)
    for name, value in stats.as_json().items():
        if isinstance(value, int) and not isinstance(value, bool):
            metrics.RUN_STATS.labels(provider.value, name).inc(value)
            metrics.LAST_RUN.labels(provider.value, name).set(value)


#: Most in-window aliases a list sweep remembers (a Session's PaymentIntent, a charge).
_MAX_WINDOW_ALIASES = 200_000


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
    deps: Deps, port: Port, page: ListedPage, now: datetime, window: _Window
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


#: Statuses a payment ends in without money having moved: nothing left to ask the gateway.
_ENDED_UNPAID = frozenset({UnifiedStatus.FAILED, UnifiedStatus.CANCELED, UnifiedStatus.EXPIRED})


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
            rows = await checks_repo.claim_due(
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
        targets = [target_of(r) for r in rows]
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
                    checks_repo.release_claims(conn, [t.payment_id for t in targets if t.payment_id])
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
            return await ask(port, target)

    return list(await asyncio.gather(*(one(t) for t in targets)))


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
    await raise_all(deps, findings, stats)
    async with deps.engine.begin() as conn:
        await checks_repo.save_outcomes(conn, rows)


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
        rows = await unrecorded_repo.orphaned_successes(
            conn, port.tenant, port.provider.value, older_than, limit=500
        )
        if not rows:
            return
        found = [PaymentObservation.model_validate(r.payload) for r in rows]
        all_refs = [ref for obs in found for ref in obs.refs]
        known = await listing_repo.resolve_refs(conn, port.tenant, port.provider.value, all_refs)
        owned = await unrecorded_repo.parked_aliases(
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
    pid = unrecorded_repo.payment_id_for(obs.tenant, obs.provider.value, obs.provider_ref)
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
        created = await unrecorded_repo.create_payment(conn, values, obs.refs)
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
    await raise_all(deps, [drift.unrecorded(target, obs)], stats)
    return True


__all__ = [
    "Answer",
    "Deps",
    "Gateways",
    "Outbound",
    "Port",
    "SchedulerState",
    "answer_request",
    "circuit_changed",
    "forget_old_records",
    "handle_request",
    "handle_tick",
    "publish_due_ticks",
    "raise_once",
    "recover_requests",
    "sweep",
    "utcnow",
]
