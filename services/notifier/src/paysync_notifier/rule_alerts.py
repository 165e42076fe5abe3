"""What each rule on status changes finds, as alerts: pure functions of the rows the rules read.

Each finding is keyed by (tenant, subject) and builds its alert for a given occurrence, so a
recurrence after a resolution is a new alert (and a new issue), and a duplicate is recognisable.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from paysync_core.alert_rules import FailureRateRule
from paysync_core.contracts import Alert, AlertKind, EntityRef, Provider, alert_id

#: A finding: the alert of its n-th occurrence.
Build = Callable[[int], Alert]


def _duration(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


def past_deadline(row: Any, deadline_seconds: float, now: datetime) -> Build:
    """A payment of a domain with a deadline, unsettled past it since its status last changed."""
    title = Provider(row.provider).display_name
    waited = int((now - row.status_since).total_seconds())
    since = "it was registered" if row.status_since == row.created_at else f"it became {row.status}"
    detail = (
        f"{title} payment {row.provider_ref} for {row.domain} {row.entity_id} is still {row.status} "
        f"{_duration(waited)} after {since}; this tenant expects {row.domain} payments to settle "
        f"within {_duration(deadline_seconds)}. Check it with the gateway, or with the customer."
    )
    facts = {
        "status": row.status,
        "deadline_seconds": int(deadline_seconds),
        "registered_at": row.created_at.isoformat(),
        "status_since": row.status_since.isoformat(),
    }

    def build(occurrence: int) -> Alert:
        return Alert(
            alert_id=alert_id(AlertKind.PAYMENT_PAST_DEADLINE, row.tenant_id, str(row.id), occurrence),
            kind=AlertKind.PAYMENT_PAST_DEADLINE,
            tenant=row.tenant_id,
            payment_id=str(row.id),
            provider=row.provider,
            provider_ref=row.provider_ref,
            entity=EntityRef(domain=row.domain, entity_id=row.entity_id) if row.entity_id else None,
            detail=detail,
            facts=facts,
            occurrence=occurrence,
            raised_at=now,
        )

    return build


def failure_rate(
    tenant: str, provider: str, failed: int, outcomes: int, rule: FailureRateRule, now: datetime
) -> Build:
    """Too many of a gateway's latest payments failed for this tenant."""
    title = Provider(provider).display_name
    detail = (
        f"{failed} of the last {outcomes} {title} payments that reached an outcome within "
        f"{_duration(rule.window_seconds)} failed (the alert opens at {rule.min_failed} of the last "
        f"{rule.of_last}). Customers may be unable to pay through {title}: look at the failures' reasons "
        f"in the {title} dashboard."
    )
    facts = {
        "failed": failed,
        "outcomes": outcomes,
        "min_failed": rule.min_failed,
        "of_last": rule.of_last,
        "window_seconds": int(rule.window_seconds),
    }
    return _subject_alert(
        AlertKind.GATEWAY_FAILURE_RATE, tenant, f"failures:{provider}", detail, facts, now, provider
    )


def dead_letters(row: Any, now: datetime) -> Build:
    """Records of the tenant on a dead-letter topic: something failed for good and waits for a redrive.

    `row`: tenant_id, dlq_topic, letters (how many), reasons, first_letter (the oldest one's id)."""
    tenant, dlq_topic, reasons = row.tenant_id, row.dlq_topic, sorted(row.reasons)
    detail = (
        f"{row.letters} record(s) of this tenant are on the dead-letter topic {dlq_topic} "
        f"({', '.join(reasons)}): they failed after retries and were not applied. Look at them with "
        f"`paysync dlq list --topic {dlq_topic} --tenant {tenant}`, fix the cause, then redrive them."
    )
    facts = {
        "dlq_topic": dlq_topic,
        "letters": row.letters,
        "reasons": ", ".join(reasons)[:300],
        "first_letter": row.first_letter,
    }
    return _subject_alert(AlertKind.DEAD_LETTERS, tenant, f"dlq:{dlq_topic}", detail, facts, now)


def _subject_alert(
    kind: AlertKind,
    tenant: str,
    subject: str,
    detail: str,
    facts: dict[str, Any],
    now: datetime,
    provider: str | None = None,
) -> Build:
    def build(occurrence: int) -> Alert:
        return Alert(
            alert_id=alert_id(kind, tenant, subject, occurrence),
            kind=kind,
            tenant=tenant,
            provider=provider,
            detail=detail,
            facts=facts,
            occurrence=occurrence,
            raised_at=now,
        )

    return build
