"""Stripe objects fetched by id (Checkout Session, PaymentIntent, Invoice) as observations.

A retrieved object is read by the adapter's own object parsers and mapped through tables whose
statuses come from the adapter's event tables, so a webhook and a re-check of the same state
always agree. Only states no event names (an open session, a draft invoice, ...) are new rows.

Provider time: when the object records the moment it entered its state (a PaymentIntent's
`canceled_at`, an Invoice's `status_transitions`), that moment; otherwise the time Stripe
answered, since the object shows its state as of then. One exception: a complete but unpaid
session never learns that its delayed payment failed, so it speaks only for its `created` time
and a later event decides.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

from paysync_core.contracts.common import Provider
from paysync_core.contracts.observation import PaymentObservation
from paysync_core.domain.status import UnifiedStatus as S
from paysync_core.providers import stripe as adapter
from paysync_core.providers._common import Facts, JsonObject, get_object, get_str, unix_time
from paysync_core.providers.clients.observe import observe_facts
from paysync_core.providers.modes import object_mode
from paysync_core.providers.tables import StatusRow, StatusTable

_SESSION = "Stripe API reference, Checkout Sessions, The Checkout Session object, status"
_INTENT = "Stripe API reference, Payment Intents, The PaymentIntent object, status"
_INVOICE = "Stripe API reference, Invoices, The Invoice object, status"


def _as(table: StatusTable, key: str) -> S | None:
    """The adapter's status for `key`: the one decision both paths share."""
    row = table.row(key)
    if row is None:  # a renamed event row must fail loudly at import, not map silently
        raise LookupError(f"{table.name} has no row {key!r}")
    return row.status


CHECKOUT_SESSION_STATUS = StatusTable(
    name="stripe.checkout_session.status",
    title="Stripe Checkout Session retrieved by id, by its status",
    key_label="status",
    rows=(
        StatusRow("open", S.PENDING, "the customer has not completed the session yet", _SESSION),
        StatusRow(
            "expired",
            _as(adapter.EVENTS, "checkout.session.expired"),
            "the session expired unpaid (as `checkout.session.expired`)",
            _SESSION,
        ),
    ),
    notes=(
        "A `complete` session maps by its payment_status, through "
        "`stripe.checkout_session.payment_status` exactly as `checkout.session.completed` does.",
    ),
)

PAYMENT_INTENT_STATUS = StatusTable(
    name="stripe.payment_intent.status",
    title="Stripe PaymentIntent retrieved by id, by its status",
    key_label="status",
    rows=(
        StatusRow("requires_payment_method", S.PENDING, "no payment method attached or tried yet", _INTENT),
        StatusRow(
            "requires_payment_method:last_payment_error",
            _as(adapter.EVENTS, "payment_intent.payment_failed"),
            "the last attempt failed (as `payment_intent.payment_failed`)",
            _INTENT,
        ),
        StatusRow("requires_confirmation", S.PENDING, "waiting for the integration to confirm", _INTENT),
        StatusRow(
            "requires_action",
            _as(adapter.EVENTS, "payment_intent.requires_action"),
            "the customer must act, e.g. 3D Secure",
            _INTENT,
        ),
        StatusRow(
            "processing",
            _as(adapter.EVENTS, "payment_intent.processing"),
            "the payment method is processing",
            _INTENT,
        ),
        StatusRow(
            "requires_capture", S.PROCESSING, "authorized; no money moves until it is captured", _INTENT
        ),
        StatusRow("canceled", _as(adapter.EVENTS, "payment_intent.canceled"), "canceled", _INTENT),
        StatusRow(
            "succeeded", _as(adapter.EVENTS, "payment_intent.succeeded"), "the payment succeeded", _INTENT
        ),
    ),
)

INVOICE_STATUS = StatusTable(
    name="stripe.invoice.status",
    title="Stripe Invoice retrieved by id, by its status",
    key_label="status",
    rows=(
        StatusRow("draft", S.PENDING, "not finalized yet; it cannot be paid until it is", _INVOICE),
        StatusRow("open", _as(adapter.EVENTS, "invoice.finalized"), "finalized, awaiting payment", _INVOICE),
        StatusRow("paid", _as(adapter.EVENTS, "invoice.paid"), "paid", _INVOICE),
        StatusRow("void", _as(adapter.EVENTS, "invoice.voided"), "voided", _INVOICE),
        StatusRow(
            "uncollectible",
            _as(adapter.EVENTS, "invoice.marked_uncollectible"),
            "marked uncollectible",
            _INVOICE,
        ),
    ),
)

STATUS_TABLES = (CHECKOUT_SESSION_STATUS, PAYMENT_INTENT_STATUS, INVOICE_STATUS)


def observe_checkout_session(obj: JsonObject, *, tenant: str, observed_at: datetime) -> PaymentObservation:
    """The observation a retrieved Checkout Session stands for."""
    status = get_str(obj, "status", "status", max_length=40)
    if status == "complete":
        facts = adapter._checkout_session(obj, "checkout.session.completed")
        key = f"complete.{get_str(obj, 'payment_status', 'payment_status', max_length=40)}"
        when = _time(obj, "created") if key == "complete.unpaid" else observed_at
    else:
        facts = adapter._checkout_session(obj, "checkout.session.expired")  # fields only
        facts = replace(facts, status=_mapped(CHECKOUT_SESSION_STATUS, status))
        key = status
        when = observed_at
    return _observe(facts, obj, "checkout.session", key, when, tenant, observed_at)


def observe_payment_intent(obj: JsonObject, *, tenant: str, observed_at: datetime) -> PaymentObservation:
    """The observation a retrieved PaymentIntent stands for."""
    status = get_str(obj, "status", "status", max_length=40)
    key = status
    if status == "requires_payment_method" and get_object(
        obj, "last_payment_error", "last_payment_error", required=False
    ):
        key = f"{status}:last_payment_error"
    # Read as the adapter reads an event of the same state; amount_received counts once succeeded.
    as_event = "payment_intent.succeeded" if status == "succeeded" else "payment_intent.processing"
    facts = replace(adapter._payment_intent(obj, as_event), status=_mapped(PAYMENT_INTENT_STATUS, key))
    when = _time(obj, "canceled_at") if status == "canceled" and obj.get("canceled_at") else observed_at
    return _observe(facts, obj, "payment_intent", key, when, tenant, observed_at)


def observe_invoice(obj: JsonObject, *, tenant: str, observed_at: datetime) -> PaymentObservation:
    """The observation a retrieved Invoice stands for."""
    status = get_str(obj, "status", "status", max_length=40)
    as_event = "invoice.paid" if status == "paid" else "invoice.finalized"  # amount_paid vs amount_due
    facts = replace(adapter._invoice(obj, as_event), status=_mapped(INVOICE_STATUS, status))
    transitions = get_object(obj, "status_transitions", "status_transitions", required=False) or {}
    moment = {
        "paid": "paid_at",
        "void": "voided_at",
        "uncollectible": "marked_uncollectible_at",
        "open": "finalized_at",
    }.get(status)
    when = _time(transitions, moment) if moment and transitions.get(moment) else observed_at
    return _observe(facts, obj, "invoice", status, when, tenant, observed_at)


def _mapped(table: StatusTable, key: str) -> S | None:
    row = table.row(key)
    return row.status if row else None  # a status Stripe adds later is unknown, never a guess


def _time(obj: JsonObject, key: str) -> datetime:
    return unix_time(obj.get(key), key)


def _observe(
    facts: Facts, obj: JsonObject, kind: str, key: str, when: datetime, tenant: str, observed_at: datetime
) -> PaymentObservation:
    facts = replace(facts, mode=object_mode(Provider.STRIPE, obj))
    return observe_facts(
        Provider.STRIPE,
        facts,
        tenant=tenant,
        observed_at=observed_at,
        provider_time=when,
        kind=kind,
        id_parts=(key, facts.amount_minor if facts.amount_minor is not None else "-"),
    )
