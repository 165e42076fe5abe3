"""The projector's use cases: fold observations into payments and domain rows, relay, check drift."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from paysync_core import topics
from paysync_core.contracts import (
    Alert,
    AlertKind,
    EntityRef,
    PaymentObservation,
    PaymentStatusChanged,
    Provider,
    alert_id,
    payment_key,
)
from paysync_core.domain.merge import Expectation, PaymentState, apply, observe
from paysync_core.domain.money import Money
from paysync_core.domain.status import UnifiedStatus
from paysync_core.providers.modes import mode_refusal
from paysync_status_projector import repository as repo
from paysync_status_projector.domains import BoundDomain, Domains

log = structlog.get_logger()

#: Hands (topic, key, value) to the producer, in call order; returns what to await for the broker's ack.
Publish = Callable[[str, bytes, bytes], Awaitable[Awaitable[object]]]

#: Which payment of an entity its row follows: money moved beats everything, in this order.
_MOVED_PRECEDENCE = {
    UnifiedStatus.SUCCEEDED: 4,
    UnifiedStatus.PARTIALLY_REFUNDED: 3,
    UnifiedStatus.DISPUTED: 2,
    UnifiedStatus.REFUNDED: 1,
}
_EVIDENCE_IDS = (
    "session_id",
    "payment_intent_id",
    "invoice_id",
    "charge_id",
    "transaction_id",
    "receipt_number",
)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(slots=True)
class BatchResult:
    """What one batch did."""

    applied: int = 0
    duplicates: int = 0
    parked: int = 0
    alerts: int = 0
    status_changes: list[PaymentStatusChanged] = field(default_factory=list)

    def add(self, other: BatchResult) -> None:
        """Count another batch's outcome in this one."""
        self.applied += other.applied
        self.duplicates += other.duplicates
        self.parked += other.parked
        self.alerts += other.alerts
        self.status_changes += other.status_changes


@dataclass(slots=True)
class _Folded:
    """One payment's batch folded in memory, before anything is written."""

    payment: Any
    observations: list[PaymentObservation]
    before: PaymentState
    state: PaymentState
    status: str
    sequence: int
    history: list[dict[str, Any]]
    changes: list[PaymentStatusChanged]
    refused: list[PaymentObservation] = field(default_factory=list)


async def project(
    engine: AsyncEngine, batch: Sequence[PaymentObservation], domains: Domains, *, attempts: int = 5
) -> BatchResult:
    """Apply a batch in one transaction, retried if PostgreSQL reports a deadlock or serialization failure."""
    for attempt in range(1, attempts + 1):
        try:
            async with engine.begin() as conn:
                return await project_in(conn, batch, domains)
        except DBAPIError as exc:
            if getattr(exc.orig, "sqlstate", None) not in ("40P01", "40001") or attempt == attempts:
                raise
            await asyncio.sleep(0.01 * attempt)
    raise AssertionError("unreachable")


async def project_in(
    conn: AsyncConnection, batch: Sequence[PaymentObservation], domains: Domains
) -> BatchResult:
    """Apply observations inside the caller's transaction: payments, history, domain rows, outbox."""
    result = BatchResult()
    unique = list({(o.tenant, o.observation_id): o for o in batch}.values())
    result.duplicates += len(batch) - len(unique)
    refs, locked = await repo.lock_for_batch(
        conn, ((o.tenant, o.provider.value, r) for o in unique for r in o.refs)
    )
    by_payment: dict[Any, list[PaymentObservation]] = defaultdict(list)
    orphans: list[PaymentObservation] = []
    for obs in unique:
        payment_id = next(
            (refs[k] for k in ((obs.tenant, obs.provider.value, r) for r in obs.refs) if k in refs), None
        )
        (orphans if payment_id is None else by_payment[payment_id]).append(obs)
    await repo.park(conn, orphans)
    result.parked = len(orphans)

    now = _now()
    folded = [_fold(locked[pid], by_payment[pid], now) for pid in sorted(by_payment)]
    fresh = await repo.record_history(conn, [row for f in folded for row in f.history])
    touched = []
    for f in folded:
        applied = sum((o.tenant, o.observation_id) in fresh for o in f.observations)
        result.applied += applied
        result.duplicates += len(f.observations) - applied
        if applied:
            touched.append(f)
    if not touched:
        return result
    refusals = await _raise_refusal_alerts(conn, touched, fresh, now)
    result.alerts += len(refusals)

    await repo.add_refs(
        conn,
        [
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
        ],
    )
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
    events = [_event(topics.PAYMENT_STATUS.name, _key_of(f.payment), c) for f in changed for c in f.changes]
    alerts = await _raise_mismatch_alerts(conn, changed, now)
    events += [_event(topics.ALERTS.name, a.tenant, a) for a in alerts]
    await repo.write_merged(conn, [_payment_values(f, now) for f in changed], events)
    await _follow_in_domains(conn, changed, locked, domains)
    result.alerts += len(alerts)
    result.status_changes = [c for f in changed for c in f.changes]
    return result


def _fold(payment: Any, batch: list[PaymentObservation], now: datetime) -> _Folded:
    """Merge a payment's observations in memory; those applied before change nothing (idempotent merge)."""
    expected = Expectation(payment.amount_minor, payment.currency)
    before = PaymentState.from_json(payment.merge_state)
    state, status, sequence = before, payment.status, payment.sequence
    history, changes, refused = [], [], []
    for obs in sorted(batch, key=lambda o: (o.provider_time, o.observation_id)):
        # Decided before merging, so the merge stays a pure function of the observations it applies:
        # a test tenant's event never marks a live payment paid, nor the reverse.
        if (refusal := mode_refusal(payment.mode, obs.mode)) is not None:
            history.append(_history_row(payment.id, obs, status, refused=refusal))
            refused.append(obs)
            continue
        state = apply(state, obs, expected)
        status_after = state.status.value
        history.append(_history_row(payment.id, obs, status_after))
        if status_after != status:
            sequence += 1
            changes.append(_status_change(payment, obs, state, status, sequence, now))
            status = status_after
    return _Folded(payment, batch, before, state, status, sequence, history, changes, refused)


def _payment_values(f: _Folded, now: datetime) -> dict[str, Any]:
    state = f.state
    return {
        "id": f.payment.id,
        "merge_state": state.to_json(),
        "status": f.status,
        "sequence": f.sequence,
        "flags": sorted(state.flags),
        "amount_received_minor": state.amount_received_minor,
        "amount_refunded_minor": state.amount_refunded_minor,
        "paid_at": state.paid_at,
        "status_changed_at": now if f.changes else f.payment.status_changed_at,
    }


# -- alerts -----------------------------------------------------------------------------------


async def _raise_mismatch_alerts(conn: AsyncConnection, touched: list[_Folded], now: datetime) -> list[Alert]:
    """One alert per payment and flag, the first time the merge raises the flag."""
    candidates: dict[str, tuple[dict[str, Any], Alert]] = {}
    for f in touched:
        p = f.payment
        for flag in sorted(f.state.flags - f.before.flags):
            kind = AlertKind(flag)
            culprit = next(
                (
                    o
                    for o in sorted(f.observations, key=lambda o: (o.provider_time, o.observation_id))
                    if o not in f.refused
                    and flag in observe(o, Expectation(p.amount_minor, p.currency)).flags
                ),
                None,
            )
            alert = _payment_alert(
                p,
                kind,
                _mismatch_detail(p, culprit),
                now,
                facts={
                    "expected_amount_minor": p.amount_minor,
                    "expected_currency": p.currency,
                    "seen_amount_minor": culprit.amount_minor if culprit else None,
                    "seen_currency": culprit.currency if culprit else None,
                    "observation_id": culprit.observation_id if culprit else None,
                },
            )
            candidates[alert.alert_id] = (_issue_row(alert, subject=str(p.id)), alert)
    opened = await repo.open_issues(conn, [row for row, _ in candidates.values()])
    return [alert for aid, (_, alert) in candidates.items() if aid in opened]


async def _raise_refusal_alerts(
    conn: AsyncConnection, touched: list[_Folded], fresh: set[tuple[str, str]], now: datetime
) -> list[Alert]:
    """A sync issue for each payment that was sent an observation of the other mode, the first time."""
    candidates: dict[str, Alert] = {}
    for f in touched:
        p = f.payment
        culprit = next((o for o in f.refused if (o.tenant, o.observation_id) in fresh), None)
        if culprit is None:
            continue
        detail = (
            f"{Provider(p.provider).title} reported a {culprit.mode}-mode "
            f"{culprit.status or 'unknown'} status for {p.provider_ref}, a {p.mode}-mode payment; "
            "it was recorded and not applied"
        )
        alert = _payment_alert(
            p,
            AlertKind.MODE_MISMATCH,
            detail,
            now,
            facts={
                "payment_mode": p.mode,
                "observed_mode": culprit.mode,
                "observation_id": culprit.observation_id,
            },
        )
        candidates[alert.alert_id] = alert
    rows = [_issue_row(a, subject=str(a.payment_id)) for a in candidates.values()]
    opened = await repo.open_issues(conn, rows)
    alerts = [a for aid, a in candidates.items() if aid in opened]
    await repo.enqueue(conn, [_event(topics.ALERTS.name, a.tenant, a) for a in alerts])
    return alerts


def _mismatch_detail(payment: Any, culprit: PaymentObservation | None) -> str:
    provider = Provider(payment.provider)
    expected = _money(payment.amount_minor, payment.currency)
    seen = _money(culprit.amount_minor, culprit.currency) if culprit else "a different amount"
    return (
        f"{provider.title} reported {seen} paid for {payment.provider_ref}, but {expected} was registered; "
        "the payment is not marked paid"
    )


def _payment_alert(
    payment: Any,
    kind: AlertKind,
    detail: str,
    now: datetime,
    *,
    facts: dict[str, Any],
    occurrence: int = 1,
    subject: str | None = None,
) -> Alert:
    entity = (
        EntityRef(domain=payment.domain, entity_id=payment.entity_id)
        if payment.domain and payment.entity_id
        else None
    )
    return Alert(
        alert_id=alert_id(kind, payment.tenant_id, subject or str(payment.id), occurrence),
        kind=kind,
        tenant=payment.tenant_id,
        payment_id=str(payment.id),
        provider=payment.provider,
        provider_ref=payment.provider_ref,
        entity=entity,
        detail=detail,
        facts=facts,
        occurrence=occurrence,
        raised_at=now,
    )


def _issue_row(alert: Alert, *, subject: str) -> dict[str, Any]:
    return {
        "alert_id": alert.alert_id,
        "tenant_id": alert.tenant,
        "kind": alert.kind.value,
        "subject": subject,
        "payment_id": alert.payment_id,
        "domain": alert.entity.domain if alert.entity else None,
        "entity_id": alert.entity.entity_id if alert.entity else None,
        "detail": alert.detail,
        "facts": alert.facts,
        "occurrence": alert.occurrence,
    }


# -- domain rows ------------------------------------------------------------------------------


async def _follow_in_domains(
    conn: AsyncConnection, touched: list[_Folded], locked: dict[Any, Any], domains: Domains
) -> None:
    """Rewrite each touched entity's row, and each touched payment's per-payment row, from merged states."""
    # Every payment of a touched entity is locked (`lock_for_batch`): this batch's own are taken
    # as just merged, the others as committed.
    merged = {f.payment.id: f.state for f in touched}
    keys = sorted(
        {
            (f.payment.tenant_id, f.payment.domain, f.payment.entity_id)
            for f in touched
            if f.payment.entity_id is not None and domains.get(f.payment.domain)
        }
    )
    if not keys:
        return
    wanted = set(keys)
    views: dict[tuple[str, str, str], list[PaymentView]] = defaultdict(list)
    for payment_id in sorted(locked):
        row = locked[payment_id]
        key = (row.tenant_id, row.domain, row.entity_id)
        if key in wanted:
            state = merged[payment_id] if payment_id in merged else PaymentState.from_json(row.merge_state)
            views[key].append(view_of(row, state))
    upserts: dict[Any, list[dict[str, Any]]] = defaultdict(list)
    gone: dict[Any, list[dict[str, Any]]] = defaultdict(list)
    for key in keys:
        tenant, name, entity_id = key
        domain = domains.get(name)
        assert domain is not None
        values = entity_values(domain, views[key])
        if values:
            upserts[domain.main].append(domain.main.row(tenant, entity_id, values))
        child = domain.per_payment
        for view in views[key] if child is not None else ():
            if view.row.id not in merged:
                continue  # not touched by this batch: its row is as its last batch left it
            row_key = child.coerce[child.mapping.key_column](view.context["payment_id"])
            if child.mapping.has_row(view.status):
                values = child.mapping.render_for(view.status, view.context)
                values[child.mapping.entity_column or ""] = entity_id
                upserts[child].append(child.row(tenant, row_key, values))
            else:
                gone[child].append(child.row(tenant, row_key, {}))
    await repo.write_domain_rows(conn, domains.tables(), upserts, gone)


@dataclass(frozen=True, slots=True)
class PaymentView:
    """One payment as domain rows see it: its row, merged state, status, and what templates can name."""

    row: Any
    state: PaymentState
    status: UnifiedStatus
    context: dict[str, Any]


def view_of(row: Any, state: PaymentState) -> PaymentView:
    """A payment's view, computed once."""
    status = state.status
    return PaymentView(row, state, status, payment_context(row, state, status))


def entity_values(domain: BoundDomain, payments: Sequence[PaymentView]) -> dict[str, Any] | None:
    """The entity row's values: its leading payment's status mapping, then counters over all its payments."""
    if not payments:
        return None
    lead = max(payments, key=_precedence)
    values = domain.spec.values_for(lead.status, lead.context) or {}
    for column, counter in domain.spec.counters.items():
        values[column] = counter.compute((p.status, p.context) for p in payments)
    return values or None


def _precedence(view: PaymentView) -> tuple[int, datetime, str]:
    return _MOVED_PRECEDENCE.get(view.status, 0), view.state.as_of or _EPOCH, view.context["payment_id"]


_TITLES = {p.value: p.title for p in Provider}


def payment_context(payment: Any, state: PaymentState, status: UnifiedStatus | None = None) -> dict[str, Any]:
    """What a template can name about one payment (domains.FIELDS), from its row and merged state."""
    status = status or state.status
    success = state.success
    evidence = dict(success.evidence) if success else {}
    received, refunded = state.amount_received_minor, state.amount_refunded_minor
    return {
        "status": status.value,
        "provider": payment.provider,
        "provider_title": _TITLES[payment.provider],
        "provider_ref": payment.provider_ref,
        "payment_id": str(payment.id),
        "entity_id": payment.entity_id,
        "session_id": evidence.get("session_id") or payment.provider_ref,
        "payment_intent_id": evidence.get("payment_intent_id"),
        "charge_id": evidence.get("charge_id"),
        "transaction_id": evidence.get("transaction_id"),
        "receipt_number": evidence.get("receipt_number"),
        "transaction_ref": evidence.get("receipt_number")
        or evidence.get("charge_id")
        or evidence.get("transaction_id")
        or evidence.get("payment_intent_id"),
        "evidence": ", ".join(f"{k}={v}" for k, v in evidence.items() if k in _EVIDENCE_IDS) or None,
        "amount_minor": payment.amount_minor,
        "currency": payment.currency or (success.currency if success else None),
        "amount_received_minor": received,
        "amount_refunded_minor": refunded,
        "amount_net_minor": None if received is None else max(received - refunded, 0),
        "paid_at": state.paid_at,
        "changed_at": state.as_of,
        "error": state.failure_detail if not status.money_moved else None,
        "flags": ",".join(sorted(state.flags)) or None,
    }


# -- parked observations ----------------------------------------------------------------------


async def unpark(engine: AsyncEngine, domains: Domains, limit: int = 500) -> BatchResult:
    """Apply parked observations whose payment has been registered since (matched by reference or alias)."""
    async with engine.begin() as conn:
        matched = await repo.take_matched_parked(conn, limit)
        return await project_in(conn, matched, domains) if matched else BatchResult()


# -- outbox relay -----------------------------------------------------------------------------


async def relay_outbox(engine: AsyncEngine, publish: Publish, limit: int) -> int:
    """Publish committed events in id order (per payment: commit order); returns how many."""
    async with engine.begin() as conn:
        rows = await repo.unpublished(conn, limit)  # empty too while another relay is at work
        if not rows:
            return 0
        # Handed to the producer in id order, all before any acknowledgement is awaited: the
        # idempotent producer keeps that order per partition, retries included.
        acknowledgements = [await publish(row.topic, row.key.encode(), row.payload.encode()) for row in rows]
        await asyncio.gather(*acknowledgements)
        await repo.mark_published(conn, [row.id for row in rows])
        return len(rows)


async def purge_outbox(engine: AsyncEngine, keep: timedelta) -> int:
    """Forget events published longer ago than `keep`; returns how many."""
    async with engine.begin() as conn:
        return await repo.purge_published(conn, _now() - keep)


# -- drift ------------------------------------------------------------------------------------


async def check_drift(engine: AsyncEngine, domains: Domains) -> int:
    """Compare every domain's rows with its payments; one alert per new drift, resolved drifts closed."""
    async with engine.begin() as conn:
        if not await repo.try_drift_lock(conn):
            return 0  # another replica is checking right now
        now, alerts = _now(), []
        for domain in domains:
            if domain.spec.paid is None:
                continue
            paid_col = domain.spec.paid.column
            unbacked = {
                (r.tenant_id, f"{domain.spec.name}:{r.entity_id}"): _entity_alert(
                    domain,
                    r.tenant_id,
                    r.entity_id,
                    now,
                    f"{domain.spec.name} {r.entity_id} is marked {r.shown!r} ({paid_col}) but none of its "
                    "payments has succeeded",
                    {"column": paid_col, "shown": str(r.shown)},
                )
                for r in await repo.rows_paid_without_payment(conn, domain)
            }
            alerts += await _sync_issues(conn, AlertKind.DOMAIN_PAID_WITHOUT_PAYMENT, domain, unbacked)
            unpaid: dict[tuple[str, str], Callable[[int], Alert]] = {}
            for r in await repo.payments_succeeded_row_unpaid(conn, domain):
                unpaid.setdefault(
                    (r.tenant_id, f"{domain.spec.name}:{r.entity_id}"),
                    _unpaid_alert(domain, r, now, paid_col),
                )
            alerts += await _sync_issues(conn, AlertKind.PAYMENT_SUCCEEDED_DOMAIN_UNPAID, domain, unpaid)
        await repo.enqueue(conn, [_event(topics.ALERTS.name, a.tenant, a) for a in alerts])
        return len(alerts)


def _entity_alert(
    domain: BoundDomain, tenant: str, entity_id: str, now: datetime, detail: str, facts: dict[str, Any]
) -> Callable[[int], Alert]:
    def build(occurrence: int) -> Alert:
        return Alert(
            alert_id=alert_id(
                AlertKind.DOMAIN_PAID_WITHOUT_PAYMENT, tenant, f"{domain.spec.name}:{entity_id}", occurrence
            ),
            kind=AlertKind.DOMAIN_PAID_WITHOUT_PAYMENT,
            tenant=tenant,
            entity=EntityRef(domain=domain.spec.name, entity_id=entity_id),
            detail=detail,
            facts=facts,
            occurrence=occurrence,
            raised_at=now,
        )

    return build


def _unpaid_alert(domain: BoundDomain, r: Any, now: datetime, paid_col: str) -> Callable[[int], Alert]:
    shown = "no row" if r.shown is None else f"{r.shown!r} ({paid_col})"
    detail = (
        f"{Provider(r.provider).title} payment {r.provider_ref} succeeded but {domain.spec.name} "
        f"{r.entity_id} shows {shown}"
    )
    row = _PaymentLike(r.id, r.tenant_id, r.provider, r.provider_ref, domain.spec.name, r.entity_id)

    def build(occurrence: int) -> Alert:
        return _payment_alert(
            row,
            AlertKind.PAYMENT_SUCCEEDED_DOMAIN_UNPAID,
            detail,
            now,
            facts={"column": paid_col, "shown": r.shown},
            occurrence=occurrence,
            subject=f"{domain.spec.name}:{r.entity_id}",
        )

    return build


@dataclass(frozen=True, slots=True)
class _PaymentLike:
    id: Any
    tenant_id: str
    provider: str
    provider_ref: str
    domain: str
    entity_id: str


async def _sync_issues(
    conn: AsyncConnection,
    kind: AlertKind,
    domain: BoundDomain,
    detected: dict[tuple[str, str], Callable[[int], Alert]],
) -> list[Alert]:
    """Open issues for drifts not open yet (returning their alerts), resolve open ones no longer seen."""
    open_now = await repo.open_issue_subjects(conn, kind.value, domain.spec.name)
    await repo.resolve_issues(conn, [issue_id for key, issue_id in open_now.items() if key not in detected])
    new = [key for key in detected if key not in open_now]
    seen = await repo.occurrences(conn, kind.value, new)
    alerts = [detected[key](seen.get(key, 0) + 1) for key in sorted(new)]
    opened = await repo.open_issues(
        conn, [_issue_row(a, subject=key[1]) for a, key in zip(alerts, sorted(new), strict=True)]
    )
    return [a for a in alerts if a.alert_id in opened]


# -- rows and messages ------------------------------------------------------------------------


def _status_change(
    payment: Any, obs: PaymentObservation, state: PaymentState, old: str | None, sequence: int, now: datetime
) -> PaymentStatusChanged:
    return PaymentStatusChanged(
        event_id=f"{payment.id}:{sequence}",
        tenant=payment.tenant_id,
        payment_id=str(payment.id),
        provider=payment.provider,
        provider_ref=payment.provider_ref,
        domain=payment.domain,
        entity_id=payment.entity_id,
        old_status=old,
        new_status=state.status,
        amount_minor=payment.amount_minor,
        currency=payment.currency,
        amount_received_minor=state.amount_received_minor,
        amount_refunded_minor=state.amount_refunded_minor,
        flags=tuple(sorted(state.flags)),
        sequence=sequence,
        observation_id=obs.observation_id,
        evidence=obs.evidence,
        changed_at=now,
    )


def _history_row(
    payment_id: Any, obs: PaymentObservation, status_after: str, refused: str | None = None
) -> dict[str, Any]:
    return {
        "tenant_id": obs.tenant,
        "observation_id": obs.observation_id,
        "payment_id": payment_id,
        "provider_ref": obs.provider_ref,
        "status": obs.status.value if obs.status else None,
        "provider_time": obs.provider_time,
        "source": obs.source.value,
        "verified": obs.verified,
        "amount_minor": obs.amount_minor,
        "currency": obs.currency,
        "evidence": obs.evidence.model_dump_json(exclude_none=True),  # JSON text, stored as is
        "status_after": status_after,
        "mode": obs.mode,
        "refused": refused,
    }


def _event(topic: str, key: str, message: PaymentStatusChanged | Alert) -> dict[str, Any]:
    return {"topic": topic, "key": key, "payload": message.to_bytes().decode()}  # JSON text, stored as is


def _key_of(payment: Any) -> str:
    return payment_key(payment.tenant_id, payment.provider, payment.provider_ref)


def _money(amount: int | None, currency: str | None) -> str:
    if amount is None:
        return "an unknown amount"
    if currency is None:
        return f"{amount} (minor units, currency unknown)"
    try:
        return str(Money(amount, currency))
    except ValueError:
        return f"{amount} {currency} (minor units)"


def _now() -> datetime:
    return datetime.now(UTC)
