"""Drift between domain rows and payments: one alert per new drift, resolved drifts closed."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from paysync_core import topics
from paysync_core.contracts import Alert, AlertKind, EntityRef, Provider, alert_id
from paysync_core.domains import BoundDomain, Domains
from paysync_status_projector.repository import drift as repo
from paysync_status_projector.repository import issues, outbox
from paysync_status_projector.service.alerts import issue_row, payment_alert
from paysync_status_projector.service.messages import event_row
from paysync_status_projector.service.messages import now as _now


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
        await outbox.enqueue(conn, [event_row(topics.ALERTS, a) for a in alerts])
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
        f"{Provider(r.provider).display_name} payment {r.provider_ref} succeeded but {domain.spec.name} "
        f"{r.entity_id} shows {shown}"
    )
    row = _PaymentLike(r.id, r.tenant_id, r.provider, r.provider_ref, domain.spec.name, r.entity_id)

    def build(occurrence: int) -> Alert:
        return payment_alert(
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
    open_now = await issues.open_issue_subjects(conn, kind.value, domain.spec.name)
    await issues.resolve_issues(conn, [issue_id for key, issue_id in open_now.items() if key not in detected])
    new = [key for key in detected if key not in open_now]
    seen = await issues.occurrences(conn, kind.value, new)
    alerts = [detected[key](seen.get(key, 0) + 1) for key in sorted(new)]
    opened = await issues.open_issues(
        conn, [issue_row(a, subject=key[1]) for a, key in zip(alerts, sorted(new), strict=True)]
    )
    return [a for a in alerts if a.alert_id in opened]
