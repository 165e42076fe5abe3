"""Tables of the status-change webhooks sent to tenants' own endpoints (Standard Webhooks)."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
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
from sqlalchemy.dialects.postgresql import ARRAY

from paysync_core.db.metadata import created_at, metadata, updated_at

#: A tenant's HTTPS endpoint: where its status changes go, which ones, and the secrets that sign them.
webhook_endpoints = Table(
    "webhook_endpoints",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("tenant_id", String(63), ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False),
    Column("url", String(2000), nullable=False),
    Column("description", String(500), nullable=False, server_default=""),
    # Empty: every domain / every new status.
    Column("domains", ARRAY(String(63)), nullable=False, server_default=text("'{}'")),
    Column("statuses", ARRAY(String(32)), nullable=False, server_default=text("'{}'")),
    # Fernet (PAYSYNC_CREDENTIALS_KEYS) of a JSON list of {secret, expires_at}: never stored in clear.
    Column("secrets_ciphertext", LargeBinary, nullable=False),
    Column("disabled_at", DateTime(timezone=True)),
    Column("disabled_reason", String(500)),
    Column("failing_since", DateTime(timezone=True)),
    Column("consecutive_failures", Integer, nullable=False, server_default="0"),
    created_at(),
    updated_at(),
)
Index("ix_webhook_endpoints_tenant_id", webhook_endpoints.c.tenant_id)

#: One status change to deliver to one endpoint; unique per (endpoint, event): intake is idempotent.
webhook_deliveries = Table(
    "webhook_deliveries",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("endpoint_id", BigInteger, ForeignKey("webhook_endpoints.id", ondelete="CASCADE"), nullable=False),
    Column("tenant_id", String(63), nullable=False),
    Column("event_id", String(200), nullable=False),
    Column("webhook_id", String(64), nullable=False),  # the `webhook-id` header: the same on every retry
    Column("payment_id", String(64), nullable=False),
    Column("sequence", Integer, nullable=False),
    Column("body", Text, nullable=False),  # the exact JSON signed and sent
    # pending -> delivered, or failed (gave up after the retry window); redelivery makes it pending again.
    Column("status", String(16), nullable=False, server_default="pending"),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("next_attempt_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("lease_until", DateTime(timezone=True)),
    Column("leased_by", String(100)),
    Column("last_error", String(500)),
    Column("delivered_at", DateTime(timezone=True)),
    created_at(),
    updated_at(),
    UniqueConstraint("endpoint_id", "event_id"),
)
# The dispatcher's scan: due pending deliveries; and the order check per (endpoint, payment).
Index(
    "ix_webhook_deliveries_due",
    webhook_deliveries.c.next_attempt_at,
    postgresql_where=webhook_deliveries.c.status == "pending",
)
Index(
    "ix_webhook_deliveries_endpoint_payment",
    webhook_deliveries.c.endpoint_id,
    webhook_deliveries.c.payment_id,
    webhook_deliveries.c.sequence,
)
# Retention deletes settled deliveries by age.
Index(
    "ix_webhook_deliveries_settled",
    webhook_deliveries.c.updated_at,
    postgresql_where=webhook_deliveries.c.status != "pending",
)
Index(
    "ix_webhook_deliveries_endpoint_created",
    webhook_deliveries.c.endpoint_id,
    webhook_deliveries.c.created_at,
)

#: The delivery log: one row per HTTP attempt (status code or error, how long it took; never a secret).
webhook_attempts = Table(
    "webhook_attempts",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column(
        "delivery_id", BigInteger, ForeignKey("webhook_deliveries.id", ondelete="CASCADE"), nullable=False
    ),
    Column("attempted_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("status_code", Integer),
    Column("duration_ms", Integer, nullable=False),
    Column("error", String(500)),
    Column("attempted_by", String(100), nullable=False),
)
Index("ix_webhook_attempts_delivery_id", webhook_attempts.c.delivery_id)
