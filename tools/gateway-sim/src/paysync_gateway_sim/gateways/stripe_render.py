"""Stripe's objects as its API and its Events show them, rendered from the simulator's book."""

from __future__ import annotations

from collections.abc import Iterable

from paysync_core.testing.builders import stripe as build
from paysync_gateway_sim.state import (
    JsonDict,
    StripeBook,
    StripeCharge,
    StripeDispute,
    StripeIntent,
    StripeInvoice,
    StripeSession,
)


def render_session(book: StripeBook, session: StripeSession, expand: Iterable[str] = ()) -> JsonDict:
    """The Checkout Session object as the API returns it."""
    obj = build.checkout_session(
        id=session.id,
        payment_status=session.payment_status,
        status=session.status,
        amount_total=session.amount_total,
        currency=session.currency,
        payment_intent=session.payment_intent,
        metadata=session.metadata,
        client_reference_id=session.client_reference_id,
        created=session.created,
    )
    obj.update(
        expires_at=session.expires_at,
        success_url=session.success_url,
        cancel_url=session.cancel_url,
        url=f"https://checkout.stripe.com/c/pay/{session.id}" if session.status == "open" else None,
    )
    if "payment_intent" in expand and session.payment_intent:
        obj["payment_intent"] = render_intent(book, book.intents[session.payment_intent])
    return obj


def render_intent(book: StripeBook, intent: StripeIntent, expand: Iterable[str] = ()) -> JsonDict:
    """The PaymentIntent object."""
    obj = build.payment_intent(
        id=intent.id,
        status=intent.status,
        amount=intent.amount,
        amount_received=intent.amount_received,
        currency=intent.currency,
        latest_charge=intent.latest_charge,
        metadata=intent.metadata,
        last_payment_error=intent.last_payment_error,
        created=intent.created,
    )
    obj.update(canceled_at=intent.canceled_at, cancellation_reason=intent.cancellation_reason)
    if "latest_charge" in expand and intent.latest_charge:
        obj["latest_charge"] = render_charge(book.charges[intent.latest_charge])
    return obj


def render_invoice(invoice: StripeInvoice, expand: Iterable[str] | None = None) -> JsonDict:
    """The Invoice object; its PaymentIntent under `payments` as in current API versions.

    On retrieval Stripe includes `payments` only when it is expanded (`expand[]=payments`);
    `expand=None` renders it, as in the event payloads the simulator sends.
    """
    obj = build.invoice(
        id=invoice.id,
        status=invoice.status,
        amount_due=invoice.amount_due,
        amount_paid=invoice.amount_paid,
        currency=invoice.currency,
        payment_intent=invoice.payment_intent,
        next_payment_attempt=invoice.next_payment_attempt,
        metadata=invoice.metadata,
        created=invoice.created,
    )
    obj["attempt_count"] = invoice.attempt_count
    obj["status_transitions"] = dict(invoice.transitions)  # always there, as at Stripe
    if expand is not None and "payments" not in expand:
        obj.pop("payments", None)
    return obj


def render_charge(charge: StripeCharge) -> JsonDict:
    """The Charge object."""
    obj = build.charge(
        id=charge.id,
        amount=charge.amount,
        amount_refunded=charge.amount_refunded,
        currency=charge.currency,
        payment_intent=charge.payment_intent,
        metadata=charge.metadata,
        created=charge.created,
    )
    obj["disputed"] = charge.dispute is not None
    return obj


def render_dispute(dispute: StripeDispute) -> JsonDict:
    """The Dispute object."""
    return build.dispute(
        id=dispute.id,
        status=dispute.status,
        amount=dispute.amount,
        currency=dispute.currency,
        charge=dispute.charge,
        payment_intent=dispute.payment_intent,
        reason=dispute.reason,
        created=dispute.created,
    )
