"""webhook_quarantine: an index on received_at, for deleting rows past their retention in batches

Revision ID: 0005_quarantine_retention
Revises: 0004_reconciler
Create Date: 2026-12-05 12:00:00
"""

from __future__ import annotations

from alembic import op

revision = "0005_quarantine_retention"
down_revision = "0004_reconciler"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_webhook_quarantine_received_at", "webhook_quarantine", ["received_at"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_webhook_quarantine_received_at", table_name="webhook_quarantine")
