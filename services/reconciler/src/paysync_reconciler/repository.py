"""All SQL of the reconciler."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any, Literal

from sqlalchemy import Integer, String, any_, bindparam, func, literal, or_, select, text, true, update
from sqlalchemy.dialects.postgresql import ARRAY, UUID, Insert, insert
from sqlalchemy.ext.asyncio import AsyncConnection

from paysync_core.db import REGISTERED_CHANNEL
from paysync_core.db.schema import (
    observations,
    parked_observations,
    payment_refs,
    payments,
    reconcile_checks,
    reconcile_requests,
    reconcile_ticks,
    reconcile_watermarks,
    sync_issues,
    tenants,
)

#: The namespace api-gateway derives payment ids in, so a payment created here and one registered
#: later for the same reference are the same payment.
PAYMENT_NAMESPACE = uuid.UUID("6f6e6c79-2d70-6179-7379-6e632d706179")
#: Advisory-lock namespace of sweeps (the first key of the two-key form; the projector uses ...0001).
_SWEEP_LOCKS = 0x5053_0002
#: Statuses before money moved that a gateway may still change.
OPEN = ("pending", "requires_action", "processing")
#: What a check needs of a payment (`_target` reads these).
_TARGET_COLUMNS = (
    payments.c.tenant_id,
    payments.c.provider,
    payments.c.provider_ref,
    payments.c.status,
    payments.c.amount_minor,
    payments.c.currency,
    payments.c.domain,
    payments.c.entity_id,
)
_PAYMENT_COLUMNS = (payments.c.id, *_TARGET_COLUMNS)
_CHECK_COLUMNS = (
    reconcile_checks.c.payment_id,
    reconcile_checks.c.step,
    reconcile_checks.c.listed_at,
    reconcile_checks.c.listed_status,
    *_TARGET_COLUMNS,
)


def payment_id_for(tenant: str, provider: str, provider_ref: str) -> uuid.UUID:
    """The id api-gateway would give this payment."""
    return uuid.uuid5(PAYMENT_NAMESPACE, f"{tenant}:{provider}:{provider_ref}")


# -- ticks ------------------------------------------------------------------------------------


async def record_tick(conn: AsyncConnection, values: dict[str, Any]) -> bool:
    """Take a tick on; False if some replica took it on already."""
    result = await conn.execute(
        insert(reconcile_ticks).values(**values).on_conflict_do_nothing().returning(reconcile_ticks.c.tick_id)
    )
    return result.first() is not None


async def finish_tick(conn: AsyncConnection, tick_id: str, status: str, stats: dict[str, Any]) -> None:
    """Record how a tick ended and what its sweep did."""
    await conn.execute(
        update(reconcile_ticks)
        .where(reconcile_ticks.c.tick_id == tick_id)
        .values(status=status, stats=stats, completed_at=func.now())
    )


def sweep_lock_key(tenant: str, provider: str) -> int:
    """The advisory lock key of one tenant's sweeps at one gateway (a signed 32-bit int)."""
    digest = hashlib.sha256(f"{tenant}:{provider}".encode()).digest()
    return int.from_bytes(digest[:4], "big", signed=True)


async def try_sweep_lock(conn: AsyncConnection, tenant: str, provider: str) -> bool:
    """Hold the sweep lock on this connection's session; False if another sweep holds it."""
    result = await conn.execute(
        select(func.pg_try_advisory_lock(_SWEEP_LOCKS, sweep_lock_key(tenant, provider)))
    )
    return bool(result.scalar())


async def release_sweep_lock(conn: AsyncConnection, tenant: str, provider: str) -> None:
    """Let go of the sweep lock."""
    await conn.execute(select(func.pg_advisory_unlock(_SWEEP_LOCKS, sweep_lock_key(tenant, provider))))


# -- check schedules ----------------------------------------------------------------------------


async def enroll(conn: AsyncConnection, tenant: str, provider: str, first_delay: float) -> int:
    """Give every payment of the tenant at the gateway that has no schedule yet its first step."""
    result = await conn.execute(enroll_statement(tenant, provider, first_delay))
    return result.rowcount or 0


def enroll_statement(tenant: str, provider: str, first_delay: float) -> Insert:
    """The statement `enroll` runs: every payment of the account, those with a schedule skipped."""
    # No anti-join against reconcile_checks: the statement inserts into that very table, and when
    # its statistics say it is empty (a fresh database) the planner picks a nested loop whose inner
    # scan re-reads every row inserted so far (O(n²): 146 s for 100,000 payments). The primary
    # key's conflict check skips payments that have a schedule, one index probe each, whatever
    # the statistics say.
    source = select(
        payments.c.id,
        payments.c.tenant_id,
        payments.c.provider,
        literal(0, Integer),
        payments.c.created_at + timedelta(seconds=first_delay),
    ).where(payments.c.tenant_id == tenant, payments.c.provider == provider)
    return (
        insert(reconcile_checks)
        .from_select(["payment_id", "tenant_id", "provider", "step", "next_check_at"], source)
        .on_conflict_do_nothing()
    )


async def analyze_checks(conn: AsyncConnection) -> None:
    """Refresh the planner's statistics of reconcile_checks (after a large enrolment)."""
    await conn.execute(text("ANALYZE reconcile_checks"))


async def claim_due(
    conn: AsyncConnection,
    tenant: str,
    provider: str,
    *,
    due_by: datetime,
    owner: str,
    lease: float,
    limit: int,
    not_listed_at: datetime | None = None,
) -> list[Any]:
    """Claim up to `limit` due checks no one holds (and no list touched, if asked); SKIP LOCKED."""
    now = func.now()
    due = (
        select(reconcile_checks.c.payment_id)
        .where(
            reconcile_checks.c.listed_at.is_distinct_from(not_listed_at) if not_listed_at else true(),
            reconcile_checks.c.tenant_id == tenant,
            reconcile_checks.c.provider == provider,
            reconcile_checks.c.done_at.is_(None),
            reconcile_checks.c.gave_up_at.is_(None),
            reconcile_checks.c.next_check_at <= due_by,
            or_(reconcile_checks.c.claimed_until.is_(None), reconcile_checks.c.claimed_until < now),
        )
        .order_by(reconcile_checks.c.next_check_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    claimed = (
        update(reconcile_checks)
        .where(reconcile_checks.c.payment_id.in_(due.scalar_subquery()))
        .values(claimed_by=owner, claimed_until=now + timedelta(seconds=lease))
        .returning(reconcile_checks.c.payment_id)
        .cte("claimed")
    )
    rows = await conn.execute(
        select(*_CHECK_COLUMNS).select_from(
            claimed.join(reconcile_checks, reconcile_checks.c.payment_id == claimed.c.payment_id).join(
                payments, payments.c.id == claimed.c.payment_id
            )
        )
    )
    return list(rows)


async def save_outcomes(conn: AsyncConnection, rows: Sequence[dict[str, Any]]) -> None:
    """Write each checked payment's schedule after its check, and let go of the claim."""
    if not rows:
        return
    await conn.execute(
        update(reconcile_checks)
        .where(reconcile_checks.c.payment_id == bindparam("pid"))
        .values(
            step=bindparam("step"),
            next_check_at=bindparam("next_check_at"),
            checks_made=reconcile_checks.c.checks_made + bindparam("made", type_=Integer),
            last_checked_at=func.coalesce(bindparam("checked_at"), reconcile_checks.c.last_checked_at),
            last_status=func.coalesce(bindparam("status"), reconcile_checks.c.last_status),
            last_error=bindparam("error"),
            done_at=bindparam("done_at"),
            gave_up_at=bindparam("gave_up_at"),
            claimed_by=None,
            claimed_until=None,
        ),
        list(rows),
    )


async def release_claims(conn: AsyncConnection, payment_ids: Sequence[uuid.UUID]) -> None:
    """Let go of claims without recording a check (the sweep was interrupted)."""
    if payment_ids:
        await conn.execute(
            update(reconcile_checks)
            .where(reconcile_checks.c.payment_id.in_(payment_ids))
            .values(claimed_by=None, claimed_until=None)
        )


async def resolve_schedules(conn: AsyncConnection, answers: dict[uuid.UUID, str], at: datetime) -> None:
    """Payments an out-of-schedule check found resolved need no more scheduled checks."""
    if not answers:
        return
    found = {
        r.id: r
        for r in await conn.execute(
            select(payments.c.id, payments.c.tenant_id, payments.c.provider).where(
                payments.c.id.in_(list(answers))
            )
        )
    }
    values = [
        {
            "payment_id": pid,
            "tenant_id": found[pid].tenant_id,
            "provider": found[pid].provider,
            "step": 0,
            "done_at": at,
            "last_status": status,
            "last_checked_at": at,
            "checks_made": 1,
        }
        for pid, status in answers.items()
        if pid in found
    ]
    if not values:
        return
    stmt = insert(reconcile_checks).values(values)
    await conn.execute(
        stmt.on_conflict_do_update(
            index_elements=[reconcile_checks.c.payment_id],
            set_={
                "done_at": func.coalesce(reconcile_checks.c.done_at, stmt.excluded.done_at),
                "last_status": stmt.excluded.last_status,
                "last_checked_at": stmt.excluded.last_checked_at,
                "checks_made": reconcile_checks.c.checks_made + 1,
            },
        )
    )


async def oldest_open_payment(conn: AsyncConnection, tenant: str, provider: str) -> datetime | None:
    """When the oldest payment whose checks are still going was registered."""
    result = await conn.execute(
        select(func.min(payments.c.created_at))
        .select_from(reconcile_checks.join(payments, payments.c.id == reconcile_checks.c.payment_id))
        .where(
            reconcile_checks.c.tenant_id == tenant,
            reconcile_checks.c.provider == provider,
            reconcile_checks.c.done_at.is_(None),
            reconcile_checks.c.gave_up_at.is_(None),
        )
    )
    return result.scalar()


# -- watermarks ---------------------------------------------------------------------------------


async def watermark(conn: AsyncConnection, tenant: str, provider: str, sweep: str) -> datetime | None:
    """How far the list sweep has read, if it ever has."""
    result = await conn.execute(
        select(reconcile_watermarks.c.watermark).where(
            reconcile_watermarks.c.tenant_id == tenant,
            reconcile_watermarks.c.provider == provider,
            reconcile_watermarks.c.sweep == sweep,
        )
    )
    return result.scalar()


async def advance_watermark(
    conn: AsyncConnection, tenant: str, provider: str, sweep: str, to: datetime
) -> None:
    """Move the watermark forward (never back)."""
    stmt = insert(reconcile_watermarks).values(tenant_id=tenant, provider=provider, sweep=sweep, watermark=to)
    await conn.execute(
        stmt.on_conflict_do_update(
            index_elements=[
                reconcile_watermarks.c.tenant_id,
                reconcile_watermarks.c.provider,
                reconcile_watermarks.c.sweep,
            ],
            set_={
                "watermark": func.greatest(reconcile_watermarks.c.watermark, stmt.excluded.watermark),
                "updated_at": func.now(),
            },
        )
    )


# -- payments -----------------------------------------------------------------------------------


async def resolve_refs(
    conn: AsyncConnection, tenant: str, provider: str, refs: Iterable[str]
) -> dict[str, uuid.UUID]:
    """The payment each known reference (or alias) belongs to."""
    refs = list(set(refs))
    if not refs:
        return {}
    rows = await conn.execute(
        select(payment_refs.c.ref, payment_refs.c.payment_id).where(
            payment_refs.c.tenant_id == tenant,
            payment_refs.c.provider == provider,
            payment_refs.c.ref == any_(bindparam("refs", refs, type_=ARRAY(String))),  # one plan, any count
        )
    )
    return {r.ref: r.payment_id for r in rows}



async def payments_by_id(conn: AsyncConnection, ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, Any]:
    """Payments by id."""
    ids = list(set(ids))
    if not ids:
        return {}
    rows = await conn.execute(
        select(*_PAYMENT_COLUMNS).where(payments.c.id == any_(bindparam("ids", ids, type_=ARRAY(UUID))))
    )
    return {r.id: r for r in rows}


async def payments_of_entity(conn: AsyncConnection, tenant: str, domain: str, entity_id: str) -> list[Any]:
    """Every payment of one domain entity, oldest first."""
    rows = await conn.execute(
        select(*_PAYMENT_COLUMNS)
        .where(payments.c.tenant_id == tenant, payments.c.domain == domain, payments.c.entity_id == entity_id)
        .order_by(payments.c.created_at, payments.c.id)
    )
    return list(rows)


async def open_payments(conn: AsyncConnection, tenant: str, limit: int) -> list[Any]:
    """The tenant's payments that have not ended and have no money moved, oldest first."""
    rows = await conn.execute(
        select(*_PAYMENT_COLUMNS)
        .where(payments.c.tenant_id == tenant, payments.c.status.in_(OPEN))
        .order_by(payments.c.created_at, payments.c.id)
        .limit(limit)
    )
    return list(rows)


async def statuses(conn: AsyncConnection, ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, str]:
    """Each payment's status now."""
    ids = list(set(ids))
    if not ids:
        return {}
    rows = await conn.execute(
        select(payments.c.id, payments.c.status).where(
            payments.c.id == any_(bindparam("ids", ids, type_=ARRAY(UUID)))
        )
    )
    return {r.id: r.status for r in rows}


async def applied(conn: AsyncConnection, tenant: str, observation_ids: Iterable[str]) -> set[str]:
    """Which of these observations the projector has applied (committed with their domain rows)."""
    ids = list(set(observation_ids))
    if not ids:
        return set()
    rows = await conn.execute(
        select(observations.c.observation_id).where(
            observations.c.tenant_id == tenant,
            observations.c.observation_id == any_(bindparam("ids", ids, type_=ARRAY(String))),
        )
    )
    return {r.observation_id for r in rows}


async def create_payment(conn: AsyncConnection, values: dict[str, Any], refs: Sequence[str]) -> bool:
    """Record a payment the gateway knows and paysync did not; False if it exists already."""
    result = await conn.execute(
        insert(payments).values(**values).on_conflict_do_nothing().returning(payments.c.id)
    )
    created = result.first() is not None
    if created:
        await conn.execute(
            insert(payment_refs)
            .values(
                [
                    {
                        "tenant_id": values["tenant_id"],
                        "provider": values["provider"],
                        "ref": r,
                        "payment_id": values["id"],
                    }
                    for r in dict.fromkeys(refs)
                ]
            )
            .on_conflict_do_nothing()
        )
        # The projector's matcher applies the parked observations of these references on commit.
        await conn.execute(text(f"NOTIFY {REGISTERED_CHANNEL}"))
    return created


# -- sync issues (shared with the projector) ----------------------------------------------------


async def open_issue(conn: AsyncConnection, row: dict[str, Any]) -> bool:
    """Open an issue; False if this alert (or an open issue of its kind and subject) exists already."""
    result = await conn.execute(
        insert(sync_issues).values(**row).on_conflict_do_nothing().returning(sync_issues.c.alert_id)
    )
    return result.first() is not None


async def open_issues(conn: AsyncConnection, rows: Sequence[dict[str, Any]]) -> set[str]:
    """Open the issues not open (or alerted) already; the alert ids of those that are new."""
    if not rows:
        return set()
    result = await conn.execute(
        insert(sync_issues).values(list(rows)).on_conflict_do_nothing().returning(sync_issues.c.alert_id)
    )
    return set(result.scalars())


async def issues_so_far(conn: AsyncConnection, tenant: str, kind: str, subject: str) -> int:
    """How many issues of `kind` about `subject` there have been."""
    result = await conn.execute(
        select(func.count()).where(
            sync_issues.c.tenant_id == tenant, sync_issues.c.kind == kind, sync_issues.c.subject == subject
        )
    )
    return int(result.scalar() or 0)


async def resolve_issue(conn: AsyncConnection, tenant: str, kind: str, subject: str) -> None:
    """Close the open issue of `kind` about `subject`, so a recurrence is a new one."""
    await conn.execute(
        update(sync_issues)
        .where(
            sync_issues.c.tenant_id == tenant,
            sync_issues.c.kind == kind,
            sync_issues.c.subject == subject,
            sync_issues.c.resolved_at.is_(None),
        )
        .values(resolved_at=func.now())
    )


# -- on-demand requests -------------------------------------------------------------------------

Started = Literal["new", "taken_over", "completed", "busy"]


async def start_request(
    conn: AsyncConnection, values: dict[str, Any], owner: str, lease: float, max_attempts: int
) -> tuple[Started, dict[str, Any] | None]:
    """Take a request on, or say who has it: new (or queued by api-gateway), taken over (its worker
    died or it failed, with attempts left), completed, busy (or failed: the follow-up link says why)."""
    until = func.now() + timedelta(seconds=lease)
    inserted = await conn.execute(
        insert(reconcile_requests)
        .values(**values, handled_by=owner, lease_until=until, attempts=1)
        .on_conflict_do_nothing()
        .returning(reconcile_requests.c.request_id)
    )
    if inserted.first() is not None:
        return "new", None
    for was, state in (("queued", "new"), ("running", "taken_over")):
        taken = await conn.execute(
            update(reconcile_requests)
            .where(
                reconcile_requests.c.request_id == values["request_id"],
                reconcile_requests.c.status == was,
                # queued: by api-gateway, so that its follow-up link answers before anyone starts
                true() if was == "queued" else reconcile_requests.c.lease_until < func.now(),
                reconcile_requests.c.attempts < max_attempts,
            )
            .values(
                status="running",
                handled_by=owner,
                lease_until=until,
                attempts=reconcile_requests.c.attempts + 1,
            )
            .returning(reconcile_requests.c.request_id)
        )
        if taken.first() is not None:
            return state, None
    row = (
        await conn.execute(
            select(reconcile_requests.c.status, reconcile_requests.c.reply).where(
                reconcile_requests.c.request_id == values["request_id"]
            )
        )
    ).first()
    if row is not None and row.status == "completed":
        return "completed", row.reply
    return "busy", None


async def purge_finished(conn: AsyncConnection, before: datetime, limit: int = 10_000) -> int:
    """Delete completed requests and finished ticks from before `before` (a batch at a time)."""
    requests = await conn.execute(
        text(
            "DELETE FROM reconcile_requests WHERE request_id IN (SELECT request_id FROM reconcile_requests"
            " WHERE status IN ('completed', 'failed') AND completed_at < :before LIMIT :limit)"
        ),
        {"before": before, "limit": limit},
    )
    ticks = await conn.execute(
        text(
            "DELETE FROM reconcile_ticks WHERE tick_id IN (SELECT tick_id FROM reconcile_ticks"
            " WHERE completed_at < :before LIMIT :limit)"
        ),
        {"before": before, "limit": limit},
    )
    return (requests.rowcount or 0) + (ticks.rowcount or 0)


async def renew_lease(conn: AsyncConnection, request_id: str, owner: str, lease: float) -> None:
    """Keep holding a running request."""
    await conn.execute(
        update(reconcile_requests)
        .where(
            reconcile_requests.c.request_id == request_id,
            reconcile_requests.c.handled_by == owner,
            reconcile_requests.c.status == "running",
        )
        .values(lease_until=func.now() + timedelta(seconds=lease))
    )


async def complete_request(conn: AsyncConnection, request_id: str, reply: dict[str, Any]) -> None:
    """Store the reply: the follow-up endpoint serves it from here."""
    await conn.execute(
        update(reconcile_requests)
        .where(reconcile_requests.c.request_id == request_id)
        .values(status="completed", reply=reply, completed_at=func.now(), lease_until=None)
    )


async def claim_orphaned_requests(
    conn: AsyncConnection, owner: str, lease: float, limit: int, max_attempts: int
) -> list[Any]:
    """Take over running requests whose lease ran out (their worker died, or their last attempt
    failed) and queued ones that no reconciler picked up from Kafka in time, while attempts are left."""
    stale = (
        select(reconcile_requests.c.request_id)
        .where(
            reconcile_requests.c.status.in_(("running", "queued")),
            reconcile_requests.c.lease_until < func.now(),
            reconcile_requests.c.attempts < max_attempts,
        )
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    rows = await conn.execute(
        update(reconcile_requests)
        .where(reconcile_requests.c.request_id.in_(stale.scalar_subquery()))
        .values(
            status="running",
            handled_by=owner,
            lease_until=func.now() + timedelta(seconds=lease),
            attempts=reconcile_requests.c.attempts + 1,
        )
        .returning(reconcile_requests.c.request)
    )
    return [r.request for r in rows]


async def fail_request(
    conn: AsyncConnection, request_id: str, owner: str, reason: str, max_attempts: int
) -> bool:
    """Record that this attempt failed: the request ends `failed` with the reason if it had its last
    attempt (True); otherwise it stays running until its lease ends, and is tried again then."""
    failed = await conn.execute(
        update(reconcile_requests)
        .where(
            reconcile_requests.c.request_id == request_id,
            reconcile_requests.c.handled_by == owner,
            reconcile_requests.c.status == "running",
            reconcile_requests.c.attempts >= max_attempts,
        )
        .values(status="failed", error=reason, completed_at=func.now(), lease_until=None)
        .returning(reconcile_requests.c.request_id)
    )
    if failed.first() is not None:
        return True
    await conn.execute(  # the reason of the latest attempt, kept for when the last one fails too
        update(reconcile_requests)
        .where(reconcile_requests.c.request_id == request_id, reconcile_requests.c.handled_by == owner)
        .values(error=reason)
    )
    return False


async def fail_abandoned_requests(conn: AsyncConnection, max_attempts: int) -> int:
    """End `failed` the requests whose every attempt ran out its lease (their worker kept dying)."""
    result = await conn.execute(
        update(reconcile_requests)
        .where(
            reconcile_requests.c.status == "running",
            reconcile_requests.c.lease_until < func.now(),
            reconcile_requests.c.attempts >= max_attempts,
        )
        .values(
            status="failed",
            error=func.coalesce(reconcile_requests.c.error, f"no answer after {max_attempts} attempts"),
            completed_at=func.now(),
            lease_until=None,
        )
    )
    return result.rowcount or 0


# -- tenants --------------------------------------------------------------------------------------


async def has_payments(conn: AsyncConnection, tenant: str, provider: str) -> bool:
    """Whether the tenant has any payment at the gateway (an index lookup)."""
    found = await conn.execute(
        select(literal(1)).where(payments.c.tenant_id == tenant, payments.c.provider == provider).limit(1)
    )
    return found.first() is not None


async def tenant_exists(conn: AsyncConnection, tenant: str) -> bool:
    """Whether the tenant exists."""
    found = await conn.execute(select(tenants.c.id).where(tenants.c.id == tenant))
    return found.first() is not None


async def tenants_with_credentials(conn: AsyncConnection, only: Sequence[str] = ()) -> list[str]:
    """Tenants that have gateway credentials stored (only those named, if any are)."""
    query = select(tenants.c.id).where(tenants.c.credentials_ciphertext.is_not(None))
    if only:
        query = query.where(tenants.c.id.in_(list(only)))
    return [r.id for r in await conn.execute(query.order_by(tenants.c.id))]


async def payments_by_refs(
    conn: AsyncConnection, tenant: str, provider: str | None, refs: Sequence[str]
) -> dict[str, Any]:
    """The payments these references (or aliases) name: ref -> payment row (any gateway if none given)."""
    if not refs:
        return {}
    query = (
        select(payment_refs.c.ref, *_PAYMENT_COLUMNS)
        .select_from(payment_refs.join(payments, payments.c.id == payment_refs.c.payment_id))
        .where(payment_refs.c.tenant_id == tenant, payment_refs.c.ref.in_(list(set(refs))))
    )
    if provider is not None:
        query = query.where(payment_refs.c.provider == provider)
    return {r.ref: r for r in await conn.execute(query)}


async def note_listed(
    conn: AsyncConnection, listed: dict[uuid.UUID, tuple[str, bool]], at: datetime
) -> dict[uuid.UUID, bool]:
    """Note each payment's listed answer (status, closes?); a due check it closes ends. Those noted."""
    # The first (newest) answer of a sweep stands; a due check the answer closes needs no call.
    if not listed:
        return {}
    ends = "(v.closes AND c.next_check_at <= :at AND c.done_at IS NULL AND c.gave_up_at IS NULL)"
    rows = await conn.execute(
        text(
            "UPDATE reconcile_checks AS c SET listed_at = :at, listed_status = v.status,"
            f" done_at = CASE WHEN {ends} THEN :at ELSE c.done_at END,"
            f" checks_made = c.checks_made + CASE WHEN {ends} THEN 1 ELSE 0 END,"
            f" last_checked_at = CASE WHEN {ends} THEN :at ELSE c.last_checked_at END,"
            f" last_status = CASE WHEN {ends} THEN v.status ELSE c.last_status END,"
            f" step = c.step + CASE WHEN {ends} THEN 1 ELSE 0 END"
            " FROM unnest(CAST(:ids AS uuid[]), CAST(:statuses AS text[]), CAST(:closes AS boolean[]))"
            " AS v(pid, status, closes)"
            " WHERE c.payment_id = v.pid AND (c.listed_status IS NULL OR c.listed_at IS DISTINCT FROM :at)"
            " RETURNING c.payment_id, c.done_at = :at AS ended"
        ),
        {
            "at": at,
            "ids": list(listed),
            "statuses": [v[0] for v in listed.values()],
            "closes": [v[1] for v in listed.values()],
        },
    )
    return {r.payment_id: bool(r.ended) for r in rows}


async def touch_listed(conn: AsyncConnection, payment_ids: set[uuid.UUID], at: datetime) -> None:
    """Mark payments a list touched at this sweep; their answers (statuses) are noted when read."""
    if payment_ids:
        await conn.execute(
            text(
                "UPDATE reconcile_checks SET listed_at = :at, listed_status = NULL"
                " WHERE payment_id = ANY(CAST(:ids AS uuid[])) AND listed_at IS DISTINCT FROM :at"
            ),
            {"at": at, "ids": list(payment_ids)},
        )


async def orphaned_successes(
    conn: AsyncConnection, tenant: str, provider: str, older_than: datetime, limit: int
) -> list[Any]:
    """Verified successes the projector parked (no payment matched them) since before `older_than`."""
    rows = await conn.execute(
        select(parked_observations.c.id, parked_observations.c.refs, parked_observations.c.payload)
        .where(
            parked_observations.c.tenant_id == tenant,
            parked_observations.c.provider == provider,
            parked_observations.c.created_at < older_than,
            parked_observations.c.payload["verified"].as_boolean().is_(True),
            parked_observations.c.payload["status"].as_string() == "succeeded",
        )
        .order_by(parked_observations.c.id)
        .limit(limit)
    )
    return list(rows)


async def parked_aliases(conn: AsyncConnection, tenant: str, provider: str, refs: Sequence[str]) -> set[str]:
    """Which of these references another parked observation names as its alias (so it is not a root)."""
    if not refs:
        return set()
    rows = await conn.execute(
        text(
            "SELECT DISTINCT a.ref FROM parked_observations p,"
            " LATERAL jsonb_array_elements_text(p.payload->'aliases') AS a(ref)"
            " WHERE p.tenant_id = :tenant AND p.provider = :provider AND a.ref = ANY(CAST(:refs AS text[]))"
        ),
        {"tenant": tenant, "provider": provider, "refs": list(set(refs))},
    )
    return {r.ref for r in rows}
