"""dead_letter_redrives: the ledger of dead letters an operator republished (`paysync dlq redrive`)

Revision ID: 0008_dead_letter_redrives
Revises: 0007_payment_mode
Create Date: 2026-12-05 15:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008_dead_letter_redrives"
down_revision = "0007_payment_mode"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "dead_letter_redrives",
        sa.Column("dlq_topic", sa.String(length=255), nullable=False),
        sa.Column("partition", sa.Integer(), nullable=False),
        sa.Column("offset", sa.BigInteger(), nullable=False),
        sa.Column("source_topic", sa.String(length=255), nullable=False),
        sa.Column("error_type", sa.String(length=200), nullable=False),
        sa.Column("redriven_partition", sa.Integer(), nullable=False),
        sa.Column("redriven_offset", sa.BigInteger(), nullable=False),
        sa.Column("redriven_by", sa.String(length=100), nullable=False),
        sa.Column("redriven_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("dlq_topic", "partition", "offset", name=op.f("pk_dead_letter_redrives")),
    )


def downgrade() -> None:
    op.drop_table("dead_letter_redrives")
