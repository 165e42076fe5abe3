"""Starting a payment the way an app does: through paysync's `POST /v1/payments/checkout`.

Scenarios aimed at paysync's demo tenant (and `make try`) start their payments here, so paysync
registers each one, instead of creating it at the simulator behind paysync's back.
"""

from __future__ import annotations

import uuid
from typing import Any

import httpx

#: The demo tenant `make dev` creates (paysync_dev.demo), and where its API listens.
DEMO_API = "http://127.0.0.1:8005"
DEMO_API_KEY = "psk_demo_local_only_not_a_secret"  # the local demo's own value, documented in the README
#: Each gateway's demo domain, and a currency it takes.
DEMO_DOMAINS = {"stripe": "jobs", "paystack": "bookings", "mpesa": "referrals"}
_CURRENCY = {"stripe": "USD", "paystack": "NGN", "mpesa": "KES"}
#: The simulator's test phone: its STK prompts answer as a scenario tells them.
DEMO_PHONE = "254708374149"


def checkout_body(provider: str, amount_minor: int, entity_id: str) -> dict[str, Any]:
    """A `POST /v1/payments/checkout` body for one of the demo's domain entities."""
    body: dict[str, Any] = {
        "provider": provider,
        "domain": DEMO_DOMAINS[provider],
        "entity_id": entity_id,
        "amount_minor": amount_minor,
        "currency": _CURRENCY[provider],
    }
    if provider == "stripe":
        return body | {"success_url": "http://127.0.0.1/paid", "cancel_url": "http://127.0.0.1/cart"}
    if provider == "paystack":
        return body | {"email": "customer@example.com"}
    return body | {"phone": DEMO_PHONE, "account_reference": entity_id[-12:]}


def start_checkout(
    api: str, api_key: str, provider: str, amount_minor: int, entity_id: str
) -> dict[str, Any]:
    """Start a payment through paysync's API; its answer (payment id, provider_ref, checkout URL…).

    RuntimeError with paysync's error when it refuses, or when nothing answers at `api`.
    """
    try:
        answer = httpx.post(
            f"{api.rstrip('/')}/v1/payments/checkout",
            json=checkout_body(provider, amount_minor, entity_id),
            headers={"Authorization": f"Bearer {api_key}", "Idempotency-Key": uuid.uuid4().hex},
            timeout=60,
        )
    except httpx.HTTPError as exc:
        raise RuntimeError(
            f"paysync's API at {api} did not answer ({type(exc).__name__}): is `make dev` running?"
        ) from exc
    if answer.status_code not in (200, 201):
        raise RuntimeError(
            f"paysync's API refused the checkout: HTTP {answer.status_code} {answer.text[:300]}"
        )
    return answer.json()
