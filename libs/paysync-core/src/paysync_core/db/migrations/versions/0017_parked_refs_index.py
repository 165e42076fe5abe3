"""parked_observations.refs: a GIN index, so a newly bound alias finds the observations parked under it

Revision ID: 0017_parked_refs_index
Revises: 0016_outbox_trace_context
Create Date: 2026-12-06 17:40:00
"""

from __future__ import annotations

from paysync_core.db.online_ddl import create_index_concurrently, drop_index_concurrently

revision = "0017_parked_refs_index"
down_revision = "0016_outbox_trace_context"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # The projector asks, for each alias a batch binds, whether a parked row names it (`refs ? alias`);
    # without this index that is a scan of every parked row, permanent orphans included, per batch.
    # Built without blocking the projector's parking and unparking (the table can be large).
    create_index_concurrently("ix_parked_observations_refs", "parked_observations", ["refs"], using="gin")


def downgrade() -> None:
    drop_index_concurrently("ix_parked_observations_refs", "parked_observations")
