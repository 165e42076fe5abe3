"""Scheduled checks: claim each due payment once, answer it (from a list at this sweep or the gateway),
move its schedule on.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from paysync_core.domain.status import UnifiedStatus
from paysync_core.providers.clients import BudgetExhausted
from paysync_reconciler import drift, metrics
from paysync_reconciler.alerts import raise_all
from paysync_reconciler.failures import CheckFailed
from paysync_reconciler.models import RunStats, Target
from paysync_reconciler.ports import Answer, AnswerFrom, Deps, Port, ask, target_of
from paysync_reconciler.repository import checks as checks_repo
from paysync_reconciler.schedule import CheckSchedule, Next

#: Statuses a payment ends in without money having moved: nothing left to ask the gateway.
_ENDED_UNPAID = frozenset({UnifiedStatus.FAILED, UnifiedStatus.CANCELED, UnifiedStatus.EXPIRED})


async def check_due(
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
            return Answer(AnswerFrom.LOCAL, target.status)  # ended without money moving: nothing to confirm
        said = listed.get(target.payment_id) if target.payment_id else None
        # A list's word stands, unless it would un-see money paysync shows as moved: that needs the gateway.
        if said is not None and not (target.status and target.status.money_moved and not said.money_moved):
            return Answer(AnswerFrom.LIST, said)
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
    settling = _Settling(port.provider.value, schedule, deps.clock(), stats)
    rows = [settling.after(target, answer) for target, answer in zip(targets, answers, strict=True)]
    await raise_all(deps, settling.findings, stats)
    async with deps.engine.begin() as conn:
        await checks_repo.save_outcomes(conn, rows)


@dataclass(slots=True)
class _Settling:
    """One batch of due checks being settled: each payment's schedule row, the drift found on the way."""

    provider: str
    schedule: CheckSchedule
    now: datetime
    stats: RunStats
    findings: list[drift.Finding] = field(default_factory=list)

    def after(self, target: Target, answer: Answer) -> dict[str, Any]:
        """The payment's schedule row after this answer (or the lack of one)."""
        return self._answered(target, answer) if answer.answered else self._unanswered(target, answer)

    def _unanswered(self, target: Target, answer: Answer) -> dict[str, Any]:
        """No answer from the gateway: counted, and the check is tried again later."""
        error = answer.error
        if error is None:
            raise RuntimeError("an unanswered check carries its error")
        if not isinstance(error, BudgetExhausted):  # our own pacing is not the gateway's fault
            self.stats.gateway_errors += 1
            metrics.GATEWAY_ERRORS.labels(self.provider, error.code).inc()
        if isinstance(error, CheckFailed):
            return self._check_failed(target, error)
        move = self.schedule.after_error(target.step, self.now)
        return _outcome(target, move.step, move.due_at, None, error.code, made=0, now=self.now)

    def _answered(self, target: Target, answer: Answer) -> dict[str, Any]:
        """Answered (by the gateway, a list, or its own record): counted, drift found, moved on."""
        stats = self.stats
        if answer.how is AnswerFrom.LOCAL:
            stats.ended_unpaid += 1
        else:
            stats.checked += 1
        if answer.how is AnswerFrom.GATEWAY or answer.error is not None:
            stats.direct += 1
            metrics.CHECKED.labels(self.provider, "direct").inc()
            if answer.error is not None:
                stats.gateway_errors += 1
                metrics.GATEWAY_ERRORS.labels(self.provider, answer.error.code).inc()
        if answer.how is AnswerFrom.GATEWAY and drift.is_fix(target.status, answer.status):
            stats.fixed += 1  # a list's answers were counted when the list was read
        if answer.observation is not None:
            self.findings += drift.drift_between(target, answer.observation, current=True)
        move = self.schedule.after_answer(target.step, answer.status, self.now)
        error_code = answer.error.code if answer.error is not None else None
        if move.next is Next.STALE:
            stats.gave_up += 1
            reason = str(answer.error)[:200] if answer.error else None
            self.findings.append(drift.stale(target, answer.status, move.step, reason))
        return _outcome(
            target,
            move.step,
            move.due_at,
            answer.status,
            error_code,
            made=1 if answer.how is not AnswerFrom.LOCAL else 0,
            now=self.now,
            done=move.next is Next.DONE,
            gave_up=move.next is Next.STALE,
        )

    def _check_failed(self, target: Target, error: CheckFailed) -> dict[str, Any]:
        """A check that failed for a reason of its own: one sync issue, and the payment moves along its
        schedule as if unanswered (retrying it every minute would only fail again), stale after the last
        step."""
        self.findings.append(drift.check_failed(target, error.reason))
        move = self.schedule.after_answer(target.step, None, self.now)
        gave_up = move.next is Next.STALE
        if gave_up:
            self.stats.gave_up += 1
            self.findings.append(drift.stale(target, None, move.step, error.reason))
        return _outcome(
            target, move.step, move.due_at, None, error.code, made=1, now=self.now, gave_up=gave_up
        )


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
