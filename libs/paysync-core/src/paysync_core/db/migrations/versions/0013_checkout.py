"""checkouts (payments started through the API, by Idempotency-Key); payments.sends (M-Pesa pushes)

Revision ID: 0013_checkout
Revises: 0010_app_webhooks
Create Date: 2026-12-05 21:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0013_checkout"
down_revision = "0012_api_key_scopes"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("payments", sa.Column("sends", sa.Integer(), server_default="1", nullable=False))
    op.create_table(
        "checkouts",
        sa.Column("tenant_id", sa.String(length=63), nullable=False),
        sa.Column("idempotency_key", sa.String(length=255), nullable=False),
        sa.Column("payment_id", postgresql.UUID(as_uuid=True), nullable=False),
        sa.Column("provider", sa.String(length=16), nullable=False),
        sa.Column("request_hash", sa.String(length=64), nullable=False),
        sa.Column("request", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("state", sa.String(length=16), server_default="initiating", nullable=False),
        sa.Column("answer", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("sending_since", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("sent_sequence", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_checkouts_tenant_id_tenants"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("tenant_id", "idempotency_key", name=op.f("pk_checkouts")),
        sa.UniqueConstraint("payment_id", name=op.f("uq_checkouts_payment_id")),
    )
    op.create_index(
        "ix_checkouts_retried_pushes",
        "checkouts",
        ["last_sent_at"],
        postgresql_where=sa.text("provider = 'mpesa' AND attempts > 1"),
    )


def downgrade() -> None:
    op.drop_index("ix_checkouts_retried_pushes", table_name="checkouts")
    op.drop_table("checkouts")
    op.drop_column("payments", "sends")
