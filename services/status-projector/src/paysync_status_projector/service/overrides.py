"""The sync issue an operator's override raises when a newer gateway fact contradicts it."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncConnection

from paysync_core.contracts import Alert, AlertKind, Provider
from paysync_status_projector.repository import issues
from paysync_status_projector.service.alerts import issue_row, payment_alert
from paysync_status_projector.service.folding import Folded


async def raise_override_alerts(conn: AsyncConnection, changed: list[Folded], now: datetime) -> list[Alert]:
    """One sync issue per override, the first time a newer gateway fact contradicts it.

    The override keeps the status (the merge holds it); the issue is how the operator hears that
    the gateway now says otherwise, and decides: override again, or leave it.
    """
    candidates: dict[str, tuple[dict, Alert]] = {}
    for f in changed:
        state, override = f.state, f.state.override
        if override is None or not state.override_contradicted or f.before.override_contradicted:
            continue
        p = f.payment
        detail = (
            f"{Provider(p.provider).title} now reports {state.gateway_status.value} for {p.provider_ref} "
            f"(as of {state.as_of:%Y-%m-%d %H:%M:%S} UTC), after an operator set it to "
            f"{override.status.value}; the override stands until someone decides"
        )
        # One issue per override: a later override that is contradicted again is a new decision.
        subject = f"{p.id}:{override.observation_id}"
        alert = payment_alert(
            p,
            AlertKind.OVERRIDE_CONTRADICTED,
            detail,
            now,
            subject=subject,
            facts={
                "override_status": override.status.value,
                "override_observation_id": override.observation_id,
                "gateway_status": state.gateway_status.value,
            },
        )
        candidates[alert.alert_id] = (issue_row(alert, subject=subject), alert)
    opened = await issues.open_issues(conn, [row for row, _ in candidates.values()])
    return [alert for aid, (_, alert) in candidates.items() if aid in opened]
