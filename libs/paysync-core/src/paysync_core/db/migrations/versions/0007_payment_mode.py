"""payments.mode (test or live, fixed at registration); observations record their mode and a refusal

Existing payments get NULL (mode not known): the credentials they were registered under may have
been replaced since, and a guess from today's keys could refuse a payment's true observations.
A payment of unknown mode accepts observations of either mode, as before this migration.

Revision ID: 0007_payment_mode
Revises: 0006_reconcile_request_attempts
Create Date: 2026-12-05 13:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007_payment_mode"
down_revision = "0006_reconcile_request_attempts"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("payments", sa.Column("mode", sa.String(length=4), nullable=True))
    op.create_check_constraint(op.f("ck_payments_mode"), "payments", "mode IN ('test', 'live')")
    op.add_column("observations", sa.Column("mode", sa.String(length=4), nullable=True))
    op.add_column("observations", sa.Column("refused", sa.String(length=64), nullable=True))


def downgrade() -> None:
    op.drop_column("observations", "refused")
    op.drop_column("observations", "mode")
    op.drop_constraint(op.f("ck_payments_mode"), "payments", type_="check")
    op.drop_column("payments", "mode")
