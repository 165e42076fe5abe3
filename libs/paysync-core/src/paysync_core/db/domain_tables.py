"""The built-in business domains' tables (jobs, bookings, invoices, referrals).

The status-projector keeps their rows in step with payment status (`docs/data.md`).
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    DateTime,
    Index,
    Integer,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
)

from paysync_core.db.metadata import created_at, metadata, updated_at

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
    created_at(),
    updated_at(),
    PrimaryKeyConstraint("tenant_id", "job_id"),
)


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
    created_at(),
    updated_at(),
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
    created_at(),
    updated_at(),
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
    created_at(),
    updated_at(),
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
    created_at(),
    updated_at(),
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
    created_at(),
    updated_at(),
    PrimaryKeyConstraint("tenant_id", "referral_id"),
)
