"""The delivery log's SQL on the notifier's side: enter steps, plan follow-ups, claim, settle.

Every step of an alert to a target is one row with a unique key (tenant, alert, step, channel,
recipient): entering it twice, from a redelivered record or from two replicas, is a no-op. A row
is sent by whoever claims it (`FOR UPDATE SKIP LOCKED`, a lease); a claim whose lease ran out (its
sender crashed) is claimed again by any replica.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import bindparam, func, text
from sqlalchemy.dialects.postgresql import JSONB, insert
from sqlalchemy.ext.asyncio import AsyncConnection

from paysync_core.alerting import Target
from paysync_core.contracts import Alert
from paysync_core.db.alert_tables import alert_deliveries
from paysync_notifier.alert_settings import AlertDeliverySettings

#: Most rows one claim takes (several digests of several targets).
CLAIM_BATCH = 2000


async def enter_opened(
    conn: AsyncConnection, alert: Alert, targets: Sequence[Target], wait_seconds: float
) -> int:
    """Enter the `opened` step of `alert` for each target, due after the digest wait; returns rows new."""
    if not targets:
        return 0
    payload = alert.model_dump(mode="json", exclude_none=True)
    rows = [
        {
            "tenant_id": alert.tenant,
            "alert_id": alert.alert_id,
            "kind": alert.kind.value,
            "step": "opened",
            "watched": True,
            "channel": t.channel,
            "recipient": t.recipient,
            "alert": payload,
            "next_attempt_at": func.now() + timedelta(seconds=wait_seconds),
        }
        for t in targets
    ]
    statement = (
        insert(alert_deliveries).values(rows).on_conflict_do_nothing().returning(alert_deliveries.c.id)
    )
    return len((await conn.execute(statement)).all())


# A reminder once an issue has stayed open for the tenant's interval since its first message.
_REMINDERS = text("""
INSERT INTO alert_deliveries (tenant_id, alert_id, kind, step, channel, recipient, alert, next_attempt_at)
SELECT d.tenant_id, d.alert_id, d.kind, 'reminder', d.channel, d.recipient,
       d.alert || jsonb_build_object('opened_at', i.opened_at),
       now() + make_interval(secs => CAST(:wait AS float))
FROM alert_deliveries d
JOIN sync_issues i ON i.alert_id = d.alert_id AND i.tenant_id = d.tenant_id AND i.resolved_at IS NULL
JOIN alert_settings s ON s.tenant_id = d.tenant_id
WHERE d.watched AND d.status = 'sent' AND s.config ->> 'reminder_after_seconds' IS NOT NULL
  AND d.sent_at + make_interval(secs => (s.config ->> 'reminder_after_seconds')::float) <= now()
  AND NOT EXISTS (
    SELECT 1 FROM alert_deliveries f
    WHERE f.tenant_id = d.tenant_id AND f.alert_id = d.alert_id AND f.step = 'reminder'
      AND f.channel = d.channel AND f.recipient = d.recipient)
ON CONFLICT DO NOTHING
""")

# A resolved issue's settled openings stop being watched, and those that were sent get one
# resolution message, in one statement.
_RESOLUTIONS = text("""
WITH resolved AS (
  UPDATE alert_deliveries d SET watched = false
  FROM sync_issues i
  WHERE d.watched AND d.status IN ('sent', 'dead', 'skipped')
    AND i.alert_id = d.alert_id AND i.tenant_id = d.tenant_id AND i.resolved_at IS NOT NULL
  RETURNING d.tenant_id, d.alert_id, d.kind, d.channel, d.recipient, d.status, d.alert,
            i.opened_at, i.resolved_at
)
INSERT INTO alert_deliveries (tenant_id, alert_id, kind, step, channel, recipient, alert, next_attempt_at)
SELECT tenant_id, alert_id, kind, 'resolved', channel, recipient,
       alert || jsonb_build_object('opened_at', opened_at, 'resolved_at', resolved_at),
       now() + make_interval(secs => CAST(:wait AS float))
FROM resolved WHERE status = 'sent'
ON CONFLICT DO NOTHING
""")

# An alert with no sync issue (one the notifier raises itself, a rules alert whose subject was reopened
# by hand meanwhile, a newer producer's) has no reminder or resolution: once its opening is settled
# there is nothing to watch. Its issue row, when it has one, is written once the broker took the alert:
# by the transaction that publishes it, which commits a moment after (the reconciler), or right after
# the acknowledgement (the notifier's rules): the opening may be read and sent before then, so an issue
# is looked for until the row is some minutes old, not only once.
_UNWATCH_ISSUELESS = text("""
UPDATE alert_deliveries d SET watched = false
WHERE d.watched AND d.status IN ('sent', 'dead', 'skipped') AND d.created_at < now() - interval '5 minutes'
  AND NOT EXISTS (SELECT 1 FROM sync_issues i WHERE i.alert_id = d.alert_id AND i.tenant_id = d.tenant_id)
""")

# An issue resolved before its opening was first tried (within the digest wait or the tenant's
# quiet time) is not told at all: there is nothing left to act on.
_SKIP_RESOLVED = text("""
UPDATE alert_deliveries d SET status = 'skipped', watched = false, last_error = 'resolved before it was sent'
FROM sync_issues i
WHERE i.alert_id = d.alert_id AND i.tenant_id = d.tenant_id AND i.resolved_at IS NOT NULL
  AND d.watched AND d.status = 'pending' AND d.attempts = 0
""")


async def plan_follow_ups(conn: AsyncConnection, wait_seconds: float) -> int:
    """Skip openings already resolved; enter due reminders and resolutions (watched in `sync_issues`).

    Returns the rows entered."""
    await conn.execute(_SKIP_RESOLVED)
    entered = 0
    for statement in (_REMINDERS, _RESOLUTIONS):
        result = await conn.execute(statement, {"wait": float(wait_seconds)})
        entered += result.rowcount or 0
    await conn.execute(_UNWATCH_ISSUELESS)
    return entered


@dataclass(frozen=True)
class Claimed:
    """One claimed row: what to send, to whom, and how many tries it has had (this one included)."""

    id: int
    tenant_id: str
    alert_id: str
    kind: str
    step: str
    channel: str
    recipient: str
    alert: dict[str, Any]
    attempts: int


_CLAIM = text("""
WITH due AS (
  SELECT DISTINCT tenant_id, channel, recipient FROM alert_deliveries
  WHERE (status = 'pending' AND next_attempt_at <= now()) OR (status = 'sending' AND lease_until < now())
), picked AS (
  SELECT d.id FROM alert_deliveries d JOIN due USING (tenant_id, channel, recipient)
  WHERE (d.status = 'pending' AND (d.next_attempt_at <= now()
         OR (d.attempts = 0 AND d.next_attempt_at <= now() + make_interval(secs => CAST(:window AS float)))))
     OR (d.status = 'sending' AND d.lease_until < now())
  ORDER BY d.id LIMIT :limit FOR UPDATE OF d SKIP LOCKED
)
UPDATE alert_deliveries a
SET status = 'sending', attempts = a.attempts + 1, claimed_by = :me,
    lease_until = now() + make_interval(secs => CAST(:lease AS float))
FROM picked WHERE a.id = picked.id
RETURNING a.id, a.tenant_id, a.alert_id, a.kind, a.step, a.channel, a.recipient, a.alert, a.attempts
""").columns(alert=JSONB)


async def claim_due(conn: AsyncConnection, me: str, settings: AlertDeliverySettings) -> list[Claimed]:
    """Claim every due row of each target with one due row: a target's waiting alerts go out together.

    A row never tried (attempts 0) joins its target's next message if its own digest wait would end
    within one window (a row in a tenant's longer quiet time stays quiet); a row waiting for a retry
    goes only when its time comes.
    """
    values = {
        "limit": CLAIM_BATCH,
        "me": me,
        "lease": settings.alerts_lease_seconds,
        "window": settings.alerts_digest_window_seconds,
    }
    result = await conn.execute(_CLAIM, values)
    return [Claimed(**row._mapping) for row in result]


async def mark_sent(conn: AsyncConnection, ids: Sequence[int], me: str) -> None:
    """The rows went out in one message (of `len(ids)` alerts)."""
    await conn.execute(
        text(
            "UPDATE alert_deliveries SET status = 'sent', sent_at = now(), lease_until = NULL,"
            " last_error = NULL, digest_size = :size"
            " WHERE id IN :ids AND claimed_by = :me AND status = 'sending'"
        ).bindparams(bindparam("ids", expanding=True)),
        {"ids": list(ids), "me": me, "size": len(ids)},
    )


async def mark_failed(
    conn: AsyncConnection, ids: Sequence[int], me: str, failure: dict[str, Any]
) -> dict[str, int]:
    """Back to pending with a backoff, or dead once out of tries or not retryable; counts by status.

    `failure`: reason, retryable, retry_after (seconds or None), max_attempts, base, cap.
    """
    result = await conn.execute(
        text(
            "UPDATE alert_deliveries SET"
            " status = CASE WHEN CAST(:retryable AS boolean) AND attempts < CAST(:max_attempts AS int)"
            "   THEN 'pending' ELSE 'dead' END,"
            " next_attempt_at = now() + make_interval(secs => COALESCE(CAST(:retry_after AS float),"
            "   LEAST(CAST(:base AS float) * power(2, attempts - 1), CAST(:cap AS float)))),"
            " last_error = :reason, lease_until = NULL"
            " WHERE id IN :ids AND claimed_by = :me AND status = 'sending' RETURNING status"
        ).bindparams(bindparam("ids", expanding=True)),
        {"ids": list(ids), "me": me, **failure},
    )
    counts: dict[str, int] = {}
    for (status,) in result:
        counts[status] = counts.get(status, 0) + 1
    return counts
