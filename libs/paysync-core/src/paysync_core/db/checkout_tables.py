"""The table of payments started through `POST /v1/payments/checkout` (api-gateway's)."""

from __future__ import annotations

from sqlalchemy import (
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB, UUID

from paysync_core.db.metadata import created_at, metadata, updated_at

#: One checkout per (tenant, Idempotency-Key): written before the gateway is called, so a retry of
#: the same request (after a crash too) finishes the same payment instead of starting another.
checkouts = Table(
    "checkouts",
    metadata,
    Column("tenant_id", String(63), ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False),
    Column("idempotency_key", String(255), nullable=False),
    Column("payment_id", UUID(as_uuid=True), nullable=False, unique=True),
    Column("provider", String(16), nullable=False),
    # sha256 of the request without the phone number: the same key with another request is refused
    Column("request_hash", String(64), nullable=False),
    # what a retry needs again (domain, entity, amount, URLs, account reference), never the phone
    Column("request", JSONB, nullable=False),
    # initiating (the gateway may be being called), started (the answer below is registered)
    Column("state", String(16), nullable=False, server_default="initiating"),
    Column("answer", JSONB),
    Column("last_error", Text),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("sending_since", DateTime(timezone=True)),
    Column("last_sent_at", DateTime(timezone=True)),
    Column("sent_sequence", Integer),
    created_at(),
    updated_at(),
    PrimaryKeyConstraint("tenant_id", "idempotency_key"),
)
#: The retried M-Pesa pushes, newest last: what the reconciler looks through to check them again.
Index(
    "ix_checkouts_retried_pushes",
    checkouts.c.last_sent_at,
    postgresql_where=text("provider = 'mpesa' AND attempts > 1"),
)
