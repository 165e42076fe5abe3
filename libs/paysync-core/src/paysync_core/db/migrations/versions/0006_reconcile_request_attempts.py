"""reconciler: on-demand checks count their attempts and can end failed, with the reason

Revision ID: 0006_reconcile_request_attempts
Revises: 0005_quarantine_retention
Create Date: 2026-12-05 12:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006_reconcile_request_attempts"
down_revision = "0005_quarantine_retention"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "reconcile_requests", sa.Column("attempts", sa.Integer(), server_default="0", nullable=False)
    )
    op.add_column("reconcile_requests", sa.Column("error", sa.Text(), nullable=True))


def downgrade() -> None:
    op.drop_column("reconcile_requests", "error")
    op.drop_column("reconcile_requests", "attempts")
