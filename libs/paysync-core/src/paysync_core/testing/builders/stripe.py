"""Stripe payloads: the Event envelope and the objects paysync reads, per the API reference."""

from __future__ import annotations

import time
from typing import Any, Literal

from paysync_core.testing.builders import AUTO, random_token, resolve, to_body

__all__ = [
    "API_VERSION",
    "AUTO",
    "charge",
    "checkout_session",
    "dispute",
    "invoice",
    "new_id",
    "payment_intent",
    "stripe_event",
    "to_body",
]

API_VERSION = "2025-08-27.basil"

JsonDict = dict[str, Any]


def new_id(prefix: str) -> str:
    """A Stripe-looking id: `cs_test_…` for Checkout Sessions, `pi_…`, `in_…`, `ch_…`, `dp_…`, `evt_…`."""
    return f"{prefix}_test_{random_token(58)}" if prefix == "cs" else f"{prefix}_{random_token(24)}"


def _now() -> int:
    return int(time.time())


def stripe_event(
    type: str,  # Stripe's own field name
    obj: JsonDict,
    *,
    id: str | None = None,
    created: int | None = None,
    api_version: str = API_VERSION,
    livemode: bool = False,
    previous_attributes: JsonDict | None = None,
) -> JsonDict:
    """A snapshot Event wrapping `obj` in `data.object`."""
    data: JsonDict = {"object": obj}
    if previous_attributes is not None:
        data["previous_attributes"] = previous_attributes
    return {
        "id": id or new_id("evt"),
        "object": "event",
        "api_version": api_version,
        "created": _now() if created is None else created,
        "data": data,
        "livemode": livemode,
        "pending_webhooks": 1,
        "request": {"id": None, "idempotency_key": None},
        "type": type,
    }


def checkout_session(
    *,
    id: str | None = None,
    payment_status: Literal["paid", "unpaid", "no_payment_required"] = "paid",
    status: Literal["open", "complete", "expired"] = "complete",
    amount_total: int | None = 2000,
    currency: str | None = "usd",
    payment_intent: str | None | object = AUTO,
    invoice: str | None = None,
    mode: Literal["payment", "setup", "subscription"] = "payment",
    metadata: dict[str, str] | None = None,
    client_reference_id: str | None = None,
    created: int | None = None,
) -> JsonDict:
    """A Checkout Session object (`object: checkout.session`)."""
    created = _now() if created is None else created
    return {
        "id": id or new_id("cs"),
        "object": "checkout.session",
        "amount_subtotal": amount_total,
        "amount_total": amount_total,
        "client_reference_id": client_reference_id,
        "created": created,
        "currency": currency,
        "customer": None,
        "expires_at": created + 24 * 3600,
        "invoice": invoice,
        "livemode": False,
        "metadata": metadata or {},
        "mode": mode,
        "payment_intent": resolve(payment_intent, lambda: new_id("pi")),
        "payment_status": payment_status,
        "status": status,
        "url": None,
    }


def payment_intent(
    *,
    id: str | None = None,
    status: str = "succeeded",
    amount: int = 2000,
    amount_received: int | None = None,
    currency: str = "usd",
    latest_charge: str | None | object = AUTO,
    metadata: dict[str, str] | None = None,
    last_payment_error: JsonDict | None = None,
    created: int | None = None,
) -> JsonDict:
    """A PaymentIntent object; `amount_received` defaults to `amount` once succeeded."""
    if amount_received is None:
        amount_received = amount if status == "succeeded" else 0
    return {
        "id": id or new_id("pi"),
        "object": "payment_intent",
        "amount": amount,
        "amount_capturable": 0,
        "amount_received": amount_received,
        "canceled_at": None,
        "created": _now() if created is None else created,
        "currency": currency,
        "last_payment_error": last_payment_error,
        "latest_charge": resolve(latest_charge, lambda: new_id("ch")),
        "livemode": False,
        "metadata": metadata or {},
        "status": status,
    }


def invoice(
    *,
    id: str | None = None,
    status: Literal["draft", "open", "paid", "uncollectible", "void"] = "paid",
    amount_due: int = 2000,
    amount_paid: int | None = None,
    currency: str = "usd",
    payment_intent: str | None = None,
    payment_intent_field: Literal["payments", "legacy"] = "payments",
    next_payment_attempt: int | None = None,
    collection_method: Literal["charge_automatically", "send_invoice"] = "charge_automatically",
    metadata: dict[str, str] | None = None,
    created: int | None = None,
) -> JsonDict:
    """An Invoice object. Its PaymentIntent sits in `payments` (API 2025-03-31 and later) or,
    with `payment_intent_field="legacy"`, in the top-level field older API versions send."""
    if amount_paid is None:
        amount_paid = amount_due if status == "paid" else 0
    invoice_id = id or new_id("in")
    obj: JsonDict = {
        "id": invoice_id,
        "object": "invoice",
        "amount_due": amount_due,
        "amount_paid": amount_paid,
        "amount_remaining": amount_due - amount_paid,
        "attempt_count": 1,
        "collection_method": collection_method,
        "created": _now() if created is None else created,
        "currency": currency,
        "livemode": False,
        "metadata": metadata or {},
        "next_payment_attempt": next_payment_attempt,
        "status": status,
        "total": amount_due,
    }
    if payment_intent and payment_intent_field == "legacy":
        obj["payment_intent"] = payment_intent
    elif payment_intent:
        obj["payments"] = {
            "object": "list",
            "data": [
                {
                    "id": new_id("inpay"),
                    "object": "invoice_payment",
                    "amount_paid": amount_paid,
                    "currency": currency,
                    "invoice": invoice_id,
                    "is_default": True,
                    "payment": {"type": "payment_intent", "payment_intent": payment_intent},
                    "status": "paid" if status == "paid" else "open",
                }
            ],
            "has_more": False,
            "url": "/v1/invoice_payments",
        }
    return obj


def charge(
    *,
    id: str | None = None,
    amount: int = 2000,
    amount_refunded: int = 0,
    refunded: bool | None = None,
    currency: str = "usd",
    payment_intent: str | None | object = AUTO,
    metadata: dict[str, str] | None = None,
    created: int | None = None,
) -> JsonDict:
    """A Charge object; `refunded` defaults to whether the whole amount is refunded."""
    return {
        "id": id or new_id("ch"),
        "object": "charge",
        "amount": amount,
        "amount_captured": amount,
        "amount_refunded": amount_refunded,
        "captured": True,
        "created": _now() if created is None else created,
        "currency": currency,
        "livemode": False,
        "metadata": metadata or {},
        "paid": True,
        "payment_intent": resolve(payment_intent, lambda: new_id("pi")),
        "refunded": amount_refunded >= amount if refunded is None else refunded,
        "status": "succeeded",
    }


def dispute(
    *,
    id: str | None = None,
    status: str = "needs_response",
    amount: int = 2000,
    currency: str = "usd",
    charge: str | object = AUTO,
    payment_intent: str | None | object = AUTO,
    reason: str = "fraudulent",
    metadata: dict[str, str] | None = None,
    created: int | None = None,
) -> JsonDict:
    """A Dispute object (`dp_…`) on a charge and its PaymentIntent."""
    return {
        "id": id or new_id("dp"),
        "object": "dispute",
        "amount": amount,
        "charge": resolve(charge, lambda: new_id("ch")),
        "created": _now() if created is None else created,
        "currency": currency,
        "is_charge_refundable": False,
        "livemode": False,
        "metadata": metadata or {},
        "payment_intent": resolve(payment_intent, lambda: new_id("pi")),
        "reason": reason,
        "status": status,
    }
