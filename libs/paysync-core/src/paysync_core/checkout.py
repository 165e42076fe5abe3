"""What starting a payment through paysync sends to Stripe, from the checkout's stored request.

api-gateway creates the Checkout Session with it, and the reconciler creates it again for a checkout
whose answer was lost (a crash): the same arguments and idempotency key make Stripe answer with the
session it made the first time, so both must build them here, the one way.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any


def stripe_idempotency_key(payment_id: uuid.UUID) -> str:
    """Stripe's idempotency key of a checkout's Checkout Session."""
    return f"paysync-checkout-{payment_id}"


def stripe_session_args(payment_id: uuid.UUID, request: Mapping[str, Any]) -> dict[str, Any]:
    """`StripeGatewayClient.create_checkout_session` keyword arguments for a stored checkout request."""
    return {
        "amount_minor": request["amount_minor"],
        "currency": request["currency"],
        "product_name": request.get("product_name") or f"{request['domain']} {request['entity_id']}",
        "success_url": request["success_url"],
        "cancel_url": request["cancel_url"],
        "domain": request["domain"],
        "entity_id": request["entity_id"],
        "metadata": {"paysync_payment_id": str(payment_id)},
        "customer_email": request.get("email"),
        "idempotency_key": stripe_idempotency_key(payment_id),
    }
