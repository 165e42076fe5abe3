"""Tables people write by hand: the dead letters an operator redrove, the sync issues a tenant handled."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    DateTime,
    ForeignKey,
    Identity,
    Index,
    Integer,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    func,
)

from paysync_core.db.metadata import metadata

#: Dead letters an operator redrove (`paysync dlq redrive`): Kafka records cannot be deleted, so a
#: letter leaves the dead-letter view by having a row here, keyed by its own position.
dead_letter_redrives = Table(
    "dead_letter_redrives",
    metadata,
    Column("dlq_topic", String(255), nullable=False),
    Column("partition", Integer, nullable=False),
    Column("offset", BigInteger, nullable=False),
    Column("source_topic", String(255), nullable=False),
    Column("error_type", String(200), nullable=False),
    Column("redriven_partition", Integer, nullable=False),  # where the original went again
    Column("redriven_offset", BigInteger, nullable=False),
    Column("redriven_by", String(100), nullable=False),
    Column("redriven_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    PrimaryKeyConstraint("dlq_topic", "partition", "offset"),
)

#: The audit of sync issues handled through the API (`POST /v1/sync-issues/{id}/acknowledge`,
#: `/resolve`, `/reopen`): what, when, the note, and which API key did it.
sync_issue_actions = Table(
    "sync_issue_actions",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("issue_id", ForeignKey("sync_issues.id", ondelete="CASCADE"), nullable=False),
    Column("tenant_id", String(63), nullable=False),
    Column("action", String(16), nullable=False),
    Column("note", Text),
    Column("api_key_id", BigInteger),
    Column("api_key_prefix", String(16)),
    Column("at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    CheckConstraint("action IN ('acknowledge', 'resolve', 'reopen')", name="action"),
)
Index("ix_sync_issue_actions_issue", sync_issue_actions.c.issue_id, sync_issue_actions.c.id)
