"""Stripe's status tables: which event type or object status gives which unified status.

They are data, rendered into `libs/paysync-core/docs/status-tables.md`; the parsers in
`providers/stripe.py` and the query clients in `providers/clients/stripe_objects.py` read them.
"""

from __future__ import annotations

from paysync_core.domain.status import UnifiedStatus as S
from paysync_core.providers.tables import StatusRow, StatusTable

_EVENT_TYPES = "Stripe API reference, Events, Types of events"

EVENTS = StatusTable(
    name="stripe.events",
    title="Stripe event types mapped by type alone",
    key_label="event type",
    rows=(
        StatusRow(
            "checkout.session.async_payment_succeeded",
            S.SUCCEEDED,
            "a delayed payment method of a Checkout Session succeeded",
            _EVENT_TYPES,
        ),
        StatusRow(
            "checkout.session.async_payment_failed",
            S.FAILED,
            "a delayed payment method of a Checkout Session failed",
            _EVENT_TYPES,
        ),
        StatusRow("checkout.session.expired", S.EXPIRED, "the Checkout Session expired unpaid", _EVENT_TYPES),
        StatusRow(
            "payment_intent.succeeded", S.SUCCEEDED, "the PaymentIntent completed a payment", _EVENT_TYPES
        ),
        StatusRow(
            "payment_intent.processing",
            S.PROCESSING,
            "the PaymentIntent started processing (e.g. a bank debit)",
            _EVENT_TYPES,
        ),
        StatusRow(
            "payment_intent.requires_action",
            S.REQUIRES_ACTION,
            "the customer must act, e.g. authenticate with 3D Secure",
            _EVENT_TYPES,
        ),
        StatusRow(
            "payment_intent.payment_failed",
            S.FAILED,
            "a payment attempt failed; the PaymentIntent returns to requires_payment_method",
            _EVENT_TYPES,
        ),
        StatusRow("payment_intent.canceled", S.CANCELED, "the PaymentIntent was canceled", _EVENT_TYPES),
        StatusRow(
            "invoice.paid",
            S.SUCCEEDED,
            "an invoice payment succeeded or the invoice was marked paid out of band",
            _EVENT_TYPES,
        ),
        StatusRow(
            "invoice.payment_succeeded", S.SUCCEEDED, "an invoice payment attempt succeeded", _EVENT_TYPES
        ),
        StatusRow(
            "invoice.finalized",
            S.PENDING,
            "a draft invoice was finalized and is now open, awaiting payment",
            _EVENT_TYPES,
        ),
        StatusRow("invoice.voided", S.CANCELED, "the invoice was voided", _EVENT_TYPES),
        StatusRow(
            "invoice.marked_uncollectible", S.FAILED, "the invoice was marked uncollectible", _EVENT_TYPES
        ),
        StatusRow(
            "charge.dispute.created",
            S.DISPUTED,
            "a customer disputed the charge with their card issuer",
            _EVENT_TYPES,
            dispute="open",
        ),
    ),
)

SESSION_PAYMENT_STATUS = StatusTable(
    name="stripe.checkout_session.payment_status",
    title="Stripe `checkout.session.completed`, by the session's payment_status",
    key_label="payment_status",
    rows=(
        StatusRow(
            "paid",
            S.SUCCEEDED,
            "the payment funds are available",
            "Stripe API reference, Checkout Sessions, The Checkout Session object, payment_status",
        ),
        StatusRow(
            "unpaid",
            S.PROCESSING,
            "funds not yet available: a delayed payment method is still pending",
            "Stripe API reference, Checkout Sessions, The Checkout Session object, payment_status",
        ),
        StatusRow(
            "no_payment_required",
            S.SUCCEEDED,
            "nothing to pay now (payment delayed to a future date, or setup mode)",
            "Stripe API reference, Checkout Sessions, The Checkout Session object, payment_status",
        ),
    ),
    notes=(
        "`no_payment_required` is reported with amount 0: no money moved, so a payment registered "
        "for a non-zero amount is flagged `amount_mismatch` rather than silently accepted.",
    ),
)

INVOICE_PAYMENT_FAILED = StatusTable(
    name="stripe.invoice.payment_failed",
    title="Stripe `invoice.payment_failed`, by whether Stripe will retry",
    key_label="next_payment_attempt",
    rows=(
        StatusRow(
            "scheduled",
            S.PENDING,
            "an attempt failed; the invoice stays open and Stripe will retry by itself",
            "Stripe API reference, Invoices, The Invoice object, next_payment_attempt",
        ),
        StatusRow(
            "null",
            S.REQUIRES_ACTION,
            "an attempt failed and no retry is scheduled: the customer must pay or update "
            "the payment method; the invoice stays open",
            "Stripe API reference, Invoices, The Invoice object, next_payment_attempt",
        ),
    ),
    notes=(
        "Not `failed`: a failed attempt leaves the invoice `open` and payable, and `failed` counts "
        "as settled, which would stop the reconciler checking it. The invoice's final outcome "
        "arrives as `invoice.paid`, `invoice.voided` or `invoice.marked_uncollectible`.",
    ),
)

CHARGE_REFUNDED = StatusTable(
    name="stripe.charge.refunded",
    title="Stripe `charge.refunded`, by how much of the charge is refunded",
    key_label="charge",
    rows=(
        StatusRow(
            "full",
            S.REFUNDED,
            "`refunded` is true, or `amount_refunded` >= `amount`",
            "Stripe API reference, Charges, The Charge object, refunded and amount_refunded",
        ),
        StatusRow(
            "partial",
            S.PARTIALLY_REFUNDED,
            "0 < `amount_refunded` < `amount`",
            "Stripe API reference, Charges, The Charge object, amount_refunded",
        ),
        StatusRow(
            "none",
            None,
            "`amount_refunded` is 0: nothing to say about refunds",
            "Stripe API reference, Charges, The Charge object, amount_refunded",
        ),
    ),
    notes=(
        "The observation's provider_ref is the charge's PaymentIntent (the charge id when it has "
        "none), with the charge id as an alias; `amount_refunded_minor` is the charge's cumulative "
        "`amount_refunded`.",
    ),
)

DISPUTE_CLOSED = StatusTable(
    name="stripe.dispute.closed",
    title="Stripe `charge.dispute.closed`, by the dispute's status",
    key_label="dispute status",
    rows=(
        StatusRow(
            "won",
            S.SUCCEEDED,
            "the dispute was decided in the merchant's favour",
            "Stripe API reference, Disputes, The Dispute object, status",
            dispute="won",
        ),
        StatusRow(
            "warning_closed",
            S.SUCCEEDED,
            "an inquiry closed without becoming a chargeback; no funds were withdrawn",
            "Stripe API reference, Disputes, The Dispute object, status",
            dispute="won",
        ),
        StatusRow(
            "prevented",
            S.SUCCEEDED,
            "stopped before it became a formal chargeback (a refund, if any, arrives as charge.refunded)",
            "Stripe API reference, Disputes, The Dispute object, status",
            dispute="won",
        ),
        StatusRow(
            "lost",
            S.DISPUTED,
            "the dispute was decided in the customer's favour",
            "Stripe API reference, Disputes, The Dispute object, status",
            dispute="lost",
        ),
    ),
    notes=(
        "Dispute observations carry no amount: a dispute's amount is the disputed amount, which "
        "can be part of the payment, and must not be compared with the registered amount.",
        "Their provider_ref is the dispute's PaymentIntent (the charge id when it has none).",
        "Any other status on a closed dispute gives status `(none)` and no dispute fact.",
    ),
)

STATUS_TABLES = (EVENTS, SESSION_PAYMENT_STATUS, INVOICE_PAYMENT_FAILED, CHARGE_REFUNDED, DISPUTE_CLOSED)
