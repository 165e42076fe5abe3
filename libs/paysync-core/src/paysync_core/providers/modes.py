"""Test and live kept apart: a webhook's mode must be the mode of the credentials that verified it.

Stripe marks every event with `livemode`; Paystack every event's transaction with `domain`
("test" or "live"). The secret keys say which mode they belong to (`sk_test_…`, `sk_live_…`,
restricted `rk_…` alike). A test tenant must never mark a live payment paid, nor the reverse,
so a verified webhook whose mode differs is refused; M-Pesa callbacks carry no mode.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from paysync_core.contracts.common import Provider
from paysync_core.providers.base import ProviderCredentials

Mode = Literal["test", "live"]


def key_mode(secret_key: str) -> Mode | None:
    """The mode a Stripe or Paystack secret key belongs to, from its prefix; None if it does not say."""
    prefix = secret_key[:8]
    if prefix in ("sk_live_", "rk_live_"):
        return "live"
    if prefix in ("sk_test_", "rk_test_"):
        return "test"
    return None


def event_mode(provider: Provider, document: Mapping[str, Any]) -> Mode | None:
    """The mode a webhook body says it is from; None when it does not say (M-Pesa never does)."""
    if provider is Provider.STRIPE:
        live = document.get("livemode")
        return None if not isinstance(live, bool) else "live" if live else "test"
    if provider is Provider.PAYSTACK:
        data = document.get("data")
        domain = data.get("domain") if isinstance(data, Mapping) else None
        return domain if domain in ("test", "live") else None
    return None


def mode_mismatch(
    provider: Provider, document: Mapping[str, Any], credentials: ProviderCredentials
) -> str | None:
    """Why a webhook cannot be for these credentials (a live event to test keys, or the reverse)."""
    secret = getattr(credentials, "secret_key", None)
    if secret is None:
        return None
    keys = key_mode(secret.get_secret_value() if hasattr(secret, "get_secret_value") else str(secret))
    event = event_mode(provider, document)
    if keys is None or event is None or keys == event:
        return None
    return f"{event}_event_for_{keys}_credentials"
