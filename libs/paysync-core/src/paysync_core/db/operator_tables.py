"""Tables the operator's `paysync` command writes: the dead letters it redrove."""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, DateTime, Integer, PrimaryKeyConstraint, String, Table, func

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
