"""Alerts a batch raises: an amount or currency mismatch, an observation of the other mode."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from paysync_core import topics
from paysync_core.contracts import Alert, AlertKind, EntityRef, PaymentObservation, Provider, alert_id
from paysync_core.db.issues import issue_row
from paysync_core.domain.merge import Expectation, observe
from paysync_core.domain.money import Money
from paysync_status_projector.repository import issues, outbox
from paysync_status_projector.service.folding import Folded
from paysync_status_projector.service.messages import event_row


async def raise_mismatch_alerts(conn: AsyncConnection, touched: list[Folded], now: datetime) -> list[Alert]:
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
                    and flag in observe(o.to_domain(), Expectation(p.amount_minor, p.currency)).flags
                ),
                None,
            )
            alert = payment_alert(
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
            candidates[alert.alert_id] = (issue_row(alert, subject=str(p.id)), alert)
    opened = await issues.open_issues(conn, [row for row, _ in candidates.values()])
    return [alert for aid, (_, alert) in candidates.items() if aid in opened]


async def raise_refusal_alerts(
    conn: AsyncConnection, touched: list[Folded], fresh: set[tuple[str, str]], now: datetime
) -> list[Alert]:
    """A sync issue for each payment that was sent an observation of the other mode, the first time."""
    candidates: dict[str, Alert] = {}
    for f in touched:
        p = f.payment
        culprit = next((o for o in f.refused if (o.tenant, o.observation_id) in fresh), None)
        if culprit is None:
            continue
        detail = (
            f"{Provider(p.provider).display_name} reported a {culprit.mode}-mode "
            f"{culprit.status or 'unknown'} status for {p.provider_ref}, a {p.mode}-mode payment; "
            "it was recorded and not applied"
        )
        alert = payment_alert(
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
    rows = [issue_row(a, subject=str(a.payment_id)) for a in candidates.values()]
    opened = await issues.open_issues(conn, rows)
    alerts = [a for aid, a in candidates.items() if aid in opened]
    await outbox.enqueue(conn, [event_row(topics.ALERTS, a) for a in alerts])
    return alerts


def payment_alert(
    payment: Any,
    kind: AlertKind,
    detail: str,
    now: datetime,
    *,
    facts: dict[str, Any],
    occurrence: int = 1,
    subject: str | None = None,
) -> Alert:
    """An alert about one payment (and its entity, if it has one)."""
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


def _mismatch_detail(payment: Any, culprit: PaymentObservation | None) -> str:
    provider = Provider(payment.provider)
    expected = _money(payment.amount_minor, payment.currency)
    seen = _money(culprit.amount_minor, culprit.currency) if culprit else "a different amount"
    return (
        f"{provider.display_name} reported {seen} paid for {payment.provider_ref}, "
        f"but {expected} was registered; the payment is not marked paid"
    )


def _money(amount: int | None, currency: str | None) -> str:
    if amount is None:
        return "an unknown amount"
    if currency is None:
        return f"{amount} (minor units, currency unknown)"
    try:
        return str(Money(amount, currency))
    except ValueError:
        return f"{amount} {currency} (minor units)"
