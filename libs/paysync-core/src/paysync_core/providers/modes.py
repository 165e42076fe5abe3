"""Test and live kept apart: a webhook's mode must be the mode of the credentials that verified it.

Stripe marks every event with `livemode`; Paystack every event's transaction with `domain`
("test" or "live"). The secret keys say which mode they belong to (`sk_test_…`, `sk_live_…`,
restricted `rk_…` alike); Daraja's mode is its host (sandbox.safaricom.co.ke or production).
A test tenant must never mark a live payment paid, nor the reverse, so a verified webhook whose
mode differs is refused, and a payment keeps the mode of the credentials it was registered
under; M-Pesa callbacks carry no mode.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal
from urllib.parse import urlsplit

from paysync_core.contracts.common import Provider
from paysync_core.providers.base import ProviderCredentials

Mode = Literal["test", "live"]

#: Daraja's hosts: the sandbox is test mode, production (the clients' default) is live.
DARAJA_SANDBOX_HOST = "sandbox.safaricom.co.ke"
DARAJA_PRODUCTION_HOST = "api.safaricom.co.ke"


def key_mode(secret_key: str) -> Mode | None:
    """The mode a Stripe or Paystack secret key belongs to, from its prefix; None if it does not say."""
    prefix = secret_key[:8]
    if prefix in ("sk_live_", "rk_live_"):
        return "live"
    if prefix in ("sk_test_", "rk_test_"):
        return "test"
    return None


def credentials_mode(credentials: ProviderCredentials | None) -> Mode | None:
    """The mode one gateway's credentials are in; None when they do not say (a simulator's base URL)."""
    if credentials is None:
        return None
    secret = getattr(credentials, "secret_key", None)
    if secret is not None:
        return key_mode(secret.get_secret_value() if hasattr(secret, "get_secret_value") else str(secret))
    if hasattr(credentials, "consumer_key"):  # Daraja: the host it talks to decides
        base = getattr(credentials, "api_base", None)
        host = urlsplit(base).hostname if base else DARAJA_PRODUCTION_HOST
        modes: dict[str, Mode] = {DARAJA_SANDBOX_HOST: "test", DARAJA_PRODUCTION_HOST: "live"}
        return modes.get(host or "")
    return None


def object_mode(provider: Provider, obj: object) -> Mode | None:
    """The mode a gateway object says it is from: a Stripe object's or event's `livemode`, a Paystack
    transaction's `domain`; None when it does not say (M-Pesa never does)."""
    if not isinstance(obj, dict) and not isinstance(obj, Mapping):  # a JSON object is a dict: no ABC check
        return None
    if provider is Provider.STRIPE:
        live = obj.get("livemode")
        return None if not isinstance(live, bool) else "live" if live else "test"
    if provider is Provider.PAYSTACK:
        domain = obj.get("domain")
        return domain if domain in ("test", "live") else None
    return None


def event_mode(provider: Provider, document: Mapping[str, Any]) -> Mode | None:
    """The mode a webhook body says it is from; None when it does not say (M-Pesa never does)."""
    # Paystack marks the transaction in the event's `data`, Stripe the event itself.
    return object_mode(provider, document.get("data") if provider is Provider.PAYSTACK else document)


def mode_mismatch(
    provider: Provider, document: Mapping[str, Any], credentials: ProviderCredentials
) -> str | None:
    """Why a webhook cannot be for these credentials (a live event to test keys, or the reverse)."""
    keys = credentials_mode(credentials)
    event = event_mode(provider, document)
    if keys is None or event is None or keys == event:
        return None
    return f"{event}_event_for_{keys}_credentials"


def mode_refusal(payment_mode: str | None, observed_mode: str | None) -> str | None:
    """Why an observation must not be applied to a payment: it was seen in the other mode.

    A payment or an observation whose mode is not known refuses nothing (M-Pesa callbacks,
    payments registered before modes were recorded).
    """
    if payment_mode is None or observed_mode is None or payment_mode == observed_mode:
        return None
    return f"{observed_mode}_observation_for_{payment_mode}_payment"
