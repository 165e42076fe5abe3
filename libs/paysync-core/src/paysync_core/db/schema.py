"""paysync's tables, as SQLAlchemy Core metadata; Alembic migrations create them.

The payment tables are defined here; the built-in domains' tables are in `domain_tables.py`, the
reconciler's in `reconciler_tables.py`, the operator's in `operator_tables.py`, the alerts' in
`alert_tables.py` and the app webhooks' in `app_webhook_tables.py`. Every table is importable from
this module, and `metadata` here holds them all.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
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
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, UUID

from paysync_core.db.alert_tables import (
    alert_deliveries,
    alert_settings,
    dead_letter_index,
    dead_letter_positions,
)
from paysync_core.db.app_webhook_tables import webhook_attempts, webhook_deliveries, webhook_endpoints
from paysync_core.db.checkout_tables import checkouts
from paysync_core.db.domain_tables import (
    bookings,
    invoice_payments,
    invoices,
    referrals,
    workshop_jobs,
    workshop_payment_requests,
)
from paysync_core.db.metadata import created_at, metadata, updated_at
from paysync_core.db.operator_tables import dead_letter_redrives, sync_issue_actions
from paysync_core.db.reconciler_tables import (
    gateway_budgets,
    reconcile_checks,
    reconcile_requests,
    reconcile_ticks,
    reconcile_watermarks,
)

__all__ = [
    "alert_deliveries",
    "alert_settings",
    "api_keys",
    "bookings",
    "checkouts",
    "dead_letter_index",
    "dead_letter_positions",
    "dead_letter_redrives",
    "gateway_budgets",
    "invoice_payments",
    "invoices",
    "metadata",
    "observations",
    "outbox",
    "parked_observations",
    "payment_refs",
    "payments",
    "reconcile_checks",
    "reconcile_requests",
    "reconcile_ticks",
    "reconcile_watermarks",
    "referrals",
    "sync_issue_actions",
    "sync_issues",
    "tenants",
    "webhook_attempts",
    "webhook_deliveries",
    "webhook_endpoints",
    "webhook_quarantine",
    "workshop_jobs",
    "workshop_payment_requests",
]

tenants = Table(
    "tenants",
    metadata,
    Column("id", String(63), primary_key=True),
    Column("name", Text, nullable=False),
    Column("credentials_ciphertext", LargeBinary, nullable=True),
    # Web origins whose pages may call /v1 with this tenant's keys (CORS); empty: none.
    Column("cors_origins", ARRAY(String(255)), nullable=False, server_default=text("'{}'")),
    created_at(),
    updated_at(),
    CheckConstraint(r"id ~ '^[a-z0-9][a-z0-9-]{0,62}$'", name="slug"),
)

api_keys = Table(
    "api_keys",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("tenant_id", ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False),
    Column("key_hash", String(64), nullable=False, unique=True),
    Column("prefix", String(16), nullable=False),
    # secret (server side, `scopes` apply) or publishable (read-only routes a web page needs).
    Column("kind", String(16), nullable=False, server_default="secret"),
    Column("scopes", ARRAY(String(16)), nullable=False, server_default=text("'{read,write}'")),
    Column("expires_at", DateTime(timezone=True)),
    created_at(),
    Column("revoked_at", DateTime(timezone=True)),
    CheckConstraint("kind IN ('secret', 'publishable')", name="kind"),
)

payments = Table(
    "payments",
    metadata,
    Column("id", UUID(as_uuid=True), primary_key=True),
    Column("tenant_id", ForeignKey("tenants.id"), nullable=False),
    Column("provider", String(16), nullable=False),
    Column("provider_ref", String(255), nullable=False),
    Column("domain", String(63)),
    Column("entity_id", String(200)),
    Column("amount_minor", BigInteger),
    Column("currency", String(3)),
    Column("metadata", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    Column("status", String(32), nullable=False, server_default="pending"),
    Column("sequence", Integer, nullable=False, server_default="0"),
    Column("merge_state", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    Column("flags", JSONB, nullable=False, server_default=text("'[]'::jsonb")),
    Column("amount_received_minor", BigInteger),
    Column("amount_refunded_minor", BigInteger, nullable=False, server_default="0"),
    Column("paid_at", DateTime(timezone=True)),
    Column("status_changed_at", DateTime(timezone=True)),
    Column("registered", Boolean, nullable=False, server_default="true"),
    # test or live, fixed at registration from the tenant's credentials; NULL: not known (older rows)
    Column("mode", String(4)),
    # times the payment was sent to the customer: M-Pesa STK pushes (`POST /v1/payments/{id}/retry`)
    Column("sends", Integer, nullable=False, server_default="1"),
    # HMAC-SHA256 of tenant and payer number (paysync_core.phones); the number itself is never stored
    Column("phone_hash", String(64)),
    created_at(),
    updated_at(),
    UniqueConstraint("tenant_id", "provider", "provider_ref"),
    CheckConstraint("amount_minor IS NULL OR amount_minor >= 0", name="amount_nonnegative"),
    CheckConstraint("mode IN ('test', 'live')", name="mode"),
)
Index("ix_payments_tenant_status", payments.c.tenant_id, payments.c.status)
Index("ix_payments_tenant_entity", payments.c.tenant_id, payments.c.domain, payments.c.entity_id)
# The notifier's failure-rate rule: a tenant's latest outcomes at a gateway, newest first, and which
# gateways had a failure lately (`services/notifier/src/paysync_notifier/rules_repo.py`).
Index("ix_payments_gateway_changed", payments.c.tenant_id, payments.c.provider, payments.c.status_changed_at)
Index("ix_payments_status_changed", payments.c.status, payments.c.status_changed_at)

#: Every reference a payment can be matched by: its own, and aliases learned later.
payment_refs = Table(
    "payment_refs",
    metadata,
    Column("tenant_id", String(63), nullable=False),
    Column("provider", String(16), nullable=False),
    Column("ref", String(255), nullable=False),
    Column("payment_id", ForeignKey("payments.id", ondelete="CASCADE"), nullable=False, index=True),
    PrimaryKeyConstraint("tenant_id", "provider", "ref"),
)

#: The history, one row per distinct observation applied; its uniqueness makes projection idempotent.
observations = Table(
    "observations",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("tenant_id", String(63), nullable=False),
    Column("observation_id", String(200), nullable=False),
    Column("payment_id", ForeignKey("payments.id", ondelete="CASCADE"), nullable=False),
    Column("provider_ref", String(255), nullable=False),
    Column("status", String(32)),
    Column("provider_time", DateTime(timezone=True), nullable=False),
    Column("source", String(16), nullable=False),
    Column("verified", Boolean, nullable=False),
    Column("amount_minor", BigInteger),
    Column("currency", String(3)),
    Column("evidence", JSONB, nullable=False),
    Column("status_after", String(32), nullable=False),
    Column("mode", String(4)),  # the gateway's mode, where it said
    Column("refused", String(64)),  # why it was recorded but not applied (a mode mismatch)
    created_at(),
    UniqueConstraint("tenant_id", "observation_id"),
)
Index("ix_observations_payment", observations.c.payment_id, observations.c.id)

#: Observations of references no registered payment has yet; applied when one arrives.
parked_observations = Table(
    "parked_observations",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("tenant_id", String(63), nullable=False),
    Column("provider", String(16), nullable=False),
    Column("observation_id", String(200), nullable=False),
    Column("refs", JSONB, nullable=False),
    Column("payload", JSONB, nullable=False),
    created_at(),
    UniqueConstraint("tenant_id", "observation_id"),
)
# A newly bound alias finds the observations parked under it (`refs ? alias`), orphans aside.
Index("ix_parked_observations_refs", parked_observations.c.refs, postgresql_using="gin")

#: Events to publish, written in the same transaction as the change they announce.
outbox = Table(
    "outbox",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("topic", String(255), nullable=False),
    Column("key", String(600), nullable=False),
    Column("payload", JSONB, nullable=False),
    created_at(),
    Column("published_at", DateTime(timezone=True)),
    # The W3C trace context of the change behind the event (when traced): the relay continues it.
    Column("traceparent", String(255)),
)
Index("ix_outbox_unpublished", outbox.c.id, postgresql_where=outbox.c.published_at.is_(None))

#: Webhook requests that were refused: who sent what, and why; never the body itself.
webhook_quarantine = Table(
    "webhook_quarantine",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("tenant", String(63), nullable=False),
    Column("provider", String(16), nullable=False),
    Column("reason", String(64), nullable=False),
    Column("http_status", Integer, nullable=False),
    Column("remote_addr", String(64)),
    Column("headers", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    Column("body_sha256", String(64)),
    Column("body_bytes", Integer, nullable=False),
    Column("received_at", DateTime(timezone=True), nullable=False),
)
Index("ix_webhook_quarantine_tenant_time", webhook_quarantine.c.tenant, webhook_quarantine.c.received_at)
Index("ix_webhook_quarantine_received_at", webhook_quarantine.c.received_at)  # retention deletes

#: Sync issues the projector raised, one open issue per (tenant, kind, subject): alerts go out once.
sync_issues = Table(
    "sync_issues",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("alert_id", String(64), nullable=False, unique=True),
    Column("tenant_id", String(63), nullable=False),
    Column("kind", String(48), nullable=False),
    Column("subject", String(300), nullable=False),
    Column("payment_id", UUID(as_uuid=True)),
    Column("domain", String(63)),
    Column("entity_id", String(200)),
    Column("detail", Text, nullable=False),
    Column("facts", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    Column("occurrence", Integer, nullable=False, server_default="1"),
    Column("opened_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("resolved_at", DateTime(timezone=True)),
    Column("acknowledged_at", DateTime(timezone=True)),  # someone is on it (by hand); open still
)
Index(
    "uq_sync_issues_open",
    sync_issues.c.tenant_id,
    sync_issues.c.kind,
    sync_issues.c.subject,
    unique=True,
    postgresql_where=sync_issues.c.resolved_at.is_(None),
)
Index("ix_sync_issues_tenant_opened", sync_issues.c.tenant_id, sync_issues.c.opened_at)
Index(
    "ix_payments_tenant_phone_hash",
    payments.c.tenant_id,
    payments.c.phone_hash,
    postgresql_where=payments.c.phone_hash.isnot(None),
)
Index("ix_outbox_published", outbox.c.published_at, postgresql_where=outbox.c.published_at.isnot(None))
