"""reconciler: ticks, per-payment check schedules, list watermarks, on-demand requests

Revision ID: 0004_reconciler
Revises: 0003_projector
Create Date: 2026-11-22 04:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0004_reconciler"
down_revision = "0003_projector"
branch_labels = None
depends_on = None

_NOW = sa.text("now()")
_EMPTY = sa.text("'{}'::jsonb")


def upgrade() -> None:
    op.create_table(
        "reconcile_ticks",
        sa.Column("tick_id", sa.String(length=200), nullable=False),
        sa.Column("tenant_id", sa.String(length=63), nullable=False),
        sa.Column("provider", sa.String(length=16), nullable=False),
        sa.Column("scheduled_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), server_default="running", nullable=False),
        sa.Column("handled_by", sa.String(length=200), nullable=False),
        sa.Column("stats", postgresql.JSONB(astext_type=sa.Text()), server_default=_EMPTY, nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), server_default=_NOW, nullable=False),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("tick_id", name=op.f("pk_reconcile_ticks")),
    )
    op.create_index("ix_reconcile_ticks_tenant_received", "reconcile_ticks", ["tenant_id", "received_at"])
    op.create_table(
        "reconcile_checks",
        sa.Column("payment_id", sa.UUID(), nullable=False),
        sa.Column("tenant_id", sa.String(length=63), nullable=False),
        sa.Column("provider", sa.String(length=16), nullable=False),
        sa.Column("step", sa.Integer(), server_default="0", nullable=False),
        sa.Column("next_check_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("checks_made", sa.Integer(), server_default="0", nullable=False),
        sa.Column("last_checked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_status", sa.String(length=32), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("listed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("listed_status", sa.String(length=32), nullable=True),
        sa.Column("claimed_by", sa.String(length=200), nullable=True),
        sa.Column("claimed_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("done_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("gave_up_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=_NOW, nullable=False),
        sa.ForeignKeyConstraint(
            ["payment_id"],
            ["payments.id"],
            name=op.f("fk_reconcile_checks_payment_id_payments"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("payment_id", name=op.f("pk_reconcile_checks")),
    )
    op.create_index(
        "ix_reconcile_checks_due",
        "reconcile_checks",
        ["tenant_id", "provider", "next_check_at"],
        postgresql_where=sa.text("done_at IS NULL AND gave_up_at IS NULL"),
    )
    op.create_table(
        "reconcile_watermarks",
        sa.Column("tenant_id", sa.String(length=63), nullable=False),
        sa.Column("provider", sa.String(length=16), nullable=False),
        sa.Column("sweep", sa.String(length=32), nullable=False),
        sa.Column("watermark", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=_NOW, nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "provider", "sweep", name=op.f("pk_reconcile_watermarks")),
    )
    op.create_table(
        "reconcile_requests",
        sa.Column("request_id", sa.String(length=200), nullable=False),
        sa.Column("tenant", sa.String(length=63), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("status", sa.String(length=16), server_default="running", nullable=False),
        sa.Column("request", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("reply", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("handled_by", sa.String(length=200), nullable=True),
        sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=_NOW, nullable=False),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("request_id", name=op.f("pk_reconcile_requests")),
    )
    op.create_index(
        "ix_reconcile_requests_running",
        "reconcile_requests",
        ["lease_until"],
        postgresql_where=sa.text("status = 'running'"),
    )


def downgrade() -> None:
    op.drop_index(
        "ix_reconcile_requests_running",
        table_name="reconcile_requests",
        postgresql_where=sa.text("status = 'running'"),
    )
    op.drop_table("reconcile_requests")
    op.drop_table("reconcile_watermarks")
    op.drop_index(
        "ix_reconcile_checks_due",
        table_name="reconcile_checks",
        postgresql_where=sa.text("done_at IS NULL AND gave_up_at IS NULL"),
    )
    op.drop_table("reconcile_checks")
    op.drop_index("ix_reconcile_ticks_tenant_received", table_name="reconcile_ticks")
    op.drop_table("reconcile_ticks")
