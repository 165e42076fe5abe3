"""Drift alerts: each finding's alert raised once (re-openable kinds again after they closed), circuit
changes reported.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import structlog

from paysync_core.contracts import Alert, AlertKind, Provider
from paysync_reconciler import drift, metrics
from paysync_reconciler.models import RunStats
from paysync_reconciler.ports import Deps
from paysync_reconciler.repository import issues as issues_repo

log = structlog.get_logger()

#: Issues that close when their cause goes away, so a recurrence is alerted again.
_REOPENABLE = frozenset({AlertKind.GATEWAY_ERROR})


async def raise_all(deps: Deps, findings: Sequence[drift.Finding], stats: RunStats) -> None:
    """Raise each finding's alert once: one transaction for many, the re-openable ones one by one."""
    stats.issues_found += len(findings)
    raised = 0
    once = [f for f in findings if f.kind not in _REOPENABLE]
    if once:
        now = deps.clock()
        alerts: dict[str, tuple[drift.Finding, Alert]] = {}
        for finding in once:
            alert = finding.alert(now)
            alerts.setdefault(alert.alert_id, (finding, alert))
        async with deps.engine.begin() as conn:
            new = await issues_repo.open_issues(conn, [f.issue_row(a) for f, a in alerts.values()])
            # Inside the transaction: an issue is never recorded without its alert having gone out.
            await asyncio.gather(*(deps.outbound.alert(alerts[i][1]) for i in new))
        for alert_id in new:
            _raised(alerts[alert_id][1])
        raised += len(new)
    for finding in findings:
        if finding.kind in _REOPENABLE:
            raised += await raise_once(deps, finding)
    if raised:
        stats.alerts_raised += raised


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
                await issues_repo.issues_so_far(conn, finding.target.tenant, finding.kind.value, subject) + 1
            )
        alert = finding.alert(now, occurrence=occurrence)
        if not await issues_repo.open_issue(conn, finding.issue_row(alert)):
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
                await issues_repo.resolve_issue(
                    conn, tenant, AlertKind.GATEWAY_ERROR.value, f"circuit:{provider.value}"
                )
    except Exception as exc:  # noqa: BLE001 - reporting must never break the check that noticed
        log.warning(
            "reconcile.circuit.report_failed", tenant=tenant, provider=provider.value, error=repr(exc)
        )
