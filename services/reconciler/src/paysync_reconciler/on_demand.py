"""On-demand checks: take a targeted request on once, check its payments at on-demand priority, store and
send the reply.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import time
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta

import structlog
from pydantic import ValidationError

from paysync_core.contracts import PaymentObservation, ReconcileReply, ReconcileRequest
from paysync_core.db.engine import no_transaction
from paysync_core.errors import GatewayError, ProviderNotConfigured
from paysync_reconciler import drift, failures, metrics
from paysync_reconciler.alerts import raise_all
from paysync_reconciler.budget import Priority, priority
from paysync_reconciler.bulk_check import ask_in_bulk
from paysync_reconciler.failures import CheckFailed
from paysync_reconciler.models import RunStats, Target
from paysync_reconciler.ports import Answer, AnswerFrom, Deps, ask, target_of
from paysync_reconciler.replies import build_reply
from paysync_reconciler.repository import checks as checks_repo
from paysync_reconciler.repository import payments as payments_repo
from paysync_reconciler.repository import requests as requests_repo
from paysync_reconciler.runner import TaskRunner
from paysync_reconciler.schedule import resolved

log = structlog.get_logger()

_ON_DEMAND_OBSERVATIONS = metrics.OBSERVATIONS.labels("any", "on_demand")

#: The reason a follow-up link shows for a stored request no version of the check could read.
UNREADABLE = "the stored request could not be read; ask for the check again"


async def handle_request(deps: Deps, runner: TaskRunner, request: ReconcileRequest) -> str:
    """Take a targeted check on (or replay its stored reply) and start it in the background."""
    values = {
        "request_id": request.request_id,
        "tenant": request.tenant,
        "kind": request.kind,
        "request": request.model_dump(mode="json"),
    }
    # Without a transaction: most requests are new, one INSERT; the steps after a conflict are single
    # guarded statements, each atomic by itself, which at READ COMMITTED a transaction would not change
    # (it would only hold the row's lock a moment longer) but BEGIN and COMMIT cost two round trips.
    async with no_transaction(deps.engine) as conn:
        if not await deps.tenants.exists(conn, request.tenant):
            return "unknown_tenant"  # not ours to answer (api-gateway only asks for its tenants)
        s = deps.settings
        state, stored = await requests_repo.start_request(
            conn, values, deps.me, s.request_lease_seconds, s.request_max_attempts
        )
    if state == "completed":
        if request.reply_topic and stored:
            await deps.outbound.reply(request.reply_topic, ReconcileReply.model_validate(stored))
        return "replayed"
    if state == "busy" or not _start(deps, runner, request):
        return "busy"
    return state


def _start(deps: Deps, runner: TaskRunner, request: ReconcileRequest) -> bool:
    """Queue the check in its tenant's lane (bulk checks in a lane of their own), its lease kept while
    it waits for a turn; False if it is queued or running already."""
    bulk = request.kind == "bulk"
    s = deps.settings
    return runner.start(
        request.request_id,
        functools.partial(answer_request, deps, request),
        lane=(request.tenant, bulk),
        lane_limit=s.max_concurrent_bulk_checks_per_tenant if bulk else s.max_concurrent_requests_per_tenant,
        while_waiting=functools.partial(_keep_lease, deps, request.request_id),
    )


async def recover_requests(deps: Deps, runner: TaskRunner, limit: int = 20) -> int:
    """Take over requests whose worker died or whose attempt failed (its lease ran out) and answer them;
    those out of attempts end failed."""
    s = deps.settings
    async with deps.engine.begin() as conn:
        given_up = await requests_repo.fail_abandoned_requests(conn, s.request_max_attempts)
        found = await requests_repo.claim_orphaned_requests(
            conn, deps.me, s.request_lease_seconds, limit, s.request_max_attempts
        )
    if given_up:
        metrics.REQUESTS.labels("any", "failed").inc(given_up)
        log.warning("reconcile.request.abandoned", count=given_up, attempts=s.request_max_attempts)
    started = 0
    for row in found:
        request = await _readable(deps, row.request_id, row.request)
        if request is not None:
            started += _start(deps, runner, request)
    return started


async def _readable(deps: Deps, request_id: str, stored: object) -> ReconcileRequest | None:
    """The stored request, or None after recording it failed: one that cannot be read (written by an
    older version, or by hand) must not stop the recovery of every other tenant's requests."""
    try:
        return ReconcileRequest.model_validate(stored)
    except ValidationError as exc:
        async with deps.engine.begin() as conn:
            await requests_repo.fail_unreadable_request(conn, request_id, deps.me, UNREADABLE)
        metrics.REQUESTS.labels("any", "failed").inc()
        log.warning("reconcile.request.unreadable", request_id=request_id, problems=exc.error_count())
        return None


async def forget_old_records(deps: Deps) -> int:
    """Delete answered requests and finished ticks older than `keep_records_hours`; how many."""
    before = deps.clock() - timedelta(hours=deps.settings.keep_records_hours)
    async with deps.engine.begin() as conn:
        return await requests_repo.purge_finished(conn, before)


async def answer_request(deps: Deps, request: ReconcileRequest) -> ReconcileReply | None:
    """Check the payments at on-demand priority, store the reply and send it (if someone awaits it).

    A check that fails as a whole is tried again when its lease ends, `request_max_attempts` times in
    all; then it is recorded as failed with its reason (None is returned).
    """
    started = time.perf_counter()
    async with _lease_kept(deps, request.request_id):
        level = {"confirm_callback": Priority.CONFIRM, "bulk": Priority.BULK}.get(
            request.kind, Priority.ON_DEMAND
        )
        try:
            with priority(level):
                reply = await _check_request(deps, request)
        except Exception as exc:  # noqa: BLE001 - bounded: recorded, retried after its lease, then failed
            await _attempt_failed(deps, request, exc)
            return None
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


async def _attempt_failed(deps: Deps, request: ReconcileRequest, exc: Exception) -> None:
    """One attempt at a request failed: logged once by type, counted; after the last, recorded failed."""
    reason = failures.reason_of(exc)
    async with deps.engine.begin() as conn:
        final = await requests_repo.fail_request(
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
    """Renew the request's lease every third of it, while it waits for its turn and while it runs."""
    while True:
        await asyncio.sleep(deps.settings.request_lease_seconds / 3)
        await _renew_lease(deps, request_id)


async def _renew_lease(deps: Deps, request_id: str) -> None:
    """Extend the lease once; a failure is let be (the next renewal follows, or a takeover)."""
    with contextlib.suppress(Exception):
        async with deps.engine.begin() as conn:
            await requests_repo.renew_lease(conn, request_id, deps.me, deps.settings.request_lease_seconds)


async def _renew_now_and_on(deps: Deps, request_id: str) -> None:
    await _renew_lease(deps, request_id)
    await _keep_lease(deps, request_id)


@contextlib.asynccontextmanager
async def _lease_kept(deps: Deps, request_id: str) -> AsyncIterator[None]:
    """The request's lease renewed while the block runs, every third of it.

    Most checks (a callback's confirmation: one query) end long before the first renewal is due: the
    renewing task is only created when it is, a timer until then.
    """
    renewing: list[asyncio.Task[None]] = []
    loop = asyncio.get_running_loop()
    due = loop.call_later(
        deps.settings.request_lease_seconds / 3,
        lambda: renewing.append(loop.create_task(_renew_now_and_on(deps, request_id))),
    )
    try:
        yield
    finally:
        due.cancel()
        for task in renewing:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def _targets_of(deps: Deps, request: ReconcileRequest) -> list[Target]:
    async with no_transaction(deps.engine) as conn:
        if request.kind == "entity":
            if not request.domain or not request.entity_id:
                return []
            rows = await payments_repo.payments_of_entity(
                conn, request.tenant, request.domain, request.entity_id
            )
            return [target_of(r) for r in rows]
        if request.kind == "bulk":
            return [
                target_of(r)
                for r in await payments_repo.open_payments(conn, request.tenant, deps.settings.bulk_limit)
            ]
        provider = request.provider.value if request.provider else None
        by_ref = await payments_repo.payments_by_refs(conn, request.tenant, provider, request.refs)
    targets: list[Target] = []
    seen: set[uuid.UUID] = set()
    for ref in dict.fromkeys(request.refs):
        row = by_ref.get(ref)
        if row is not None:
            if row.id not in seen:
                seen.add(row.id)
                target = target_of(row)
                if request.kind == "confirm_callback":  # ask about the push the callback answers: a
                    # retried M-Pesa payment's later pushes are aliases of it, each with its own outcome
                    target = dataclasses.replace(target, provider_ref=ref)
                targets.append(target)
        elif request.provider is not None:  # the gateway may know it even though paysync does not
            targets.append(Target(None, request.tenant, request.provider, ref))
    return targets


async def _check_request(deps: Deps, request: ReconcileRequest) -> ReconcileReply:
    """Ask the gateways, publish what they said (durably, before the request can end completed), raise
    the drift they show, then end the schedules of the payments found ended and complete the request
    atomically (one statement, or one transaction for the awaited and the largest): a crash before it
    leaves the request to be taken over after its lease.

    Only a request that someone awaits (it has a reply topic: api-gateway's) waits for the projector
    and reads the payments' statuses after, so its rows are paid when its reply says so. One without
    (the normalizer's confirmations of M-Pesa callbacks) is stored with what is known at once: what
    was checked and the errors, no statuses after (`status_after` none, nothing counted updated).
    """
    targets = await _targets_of(deps, request)
    listed: set[str] = set()  # observations a list published for payments it settled (bulk checks)
    if request.kind == "bulk":
        answers, listed = await ask_in_bulk(deps, targets)
    else:
        answers = await _ask_all(deps, targets)
    observations = [a.observation for a in answers if a.observation is not None]
    await deps.outbound.observations(observations)
    _ON_DEMAND_OBSERVATIONS.inc(len(observations))
    failed = [
        drift.check_failed(t, a.error.reason)
        for t, a in zip(targets, answers, strict=True)
        if t.payment_id is not None and isinstance(a.error, CheckFailed)
    ]
    answered = [
        (t, a.observation)
        for t, a in zip(targets, answers, strict=True)
        if t.payment_id is not None and a.observation is not None
    ]
    findings, ended = _conclusions(answered, failed)
    await raise_all(deps, findings, RunStats())
    awaited = bool(request.reply_topic)
    if awaited:
        await _wait_applied(deps, request.tenant, listed | {o.observation_id for _, o in answered})
    else:  # nobody reads statuses: the schedules' end and the reply in one statement, if it takes them
        reply = build_reply(request, targets, answers, {}, deps.clock())
        completion = requests_repo.completion(request.request_id, reply.model_dump(mode="json"))
        async with no_transaction(deps.engine) as conn:
            if await checks_repo.resolve_schedules_and(
                conn, ended, deps.clock(), requests_repo.COMPLETE, completion
            ):
                return reply
    async with deps.engine.begin() as conn:
        after = (
            await payments_repo.statuses(conn, [t.payment_id for t in targets if t.payment_id])
            if awaited
            else {}
        )
        await checks_repo.resolve_schedules(conn, ended, deps.clock())
        reply = build_reply(request, targets, answers, after, deps.clock())
        await requests_repo.complete_request(conn, request.request_id, reply.model_dump(mode="json"))
    return reply


async def conclude(
    deps: Deps,
    answered: list[tuple[Target, PaymentObservation]],
    findings: list[drift.Finding],
    stats: RunStats,
) -> None:
    """Raise what the gateway's answers show drifted (and `findings` found on the way), and end the
    check schedules of the payments the answers say have ended."""
    findings, ended = _conclusions(answered, findings)
    await raise_all(deps, findings, stats)
    async with deps.engine.begin() as conn:
        await checks_repo.resolve_schedules(conn, ended, deps.clock())


def _conclusions(
    answered: list[tuple[Target, PaymentObservation]], findings: list[drift.Finding]
) -> tuple[list[drift.Finding], dict[uuid.UUID, str]]:
    """`findings` and the drift the answers show; the payments the answers say have ended."""
    found = list(findings)
    ended: dict[uuid.UUID, str] = {}
    for target, observation in answered:
        found.extend(drift.drift_between(target, observation, current=True))
        if target.payment_id is not None and resolved(observation.status) and observation.status is not None:
            ended[target.payment_id] = observation.status.value
    return found, ended


async def _ask_all(deps: Deps, targets: list[Target]) -> list[Answer]:
    """Ask each target's gateway, several at a time; a gateway the tenant has not configured is an error."""
    slots = asyncio.Semaphore(deps.settings.on_demand_concurrency)

    async def one(target: Target) -> Answer:
        try:
            port = await deps.gateways.port(target.tenant, target.provider)
        except ProviderNotConfigured as exc:
            return Answer(
                AnswerFrom.ERROR,
                error=GatewayError(str(exc), provider=target.provider.value, retryable=False),
            )
        async with slots:
            return await ask(port, target)

    return list(await asyncio.gather(*(one(t) for t in targets)))


async def _wait_applied(deps: Deps, tenant: str, observation_ids: set[str]) -> bool:
    """Wait (bounded) until the projector has applied these observations, domain rows included."""
    deadline = time.monotonic() + deps.settings.apply_wait_seconds
    pending = set(observation_ids)
    while pending:
        async with no_transaction(deps.engine) as conn:
            pending -= await payments_repo.applied(conn, tenant, pending)
        if not pending:
            return True
        if time.monotonic() >= deadline:
            log.warning("reconcile.request.apply_timeout", tenant=tenant, pending=len(pending))
            return False
        await asyncio.sleep(0.05)
    return True
