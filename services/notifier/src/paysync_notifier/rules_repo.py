"""SQL of the alert rules on status changes: the lock key, each tenant's rules, what each rule finds, issues.

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
from sqlalchemy import Select, and_, delete, func, or_, select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from paysync_core.alert_rules import AlertRules, rules_of
from paysync_core.db.alert_tables import alert_settings, dead_letter_index, dead_letter_positions
from paysync_core.db.schema import payments, sync_issues, tenants
from paysync_core.dlq_view import Letter, NewLetters, Partition
from paysync_core.domain.status import MONEY_MOVED, OPEN_OR_UNPAID, SETTLED, UnifiedStatus

log = structlog.get_logger()
#: Advisory-lock key of a round of rule evaluation: held, at session level, by the one replica evaluating
#: (`RuleEvaluator.evaluate`).
RULES_LOCK = 7355611
#: Statuses a payment waits in before it has an outcome (what a deadline applies to).
UNSETTLED = tuple(sorted(s.value for s in OPEN_OR_UNPAID - SETTLED))
#: A payment's outcomes (what a failure rate is measured among): money moved, or it never will.
OUTCOMES = tuple(sorted(s.value for s in SETTLED | MONEY_MOVED))


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


def past_deadline_query(tenant: str, domain: str, deadline_seconds: float) -> Select:
    """The tenant's payments of `domain` unsettled for longer than the deadline since their status last
    changed (registration, for one whose status never did): a change starts the deadline again."""
    since = func.coalesce(payments.c.status_changed_at, payments.c.created_at)
    return select(
        payments.c.id,
        payments.c.tenant_id,
        payments.c.provider,
        payments.c.provider_ref,
        payments.c.domain,
        payments.c.entity_id,
        payments.c.status,
        payments.c.created_at,
        since.label("status_since"),
    ).where(
        payments.c.tenant_id == tenant,
        payments.c.domain == domain,
        payments.c.status.in_(UNSETTLED),
        since < func.now() - timedelta(seconds=deadline_seconds),
    )


async def past_deadline(
    conn: AsyncConnection, tenant: str, domain: str, deadline_seconds: float
) -> Sequence[Any]:
    """The rows of `past_deadline_query`."""
    return (await conn.execute(past_deadline_query(tenant, domain, deadline_seconds))).all()


def failures_query(since: timedelta) -> Select:
    """(tenant, provider) pairs with a payment that failed within `since` (`ix_payments_status_changed`)."""
    return (
        select(payments.c.tenant_id, payments.c.provider)
        .where(payments.c.status == UnifiedStatus.FAILED.value)
        .where(payments.c.status_changed_at >= func.now() - since)
        .distinct()
    )


async def gateways_with_failures(conn: AsyncConnection, since: timedelta) -> list[tuple[str, str]]:
    """(tenant, provider) pairs with a payment that failed within `since`: the only ones that can be over."""
    return [(row.tenant_id, row.provider) for row in await conn.execute(failures_query(since))]


def latest_outcomes_query(tenant: str, provider: str, of_last: int, window: timedelta) -> Select:
    """(failed, outcomes) among the tenant's latest `of_last` outcomes at `provider` within `window`, read
    down `ix_payments_gateway_changed` however many payments the tenant has."""
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
    return select(failed, func.count()).select_from(latest)


async def latest_outcomes(
    conn: AsyncConnection, tenant: str, provider: str, of_last: int, window: timedelta
) -> tuple[int, int]:
    """(failed, outcomes) of `latest_outcomes_query`."""
    row = (await conn.execute(latest_outcomes_query(tenant, provider, of_last, window))).one()
    return int(row[0]), int(row[1])


async def open_subjects(conn: AsyncConnection, kind: str) -> dict[tuple[str, str], int]:
    """The open issues of `kind`: (tenant, subject) -> issue id."""
    rows = await conn.execute(
        select(sync_issues.c.id, sync_issues.c.tenant_id, sync_issues.c.subject).where(
            sync_issues.c.kind == kind, sync_issues.c.resolved_at.is_(None)
        )
    )
    return {(r.tenant_id, r.subject): r.id for r in rows}


async def dead_letter_read_positions(conn: AsyncConnection) -> dict[Partition, int]:
    """The next offset the dead-letter rule reads, per dead-letter partition it has read."""
    rows = await conn.execute(select(dead_letter_positions))
    return {(r.dlq_topic, r.partition): r.next_offset for r in rows}


def _index_row(letter: Letter) -> dict[str, Any] | None:
    tenant = letter.tenant
    if not isinstance(tenant, str) or not 0 < len(tenant) <= 63:
        return None  # no tenant to tell (or not one of ours): nothing for the rule to index
    topic, partition, offset = letter.position
    return {
        "dlq_topic": topic,
        "partition": partition,
        "offset": offset,
        "tenant_id": tenant,
        "reason": letter.reason[:200],
        "written_at": letter.written_at,
    }


async def index_dead_letters(conn: AsyncConnection, read: NewLetters) -> None:
    """Index the letters read that name a tenant, move each partition's position to its end, and drop
    the index rows of letters retention removed from the topic.

    Each statement may commit on its own (the rules run with no transaction open): the position moves only
    after the letters are indexed, which takes each once, and the next read drops what the last did not."""
    rows = [row for row in map(_index_row, read.letters) if row is not None]
    if rows:  # SQLAlchemy sends many rows in batches of one statement each ("insertmanyvalues")
        await conn.execute(insert(dead_letter_index).on_conflict_do_nothing(), rows)
    if read.spans:
        positions = [
            {"dlq_topic": topic, "partition": partition, "next_offset": end}
            for (topic, partition), (_, end) in read.spans.items()
        ]
        upsert = insert(dead_letter_positions).values(positions)
        await conn.execute(
            upsert.on_conflict_do_update(
                index_elements=["dlq_topic", "partition"],
                set_={"next_offset": upsert.excluded.next_offset, "updated_at": func.now()},
            )
        )
    t = dead_letter_index.c
    gone = [
        and_(t.dlq_topic == topic, t.partition == partition, t.offset < first)
        for (topic, partition), (first, _) in read.spans.items()
        if first > 0
    ]
    if gone:
        await conn.execute(delete(dead_letter_index).where(or_(*gone)))


# Per tenant and dead-letter topic: the indexed letters not in the redrive ledger.
_UNREDRIVEN = text("""
SELECT i.tenant_id, i.dlq_topic, count(*) AS letters, array_agg(DISTINCT i.reason) AS reasons,
       (array_agg(i.dlq_topic || ':' || i.partition || ':' || i."offset"
                  ORDER BY i.written_at, i.partition, i."offset"))[1] AS first_letter
FROM dead_letter_index i
WHERE NOT EXISTS (
  SELECT 1 FROM dead_letter_redrives r
  WHERE r.dlq_topic = i.dlq_topic AND r.partition = i.partition AND r."offset" = i."offset")
GROUP BY i.tenant_id, i.dlq_topic
""")


async def unredriven_letters(conn: AsyncConnection) -> Sequence[Any]:
    """(tenant_id, dlq_topic, letters, reasons, first_letter) for each tenant and topic with letters
    that were not redriven yet: the dead-letter view, from the index."""
    return (await conn.execute(_UNREDRIVEN)).all()
