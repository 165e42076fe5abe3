"""Tables of admin alerts: each tenant's alert settings, the delivery log of every message, and what
the notifier's dead-letter rule has read of the dead-letter topics."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Identity,
    Index,
    Integer,
    LargeBinary,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB

from paysync_core.db.metadata import created_at, metadata, updated_at

#: A tenant's alert settings (api-gateway's admin surface and `paysync alerts config` write them):
#: `config` is what may be shown (recipients, kinds, reminder); the chat URLs and signing secrets
#: are in `secrets_ciphertext`, encrypted like gateway credentials.
alert_settings = Table(
    "alert_settings",
    metadata,
    Column("tenant_id", String(63), ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True),
    Column("config", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    Column("secrets_ciphertext", LargeBinary, nullable=True),
    created_at(),
    updated_at(),
)

#: One message step (opened, reminder, resolved) of one alert to one channel target. The unique key
#: is what makes replicas send each step once: whoever inserts the row first owns it, and a sender
#: claims it with a lease before sending, so a crashed sender's claim runs out and another retries.
alert_deliveries = Table(
    "alert_deliveries",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("tenant_id", String(63), nullable=False),
    Column("alert_id", String(64), nullable=False),
    Column("kind", String(48), nullable=False),
    Column("step", String(16), nullable=False),  # opened | reminder | resolved
    Column("channel", String(16), nullable=False),  # email | slack | webhook
    Column("recipient", String(320), nullable=False),  # an address, or a URL's host and fingerprint
    Column("alert", JSONB, nullable=False),  # the Alert, as published
    Column("status", String(16), nullable=False, server_default="pending"),  # alerting.DELIVERY_STATUSES
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("next_attempt_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("lease_until", DateTime(timezone=True)),
    Column("claimed_by", String(100)),
    Column("last_error", Text),
    Column("digest_size", Integer),  # how many alerts went out in the same message
    # An opening whose issue may still need a reminder or a resolution message; cleared once its
    # issue is resolved (or it has none), so that planning follow-ups reads only the live few.
    Column("watched", Boolean, nullable=False, server_default=text("false")),
    created_at(),
    Column("sent_at", DateTime(timezone=True)),
    UniqueConstraint("tenant_id", "alert_id", "step", "channel", "recipient"),
)
Index("ix_alert_deliveries_due", alert_deliveries.c.status, alert_deliveries.c.next_attempt_at)
Index(
    "ix_alert_deliveries_watched",
    alert_deliveries.c.tenant_id,
    alert_deliveries.c.alert_id,
    postgresql_where=alert_deliveries.c.watched,
)
Index("ix_alert_deliveries_tenant_created", alert_deliveries.c.tenant_id, alert_deliveries.c.created_at)

#: How far the notifier's dead-letter rule has read each dead-letter partition (the next offset to
#: read), moved once what it read is in `dead_letter_index`: replicas and restarts read each letter once.
dead_letter_positions = Table(
    "dead_letter_positions",
    metadata,
    Column("dlq_topic", String(255), nullable=False),
    Column("partition", Integer, nullable=False),
    Column("next_offset", BigInteger, nullable=False),
    updated_at(),
    PrimaryKeyConstraint("dlq_topic", "partition"),
)

#: The dead letters the rule has read that name a tenant, by their own position (as the redrive
#: ledger keys them): the rule's view of who has letters not redriven, without reading the topics
#: again. Rows go when their letter leaves the topic (retention).
dead_letter_index = Table(
    "dead_letter_index",
    metadata,
    Column("dlq_topic", String(255), nullable=False),
    Column("partition", Integer, nullable=False),
    Column("offset", BigInteger, nullable=False),
    Column("tenant_id", String(63), nullable=False),
    Column("reason", String(200), nullable=False),  # the error type (or `unreadable`)
    Column("written_at", DateTime(timezone=True), nullable=False),
    PrimaryKeyConstraint("dlq_topic", "partition", "offset"),
)
Index("ix_dead_letter_index_tenant_topic", dead_letter_index.c.tenant_id, dead_letter_index.c.dlq_topic)
