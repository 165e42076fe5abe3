"""SQL of the alert rules on status changes: the lock, each tenant's rules, what each rule finds, issues.

Sync issues are the same table the projector and the reconciler open theirs in (`sync_issues`, one
open issue per tenant, kind and subject; opened and resolved with `paysync_core.db.issues`); the
delivery path watches it for reminders and resolutions.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import structlog
from pydantic import ValidationError
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from paysync_core.alert_rules import AlertRules, rules_of
from paysync_core.db.alert_tables import alert_settings
from paysync_core.db.schema import payments, sync_issues, tenants
from paysync_core.domain.status import MONEY_MOVED, OPEN_OR_UNPAID, SETTLED, UnifiedStatus

log = structlog.get_logger()
#: Advisory-lock key of one round of rule evaluation: one replica at a time evaluates.
_RULES_LOCK = 7355611
#: Statuses a payment waits in before it has an outcome (what a deadline applies to).
UNSETTLED = tuple(sorted(s.value for s in OPEN_OR_UNPAID - SETTLED))
#: A payment's outcomes (what a failure rate is measured among): money moved, or it never will.
OUTCOMES = tuple(sorted(s.value for s in SETTLED | MONEY_MOVED))


async def try_rules_lock(conn: AsyncConnection) -> bool:
    """Take the evaluation lock for this transaction, unless another replica holds it."""
    return bool((await conn.execute(select(func.pg_try_advisory_xact_lock(_RULES_LOCK)))).scalar())


async def tenant_rules(conn: AsyncConnection) -> dict[str, AlertRules]:
    """Every tenant's rules; tenants without alert settings get the defaults."""
    known = (await conn.execute(select(tenants.c.id))).scalars().all()
    stored = {
        row.tenant_id: row.config
        for row in await conn.execute(select(alert_settings.c.tenant_id, alert_settings.c.config))
    }
    return {tenant: _rules(tenant, stored.get(tenant)) for tenant in known}


def _rules(tenant: str, config: dict[str, Any] | None) -> AlertRules:
    """A tenant's stored rules; the defaults if they no longer validate (one tenant never stops the rest)."""
    try:
        return rules_of(config)
    except ValidationError as exc:
        log.warning("alert_rules.settings_unreadable", tenant=tenant, errors=exc.error_count())
        return AlertRules()


async def past_deadline(
    conn: AsyncConnection, tenant: str, domain: str, deadline_seconds: float
) -> Sequence[Any]:
    """The tenant's payments of `domain` still unsettled longer than the deadline after registration."""
    query = select(
        payments.c.id,
        payments.c.tenant_id,
        payments.c.provider,
        payments.c.provider_ref,
        payments.c.domain,
        payments.c.entity_id,
        payments.c.status,
        payments.c.created_at,
    ).where(
        payments.c.tenant_id == tenant,
        payments.c.domain == domain,
        payments.c.status.in_(UNSETTLED),
        payments.c.created_at < func.now() - timedelta(seconds=deadline_seconds),
    )
    return (await conn.execute(query)).all()


async def gateways_with_failures(conn: AsyncConnection, since: timedelta) -> list[tuple[str, str]]:
    """(tenant, provider) pairs with a payment that failed within `since`: the only ones that can be over."""
    query = (
        select(payments.c.tenant_id, payments.c.provider)
        .where(payments.c.status == UnifiedStatus.FAILED.value)
        .where(payments.c.status_changed_at >= func.now() - since)
        .distinct()
    )
    return [(row.tenant_id, row.provider) for row in await conn.execute(query)]


async def latest_outcomes(
    conn: AsyncConnection, tenant: str, provider: str, of_last: int, window: timedelta
) -> tuple[int, int]:
    """(failed, outcomes) among the tenant's latest `of_last` outcomes at `provider` within `window`."""
    latest = (
        select(payments.c.status)
        .where(
            payments.c.tenant_id == tenant,
            payments.c.provider == provider,
            payments.c.status.in_(OUTCOMES),
            payments.c.status_changed_at >= func.now() - window,
        )
        .order_by(payments.c.status_changed_at.desc())
        .limit(of_last)
        .subquery()
    )
    failed = func.count().filter(latest.c.status == UnifiedStatus.FAILED.value)
    row = (await conn.execute(select(failed, func.count()).select_from(latest))).one()
    return int(row[0]), int(row[1])


async def open_subjects(conn: AsyncConnection, kind: str) -> dict[tuple[str, str], int]:
    """The open issues of `kind`: (tenant, subject) -> issue id."""
    rows = await conn.execute(
        select(sync_issues.c.id, sync_issues.c.tenant_id, sync_issues.c.subject).where(
            sync_issues.c.kind == kind, sync_issues.c.resolved_at.is_(None)
        )
    )
    return {(r.tenant_id, r.subject): r.id for r in rows}
