"""projector: the built-in domains' tables, sync issues, outbox purge index

Revision ID: 0003_projector
Revises: 0002
Create Date: 2026-11-22 03:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0003_projector"
down_revision = "0002"
branch_labels = None
depends_on = None


def _timestamps() -> list[sa.Column]:
    return [
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
    ]


def upgrade() -> None:
    op.create_table(
        "workshop_payment_requests",
        sa.Column("tenant_id", sa.String(length=63), nullable=False),
        sa.Column("payment_id", sa.String(length=64), nullable=False),
        sa.Column("job_id", sa.String(length=200), nullable=False),
        sa.Column("provider", sa.String(length=16), nullable=False),
        sa.Column("session_id", sa.String(length=255), nullable=True),
        sa.Column("status", sa.String(length=32), server_default="pending", nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=True),
        sa.Column("currency", sa.String(length=3), nullable=True),
        sa.Column("amount_received_minor", sa.BigInteger(), nullable=True),
        sa.Column("paid_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("transaction_details", sa.Text(), nullable=True),
        *_timestamps(),
        sa.PrimaryKeyConstraint("tenant_id", "payment_id", name=op.f("pk_workshop_payment_requests")),
    )
    op.create_index(
        "ix_workshop_payment_requests_job", "workshop_payment_requests", ["tenant_id", "job_id"], unique=False
    )
    op.create_table(
        "bookings",
        sa.Column("tenant_id", sa.String(length=63), nullable=False),
        sa.Column("booking_id", sa.String(length=200), nullable=False),
        sa.Column("status", sa.String(length=32), server_default="pending", nullable=False),
        sa.Column("payment_status", sa.String(length=32), server_default="pending", nullable=False),
        sa.Column("payment_reference", sa.String(length=255), nullable=True),
        sa.Column("amount_paid_minor", sa.BigInteger(), nullable=True),
        sa.Column("currency", sa.String(length=3), nullable=True),
        sa.Column("paid_at", sa.DateTime(timezone=True), nullable=True),
        *_timestamps(),
        sa.PrimaryKeyConstraint("tenant_id", "booking_id", name=op.f("pk_bookings")),
    )
    op.create_table(
        "invoices",
        sa.Column("tenant_id", sa.String(length=63), nullable=False),
        sa.Column("invoice_id", sa.String(length=200), nullable=False),
        sa.Column("status", sa.String(length=16), server_default="draft", nullable=False),
        sa.Column("amount_paid_minor", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=True),
        sa.Column("paid_at", sa.DateTime(timezone=True), nullable=True),
        *_timestamps(),
        sa.CheckConstraint(
            "status IN ('draft', 'open', 'paid', 'void', 'uncollectible')", name=op.f("ck_invoices_status")
        ),
        sa.PrimaryKeyConstraint("tenant_id", "invoice_id", name=op.f("pk_invoices")),
    )
    op.create_table(
        "invoice_payments",
        sa.Column("tenant_id", sa.String(length=63), nullable=False),
        sa.Column("payment_id", sa.String(length=64), nullable=False),
        sa.Column("invoice_id", sa.String(length=200), nullable=False),
        sa.Column("provider", sa.String(length=16), nullable=False),
        sa.Column("provider_ref", sa.String(length=255), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=True),
        sa.Column("amount_refunded_minor", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=True),
        sa.Column("paid_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("receipt", sa.String(length=255), nullable=True),
        *_timestamps(),
        sa.PrimaryKeyConstraint("tenant_id", "payment_id", name=op.f("pk_invoice_payments")),
    )
    op.create_index(
        "ix_invoice_payments_invoice", "invoice_payments", ["tenant_id", "invoice_id"], unique=False
    )
    op.create_table(
        "referrals",
        sa.Column("tenant_id", sa.String(length=63), nullable=False),
        sa.Column("referral_id", sa.String(length=200), nullable=False),
        sa.Column("status", sa.String(length=32), server_default="pending", nullable=False),
        sa.Column("paid_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("amount_paid_minor", sa.BigInteger(), nullable=True),
        sa.Column("currency", sa.String(length=3), nullable=True),
        sa.Column("mpesa_receipt", sa.String(length=64), nullable=True),
        sa.Column("stk_pushes_sent", sa.Integer(), server_default="0", nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        *_timestamps(),
        sa.PrimaryKeyConstraint("tenant_id", "referral_id", name=op.f("pk_referrals")),
    )
    op.create_table(
        "sync_issues",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("alert_id", sa.String(length=64), nullable=False),
        sa.Column("tenant_id", sa.String(length=63), nullable=False),
        sa.Column("kind", sa.String(length=48), nullable=False),
        sa.Column("subject", sa.String(length=300), nullable=False),
        sa.Column("payment_id", sa.UUID(), nullable=True),
        sa.Column("domain", sa.String(length=63), nullable=True),
        sa.Column("entity_id", sa.String(length=200), nullable=True),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column(
            "facts",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column("occurrence", sa.Integer(), server_default="1", nullable=False),
        sa.Column("opened_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sync_issues")),
        sa.UniqueConstraint("alert_id", name=op.f("uq_sync_issues_alert_id")),
    )
    op.create_index(
        "uq_sync_issues_open",
        "sync_issues",
        ["tenant_id", "kind", "subject"],
        unique=True,
        postgresql_where=sa.text("resolved_at IS NULL"),
    )
    op.create_index("ix_sync_issues_tenant_opened", "sync_issues", ["tenant_id", "opened_at"], unique=False)
    op.create_index(
        "ix_outbox_published",
        "outbox",
        ["published_at"],
        unique=False,
        postgresql_where=sa.text("published_at IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index(
        "ix_outbox_published", table_name="outbox", postgresql_where=sa.text("published_at IS NOT NULL")
    )
    op.drop_index("ix_sync_issues_tenant_opened", table_name="sync_issues")
    op.drop_index(
        "uq_sync_issues_open", table_name="sync_issues", postgresql_where=sa.text("resolved_at IS NULL")
    )
    op.drop_table("sync_issues")
    op.drop_table("referrals")
    op.drop_index("ix_invoice_payments_invoice", table_name="invoice_payments")
    op.drop_table("invoice_payments")
    op.drop_table("invoices")
    op.drop_table("bookings")
    op.drop_index("ix_workshop_payment_requests_job", table_name="workshop_payment_requests")
    op.drop_table("workshop_payment_requests")
