"""Sync issues and alert settings for tests and the demo: open an issue as the projector or the
reconciler would (a `sync_issues` row and its `Alert` on the alerts topic), resolve it, configure
who is told."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncEngine

from paysync_core import topics
from paysync_core.alerting import AlertConfig
from paysync_core.contracts import Alert, AlertKind, alert_id
from paysync_core.crypto import CredentialsCipher
from paysync_core.db import alerts as alert_repo
from paysync_core.db.schema import sync_issues
from paysync_core.kafka import DurableProducer


async def configure_alerts(engine: AsyncEngine, keys: str, tenant: str, config: AlertConfig) -> None:
    """Set the tenant's alert settings, as `paysync alerts config` does."""
    async with engine.begin() as conn:
        await alert_repo.save_alert_settings(conn, tenant, config, CredentialsCipher(keys))


def issue_alert(tenant: str, kind: AlertKind, **facts: str | int) -> Alert:
    """An alert about a payment of its own (random), with `facts`."""
    payment, ref = str(uuid.uuid4()), f"cs_test_{uuid.uuid4().hex[:16]}"
    return Alert(
        alert_id=alert_id(kind, tenant, payment),
        kind=kind,
        tenant=tenant,
        payment_id=payment,
        provider="stripe",
        provider_ref=ref,
        detail=f"{kind.value.replace('_', ' ')} on {ref}",
        facts=dict(facts),
        raised_at=datetime.now(UTC),
    )


async def open_issues(engine: AsyncEngine, bootstrap: str, alerts: list[Alert]) -> None:
    """Record each alert's sync issue and publish the alerts, as the projector's outbox would."""
    rows = [
        {
            "alert_id": a.alert_id,
            "tenant_id": a.tenant,
            "kind": a.kind.value,
            "subject": a.payment_id or a.alert_id,
            "payment_id": a.payment_id,
            "detail": a.detail,
            "facts": a.facts,
        }
        for a in alerts
    ]
    async with engine.begin() as conn:
        await conn.execute(sync_issues.insert(), rows)
    spec = topics.ALERTS
    producer = DurableProducer(bootstrap, client_id="paysync-tests")
    await producer.start()
    try:
        await producer.send_many(spec.name, [(spec.key_for(a), a.to_bytes()) for a in alerts])
    finally:
        await producer.stop()


async def resolve_issue(engine: AsyncEngine, alert: Alert) -> None:
    """Mark the alert's sync issue resolved, as the reconciler does when the drift is gone."""
    async with engine.begin() as conn:
        await conn.execute(
            update(sync_issues)
            .where(sync_issues.c.alert_id == alert.alert_id)
            .values(resolved_at=datetime.now(UTC))
        )
