"""gateway_budgets: each tenant's per-gateway token bucket, shared by every reconciler replica

Revision ID: 0014_gateway_budgets
Revises: 0010_app_webhooks
Create Date: 2026-12-05 22:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014_gateway_budgets"
down_revision = "0013_checkout"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "gateway_budgets",
        sa.Column("tenant_id", sa.String(length=63), nullable=False),
        sa.Column("provider", sa.String(length=16), nullable=False),
        sa.Column("tokens", sa.Float(), nullable=False),
        sa.Column("refilled_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_gateway_budgets_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("tenant_id", "provider", name=op.f("pk_gateway_budgets")),
    )


def downgrade() -> None:
    op.drop_table("gateway_budgets")
