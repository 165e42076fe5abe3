"""paysync's tables, as SQLAlchemy Core metadata; Alembic migrations create them."""

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
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB, UUID

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)


def _created_at() -> Column:
    return Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now())


def _updated_at() -> Column:
    return Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now())


tenants = Table(
    "tenants",
    metadata,
    Column("id", String(63), primary_key=True),
    Column("name", Text, nullable=False),
    Column("credentials_ciphertext", LargeBinary, nullable=True),
    _created_at(),
    _updated_at(),
    CheckConstraint(r"id ~ '^[a-z0-9][a-z0-9-]{0,62}$'", name="slug"),
)

api_keys = Table(
    "api_keys",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("tenant_id", ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False),
    Column("key_hash", String(64), nullable=False, unique=True),
    Column("prefix", String(16), nullable=False),
    _created_at(),
    Column("revoked_at", DateTime(timezone=True)),
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
    _created_at(),
    _updated_at(),
    UniqueConstraint("tenant_id", "provider", "provider_ref"),
    CheckConstraint("amount_minor IS NULL OR amount_minor >= 0", name="amount_nonnegative"),
    CheckConstraint("mode IN ('test', 'live')", name="mode"),
)
Index("ix_payments_tenant_status", payments.c.tenant_id, payments.c.status)
Index("ix_payments_tenant_entity", payments.c.tenant_id, payments.c.domain, payments.c.entity_id)

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
    _created_at(),
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
    _created_at(),
    UniqueConstraint("tenant_id", "observation_id"),
)

#: Events to publish, written in the same transaction as the change they announce.
outbox = Table(
    "outbox",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("topic", String(255), nullable=False),
    Column("key", String(600), nullable=False),
    Column("payload", JSONB, nullable=False),
    _created_at(),
    Column("published_at", DateTime(timezone=True)),
)
Index("ix_outbox_unpublished", outbox.c.id, postgresql_where=outbox.c.published_at.is_(None))

#: Built-in domain "jobs": a workshop's jobs, marked paid with a note (field report 000).
workshop_jobs = Table(
    "workshop_jobs",
    metadata,
    Column("tenant_id", String(63), nullable=False),
    Column("job_id", String(200), nullable=False),
    Column("status", String(32), nullable=False, server_default="open"),
    Column("payment_status", String(32), nullable=False, server_default="unpaid"),
    Column("amount_paid_minor", BigInteger),
    Column("currency", String(3)),
    Column("paid_at", DateTime(timezone=True)),
    Column("payment_note", Text),
    Column("transaction_ref", String(255)),
    _created_at(),
    _updated_at(),
    PrimaryKeyConstraint("tenant_id", "job_id"),
)

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

#: Built-in domain "jobs": one payment request per payment of a job (field report 000).
workshop_payment_requests = Table(
    "workshop_payment_requests",
    metadata,
    Column("tenant_id", String(63), nullable=False),
    Column("payment_id", String(64), nullable=False),
    Column("job_id", String(200), nullable=False),
    Column("provider", String(16), nullable=False),
    Column("session_id", String(255)),
    Column("status", String(32), nullable=False, server_default="pending"),
    Column("amount_minor", BigInteger),
    Column("currency", String(3)),
    Column("amount_received_minor", BigInteger),
    Column("paid_at", DateTime(timezone=True)),
    Column("transaction_details", Text),
    _created_at(),
    _updated_at(),
    PrimaryKeyConstraint("tenant_id", "payment_id"),
)
Index(
    "ix_workshop_payment_requests_job",
    workshop_payment_requests.c.tenant_id,
    workshop_payment_requests.c.job_id,
)

#: Built-in domain "bookings": a booking's payment, held in escrow once paid (field report 001).
bookings = Table(
    "bookings",
    metadata,
    Column("tenant_id", String(63), nullable=False),
    Column("booking_id", String(200), nullable=False),
    Column("status", String(32), nullable=False, server_default="pending"),
    Column("payment_status", String(32), nullable=False, server_default="pending"),
    Column("payment_reference", String(255)),
    Column("amount_paid_minor", BigInteger),
    Column("currency", String(3)),
    Column("paid_at", DateTime(timezone=True)),
    _created_at(),
    _updated_at(),
    PrimaryKeyConstraint("tenant_id", "booking_id"),
)

#: Built-in domain "invoices": status, amount paid, paid at (field reports 002, 003).
invoices = Table(
    "invoices",
    metadata,
    Column("tenant_id", String(63), nullable=False),
    Column("invoice_id", String(200), nullable=False),
    Column("status", String(16), nullable=False, server_default="draft"),
    Column("amount_paid_minor", BigInteger, nullable=False, server_default="0"),
    Column("currency", String(3)),
    Column("paid_at", DateTime(timezone=True)),
    _created_at(),
    _updated_at(),
    PrimaryKeyConstraint("tenant_id", "invoice_id"),
    CheckConstraint("status IN ('draft', 'open', 'paid', 'void', 'uncollectible')", name="status"),
)

#: One payment record per successful payment of an invoice.
invoice_payments = Table(
    "invoice_payments",
    metadata,
    Column("tenant_id", String(63), nullable=False),
    Column("payment_id", String(64), nullable=False),
    Column("invoice_id", String(200), nullable=False),
    Column("provider", String(16), nullable=False),
    Column("provider_ref", String(255), nullable=False),
    Column("status", String(32), nullable=False),
    Column("amount_minor", BigInteger),
    Column("amount_refunded_minor", BigInteger, nullable=False, server_default="0"),
    Column("currency", String(3)),
    Column("paid_at", DateTime(timezone=True)),
    Column("receipt", String(255)),
    _created_at(),
    _updated_at(),
    PrimaryKeyConstraint("tenant_id", "payment_id"),
)
Index("ix_invoice_payments_invoice", invoice_payments.c.tenant_id, invoice_payments.c.invoice_id)

#: Built-in domain "referrals": paid by M-Pesa STK push (field report 004).
referrals = Table(
    "referrals",
    metadata,
    Column("tenant_id", String(63), nullable=False),
    Column("referral_id", String(200), nullable=False),
    Column("status", String(32), nullable=False, server_default="pending"),
    Column("paid_at", DateTime(timezone=True)),
    Column("amount_paid_minor", BigInteger),
    Column("currency", String(3)),
    Column("mpesa_receipt", String(64)),
    Column("stk_pushes_sent", Integer, nullable=False, server_default="0"),
    Column("last_error", Text),
    _created_at(),
    _updated_at(),
    PrimaryKeyConstraint("tenant_id", "referral_id"),
)

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
Index("ix_outbox_published", outbox.c.published_at, postgresql_where=outbox.c.published_at.isnot(None))

# -- reconciler -------------------------------------------------------------------------------

#: Schedule ticks the reconciler has taken on; the unique id makes a duplicate tick a no-op.
reconcile_ticks = Table(
    "reconcile_ticks",
    metadata,
    Column("tick_id", String(200), primary_key=True),
    Column("tenant_id", String(63), nullable=False),
    Column("provider", String(16), nullable=False),
    Column("scheduled_at", DateTime(timezone=True), nullable=False),
    Column("source", String(16), nullable=False),
    Column("status", String(16), nullable=False, server_default="running"),
    Column("handled_by", String(200), nullable=False),
    Column("stats", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    Column("received_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("completed_at", DateTime(timezone=True)),
)
Index("ix_reconcile_ticks_tenant_received", reconcile_ticks.c.tenant_id, reconcile_ticks.c.received_at)

#: One payment's check schedule: the step it is at, when that step is due, who holds it now.
reconcile_checks = Table(
    "reconcile_checks",
    metadata,
    Column("payment_id", ForeignKey("payments.id", ondelete="CASCADE"), primary_key=True),
    Column("tenant_id", String(63), nullable=False),
    Column("provider", String(16), nullable=False),
    Column("step", Integer, nullable=False, server_default="0"),
    Column("next_check_at", DateTime(timezone=True)),
    Column("checks_made", Integer, nullable=False, server_default="0"),
    Column("last_checked_at", DateTime(timezone=True)),
    Column("last_status", String(32)),
    Column("last_error", Text),
    Column("listed_at", DateTime(timezone=True)),
    Column("listed_status", String(32)),
    Column("claimed_by", String(200)),
    Column("claimed_until", DateTime(timezone=True)),
    Column("done_at", DateTime(timezone=True)),
    Column("gave_up_at", DateTime(timezone=True)),
    _created_at(),
)
Index(
    "ix_reconcile_checks_due",
    reconcile_checks.c.tenant_id,
    reconcile_checks.c.provider,
    reconcile_checks.c.next_check_at,
    postgresql_where=reconcile_checks.c.done_at.is_(None) & reconcile_checks.c.gave_up_at.is_(None),
)

#: How far each list sweep has read, advanced only after what it found was acknowledged.
reconcile_watermarks = Table(
    "reconcile_watermarks",
    metadata,
    Column("tenant_id", String(63), nullable=False),
    Column("provider", String(16), nullable=False),
    Column("sweep", String(32), nullable=False),
    Column("watermark", DateTime(timezone=True), nullable=False),
    _updated_at(),
    PrimaryKeyConstraint("tenant_id", "provider", "sweep"),
)

#: On-demand checks: the request, who works on it (lease), and the reply once done (202 follow-ups).
reconcile_requests = Table(
    "reconcile_requests",
    metadata,
    Column("request_id", String(200), primary_key=True),
    Column("tenant", String(63), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("status", String(16), nullable=False, server_default="running"),
    Column("request", JSONB, nullable=False),
    Column("reply", JSONB),
    Column("handled_by", String(200)),
    Column("lease_until", DateTime(timezone=True)),
    _created_at(),
    Column("completed_at", DateTime(timezone=True)),
    # How many times a reconciler took the check on; past `request_max_attempts` it ends `failed`.
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("error", Text),  # why it failed (status `failed`), shown by its follow-up link
)
Index(
    "ix_reconcile_requests_running",
    reconcile_requests.c.lease_until,
    postgresql_where=reconcile_requests.c.status == "running",
)

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
