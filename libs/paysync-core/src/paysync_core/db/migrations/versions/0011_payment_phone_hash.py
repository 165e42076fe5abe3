"""payments.phone_hash (M-Pesa lookups by phone, never the number); sync issues handled by hand

`payments.phone_hash` is an HMAC-SHA256 of the tenant and the payer's number in E.164 digits under
`PAYSYNC_PHONE_HASH_KEY`: a lookup by phone matches it, and the number itself is stored nowhere.
`sync_issues.acknowledged_at` marks an open issue someone is on; `sync_issue_actions` is the audit of
every acknowledge, resolve and reopen done through the API (who: the API key's id and prefix).

Revision ID: 0011_payment_phone_hash
Revises: 0010_app_webhooks
Create Date: 2026-12-05 21:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011_payment_phone_hash"
down_revision = "0010_app_webhooks"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("payments", sa.Column("phone_hash", sa.String(length=64), nullable=True))
    op.create_index(
        "ix_payments_tenant_phone_hash",
        "payments",
        ["tenant_id", "phone_hash"],
        unique=False,
        postgresql_where=sa.text("phone_hash IS NOT NULL"),
    )
    op.add_column("sync_issues", sa.Column("acknowledged_at", sa.DateTime(timezone=True), nullable=True))
    op.create_table(
        "sync_issue_actions",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("issue_id", sa.BigInteger(), nullable=False),
        sa.Column("tenant_id", sa.String(length=63), nullable=False),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("api_key_id", sa.BigInteger(), nullable=True),
        sa.Column("api_key_prefix", sa.String(length=16), nullable=True),
        sa.Column("at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint(
            "action IN ('acknowledge', 'resolve', 'reopen')", name=op.f("ck_sync_issue_actions_action")
        ),
        sa.ForeignKeyConstraint(
            ["issue_id"],
            ["sync_issues.id"],
            name=op.f("fk_sync_issue_actions_issue_id_sync_issues"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sync_issue_actions")),
    )
    op.create_index("ix_sync_issue_actions_issue", "sync_issue_actions", ["issue_id", "id"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_sync_issue_actions_issue", table_name="sync_issue_actions")
    op.drop_table("sync_issue_actions")
    op.drop_column("sync_issues", "acknowledged_at")
    op.drop_index(
        "ix_payments_tenant_phone_hash",
        table_name="payments",
        postgresql_where=sa.text("phone_hash IS NOT NULL"),
    )
    op.drop_column("payments", "phone_hash")
