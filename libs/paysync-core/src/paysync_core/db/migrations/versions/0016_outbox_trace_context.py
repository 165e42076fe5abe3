"""outbox.traceparent: the W3C trace context of the change behind each event, continued by the relay

Revision ID: 0016_outbox_trace_context
Revises: 0015_notifier_rule_indexes
Create Date: 2026-12-06 00:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0016_outbox_trace_context"
down_revision = "0015_notifier_rule_indexes"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Nullable, no default: adding it rewrites nothing, and events written before it relay untraced.
    op.add_column("outbox", sa.Column("traceparent", sa.String(length=255), nullable=True))


def downgrade() -> None:
    op.drop_column("outbox", "traceparent")
