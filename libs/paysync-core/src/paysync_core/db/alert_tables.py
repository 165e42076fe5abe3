"""Tables of admin alerts: each tenant's alert settings and the delivery log of every message."""

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
