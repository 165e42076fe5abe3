"""SQL of check schedules: enrolment, claiming due checks, recording their outcomes."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    DateTime,
    Integer,
    String,
    bindparam,
    func,
    literal,
    literal_column,
    or_,
    select,
    text,
    true,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY, UUID, Insert, insert
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.dml import Update

from paysync_core.db.driver import DriverStatement
from paysync_core.db.schema import payments, reconcile_checks
from paysync_reconciler.repository.columns import CHECK_COLUMNS


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
        select(*CHECK_COLUMNS).select_from(
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


#: Payments one statement of `resolve_schedules` writes, as it always did (its two arrays are two
#: parameters however many; a bulk check settles up to `bulk_limit`, 10,000, at once).
_RESOLVE_BATCH = 2_000


async def resolve_schedules(conn: AsyncConnection, answers: dict[uuid.UUID, str], at: datetime) -> None:
    """Payments an out-of-schedule check found resolved need no more scheduled checks."""
    pids = list(answers)
    for start in range(0, len(pids), _RESOLVE_BATCH):
        batch = pids[start : start + _RESOLVE_BATCH]
        await conn.execute(_RESOLVE, {"ids": batch, "statuses": [answers[p] for p in batch], "at": at})


def _resolve_statement() -> Insert:
    """One statement, one round trip: each payment's schedule ended at `at` with the status found (`ids`,
    `statuses`: two arrays in step); a payment that is no longer there is skipped."""
    given = (
        func.unnest(bindparam("ids", type_=ARRAY(UUID)), bindparam("statuses", type_=ARRAY(String)))
        .table_valued("payment_id", "status")
        .render_derived()
    )
    at = bindparam("at", type_=DateTime(timezone=True))
    source = select(
        payments.c.id,
        payments.c.tenant_id,
        payments.c.provider,
        literal_column("0"),
        at,
        given.c.status,
        at,
        literal_column("1"),
    ).select_from(payments.join(given, given.c.payment_id == payments.c.id))
    stmt = insert(reconcile_checks).from_select(
        [
            "payment_id",
            "tenant_id",
            "provider",
            "step",
            "done_at",
            "last_status",
            "last_checked_at",
            "checks_made",
        ],
        source,
    )
    return stmt.on_conflict_do_update(
        index_elements=[reconcile_checks.c.payment_id],
        set_={
            "done_at": func.coalesce(reconcile_checks.c.done_at, stmt.excluded.done_at),
            "last_status": stmt.excluded.last_status,
            "last_checked_at": stmt.excluded.last_checked_at,
            "checks_made": reconcile_checks.c.checks_made + 1,
        },
    )


_RESOLVE = _resolve_statement()


async def resolve_schedules_and(
    conn: AsyncConnection,
    answers: dict[uuid.UUID, str],
    at: datetime,
    then: Update,
    then_values: dict[str, Any],
) -> bool:
    """`resolve_schedules` and the `then` statement (with its bound values) as one (the resolving insert
    a CTE of it): one round trip, atomic without BEGIN and COMMIT on a connection in autocommit. False,
    and nothing done, when the answers are more than one resolving statement takes: the caller uses a
    transaction then."""
    if len(answers) > _RESOLVE_BATCH:
        return False
    statement = _resolving.get(then)
    if statement is None:  # built and compiled once per `then`, sent past SQLAlchemy's execution layer
        statement = _resolving[then] = DriverStatement.of(then.add_cte(_RESOLVE.cte("resolved")))
    pids = list(answers)
    await statement.fetch(
        conn, {**then_values, "ids": pids, "statuses": [answers[p] for p in pids], "at": at}
    )
    return True


#: `resolve_schedules_and`'s statements, by the statement each resolves with (a few, built at import).
_resolving: dict[Update, DriverStatement] = {}


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
