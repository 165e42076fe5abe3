"""Apply a batch of observations: payments, history, domain rows and outbox in one transaction."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from paysync_core import topics
from paysync_core.contracts import PaymentObservation, PaymentStatusChanged
from paysync_core.domains import Domains
from paysync_status_projector.repository import parked
from paysync_status_projector.repository import payments as repo
from paysync_status_projector.service.alerts import raise_mismatch_alerts, raise_refusal_alerts
from paysync_status_projector.service.domain_rows import follow_in_domains
from paysync_status_projector.service.folding import Folded, StagedByKey, fold, payment_values
from paysync_status_projector.service.messages import event_row, now
from paysync_status_projector.service.overrides import raise_override_alerts


@dataclass(slots=True)
class BatchResult:
    """What one batch did."""

    applied: int = 0
    duplicates: int = 0
    parked: int = 0
    alerts: int = 0
    status_changes: list[PaymentStatusChanged] = field(default_factory=list)
    #: An alias this batch bound is named by a parked observation: the unpark can apply it now.
    parked_matched: bool = False

    def add(self, other: BatchResult) -> None:
        """Count another batch's outcome in this one."""
        self.applied += other.applied
        self.duplicates += other.duplicates
        self.parked += other.parked
        self.alerts += other.alerts
        self.status_changes += other.status_changes
        self.parked_matched |= other.parked_matched


async def project(
    engine: AsyncEngine,
    batch: Sequence[PaymentObservation],
    domains: Domains,
    *,
    attempts: int = 5,
    traces: Mapping[Hashable, str] | None = None,
    staged: StagedByKey | None = None,
) -> BatchResult:
    """Apply a batch in one transaction, retried if PostgreSQL reports a deadlock or serialization failure.

    `traces`: the W3C `traceparent` of each observation's span, by (tenant, observation id); a status
    change is stored in the outbox with the one of the observation that caused it. `staged`: what
    folding derives from each observation alone (`folding.stage`), by the same key, if derived ahead.
    """
    for attempt in range(1, attempts + 1):
        try:
            async with engine.begin() as conn:
                return await project_in(conn, batch, domains, traces=traces, staged=staged)
        except DBAPIError as exc:
            if getattr(exc.orig, "sqlstate", None) not in ("40P01", "40001") or attempt == attempts:
                raise
            await asyncio.sleep(0.01 * attempt)
    raise AssertionError("unreachable")


async def project_in(
    conn: AsyncConnection,
    batch: Sequence[PaymentObservation],
    domains: Domains,
    *,
    traces: Mapping[Hashable, str] | None = None,
    staged: StagedByKey | None = None,
) -> BatchResult:
    """Apply observations inside the caller's transaction: payments, history, domain rows, outbox."""
    result = BatchResult()
    unique = list({(o.tenant, o.observation_id): o for o in batch}.values())
    result.duplicates += len(batch) - len(unique)
    refs, locked = await repo.lock_for_batch(
        conn, ((o.tenant, o.provider.value, r) for o in unique for r in o.refs)
    )
    by_payment, orphans = _by_payment(unique, refs)
    await parked.park(conn, orphans)
    result.parked = len(orphans)

    at = now()
    folded = [fold(locked[pid], by_payment[pid], at, staged) for pid in sorted(by_payment)]
    fresh = await repo.record_history(conn, [row for f in folded for row in f.history])
    touched = _count_applied(folded, fresh, result)
    if not touched:
        return result
    refusals = await raise_refusal_alerts(conn, touched, fresh, at)
    result.alerts += len(refusals)

    result.parked_matched = await repo.add_refs(conn, _alias_rows(touched, fresh))
    await repo.add_phone_hashes(conn, _phone_rows(touched, fresh))
    # New observations that establish nothing new (an unverified hint, a stale status) leave the
    # merged state, so the payment's row, its domain rows and its events, as they are; a payment's
    # first projected observation writes them whatever it says (one refused for its mode is not projected).
    changed = [
        f
        for f in touched
        if f.state != f.before or (not f.payment.merge_state and len(f.refused) < len(f.observations))
    ]
    if not changed:
        return result
    traces = traces or {}
    events = [
        event_row(topics.PAYMENT_STATUS, c, traces.get((c.tenant, c.observation_id)))
        for f in changed
        for c in f.changes
    ]
    alerts = await raise_mismatch_alerts(conn, changed, at) + await raise_override_alerts(conn, changed, at)
    events += [event_row(topics.ALERTS, a) for a in alerts]
    await repo.write_merged(conn, [payment_values(f, at) for f in changed], events)
    await follow_in_domains(conn, changed, locked, domains)
    result.alerts += len(alerts)
    result.status_changes = [c for f in changed for c in f.changes]
    return result


async def unpark(engine: AsyncEngine, domains: Domains, limit: int = 500) -> BatchResult:
    """Apply parked observations whose payment has been registered since (matched by reference or alias)."""
    async with engine.begin() as conn:
        matched = await parked.take_matched_parked(conn, limit)
        return await project_in(conn, matched, domains) if matched else BatchResult()


def _by_payment(
    unique: list[PaymentObservation], refs: dict[tuple[str, str, str], Any]
) -> tuple[dict[Any, list[PaymentObservation]], list[PaymentObservation]]:
    """The observations grouped by the payment one of their references names; the rest are orphans."""
    by_payment: dict[Any, list[PaymentObservation]] = defaultdict(list)
    orphans: list[PaymentObservation] = []
    for obs in unique:
        payment_id = next(
            (refs[k] for k in ((obs.tenant, obs.provider.value, r) for r in obs.refs) if k in refs), None
        )
        (orphans if payment_id is None else by_payment[payment_id]).append(obs)
    return by_payment, orphans


def _count_applied(folded: list[Folded], fresh: set[tuple[str, str]], result: BatchResult) -> list[Folded]:
    """Count new and duplicate observations in `result`; return the payments with a new one."""
    touched = []
    for f in folded:
        applied = sum((o.tenant, o.observation_id) in fresh for o in f.observations)
        result.applied += applied
        result.duplicates += len(f.observations) - applied
        if applied:
            touched.append(f)
    return touched


def _phone_rows(touched: list[Folded], fresh: set[tuple[str, str]]) -> list[dict[str, Any]]:
    """The payer phone hashes new M-Pesa observations carry (a lookup aid, not evidence: hints count)."""
    return [
        {"payment_id": f.payment.id, "phone_hash": o.phone_hash}
        for f in touched
        for o in f.observations
        if o.phone_hash and (o.tenant, o.observation_id) in fresh
    ]


def _alias_rows(touched: list[Folded], fresh: set[tuple[str, str]]) -> list[dict[str, Any]]:
    """The references that new verified observations bind to their payment."""
    return [
        {
            "tenant_id": f.payment.tenant_id,
            "provider": f.payment.provider,
            "ref": ref,
            "payment_id": f.payment.id,
        }
        for f in touched
        for o in f.observations
        if o.verified and (o.tenant, o.observation_id) in fresh
        for ref in o.aliases
    ]
