"""notifier_rule_indexes: what the notifier's alert rules read without scanning

`dead_letter_positions` and `dead_letter_index`: the dead-letter rule reads each dead-letter
partition from where it stopped, and keeps the letters that name a tenant, instead of re-reading
every dead-letter topic each round. `ix_payments_gateway_changed` and `ix_payments_status_changed`:
the failure-rate rule's window queries (a tenant's latest outcomes at a gateway; the gateways with a
recent failure) read an index, not the whole payments table.

Revision ID: 0015_notifier_rule_indexes
Revises: 0014_gateway_budgets
Create Date: 2026-12-06 00:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from paysync_core.db.online_ddl import create_index_concurrently, drop_index_concurrently

revision = "0015_notifier_rule_indexes"
down_revision = "0014_gateway_budgets"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "dead_letter_positions",
        sa.Column("dlq_topic", sa.String(length=255), nullable=False),
        sa.Column("partition", sa.Integer(), nullable=False),
        sa.Column("next_offset", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("dlq_topic", "partition", name=op.f("pk_dead_letter_positions")),
    )
    op.create_table(
        "dead_letter_index",
        sa.Column("dlq_topic", sa.String(length=255), nullable=False),
        sa.Column("partition", sa.Integer(), nullable=False),
        sa.Column("offset", sa.BigInteger(), nullable=False),
        sa.Column("tenant_id", sa.String(length=63), nullable=False),
        sa.Column("reason", sa.String(length=200), nullable=False),
        sa.Column("written_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("dlq_topic", "partition", "offset", name=op.f("pk_dead_letter_index")),
    )
    op.create_index(
        "ix_dead_letter_index_tenant_topic", "dead_letter_index", ["tenant_id", "dlq_topic"], unique=False
    )
    # `payments` is written by every webhook: its indexes are built without blocking those writes.
    create_index_concurrently(
        "ix_payments_gateway_changed", "payments", ["tenant_id", "provider", "status_changed_at"]
    )
    create_index_concurrently("ix_payments_status_changed", "payments", ["status", "status_changed_at"])


def downgrade() -> None:
    drop_index_concurrently("ix_payments_status_changed", "payments")
    drop_index_concurrently("ix_payments_gateway_changed", "payments")
    op.drop_index("ix_dead_letter_index_tenant_topic", table_name="dead_letter_index")
    op.drop_table("dead_letter_index")
    op.drop_table("dead_letter_positions")
