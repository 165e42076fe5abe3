"""The reconciler's tables: schedule ticks, per-payment checks, sweep watermarks, on-demand requests."""

from __future__ import annotations

from sqlalchemy import (
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB

from paysync_core.db.metadata import created_at, metadata, updated_at

#: Schedule ticks the reconciler has taken on; the unique id makes a duplicate tick a no-op.
reconcile_ticks = Table(
    "reconcile_ticks",
    metadata,
    Column("tick_id", String(200), primary_key=True),
    Column("tenant_id", String(63), nullable=False),
    Column("provider", String(16), nullable=False),
    Column("scheduled_at", DateTime(timezone=True), nullable=False),
    Column("source", String(16), nullable=False),
    Column("status", String(16), nullable=False, server_default="running"),
    Column("handled_by", String(200), nullable=False),
    Column("stats", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    Column("received_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("completed_at", DateTime(timezone=True)),
)
Index("ix_reconcile_ticks_tenant_received", reconcile_ticks.c.tenant_id, reconcile_ticks.c.received_at)

#: One payment's check schedule: the step it is at, when that step is due, who holds it now.
reconcile_checks = Table(
    "reconcile_checks",
    metadata,
    Column("payment_id", ForeignKey("payments.id", ondelete="CASCADE"), primary_key=True),
    Column("tenant_id", String(63), nullable=False),
    Column("provider", String(16), nullable=False),
    Column("step", Integer, nullable=False, server_default="0"),
    Column("next_check_at", DateTime(timezone=True)),
    Column("checks_made", Integer, nullable=False, server_default="0"),
    Column("last_checked_at", DateTime(timezone=True)),
    Column("last_status", String(32)),
    Column("last_error", Text),
    Column("listed_at", DateTime(timezone=True)),
    Column("listed_status", String(32)),
    Column("claimed_by", String(200)),
    Column("claimed_until", DateTime(timezone=True)),
    Column("done_at", DateTime(timezone=True)),
    Column("gave_up_at", DateTime(timezone=True)),
    created_at(),
)
Index(
    "ix_reconcile_checks_due",
    reconcile_checks.c.tenant_id,
    reconcile_checks.c.provider,
    reconcile_checks.c.next_check_at,
    postgresql_where=reconcile_checks.c.done_at.is_(None) & reconcile_checks.c.gave_up_at.is_(None),
)

#: How far each list sweep has read, advanced only after what it found was acknowledged.
reconcile_watermarks = Table(
    "reconcile_watermarks",
    metadata,
    Column("tenant_id", String(63), nullable=False),
    Column("provider", String(16), nullable=False),
    Column("sweep", String(32), nullable=False),
    Column("watermark", DateTime(timezone=True), nullable=False),
    updated_at(),
    PrimaryKeyConstraint("tenant_id", "provider", "sweep"),
)

#: On-demand checks: the request, who works on it (lease), and the reply once done (202 follow-ups).
reconcile_requests = Table(
    "reconcile_requests",
    metadata,
    Column("request_id", String(200), primary_key=True),
    Column("tenant", String(63), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("status", String(16), nullable=False, server_default="running"),
    Column("request", JSONB, nullable=False),
    Column("reply", JSONB),
    Column("handled_by", String(200)),
    Column("lease_until", DateTime(timezone=True)),
    created_at(),
    Column("completed_at", DateTime(timezone=True)),
    # How many times a reconciler took the check on; past `request_max_attempts` it ends `failed`.
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("error", Text),  # why it failed (status `failed`), shown by its follow-up link
)
Index(
    "ix_reconcile_requests_running",
    reconcile_requests.c.lease_until,
    postgresql_where=reconcile_requests.c.status == "running",
)

#: Each tenant's gateway budget, one token bucket shared by every reconciler replica (`budget_lease.py`).
gateway_budgets = Table(
    "gateway_budgets",
    metadata,
    Column("tenant_id", String(63), ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False),
    Column("provider", String(16), nullable=False),
    Column("tokens", Float, nullable=False),
    Column("refilled_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    PrimaryKeyConstraint("tenant_id", "provider"),
)
