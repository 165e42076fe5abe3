"""Gateway adapters: authenticity, parsing and status tables, one module per gateway."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from paysync_core.contracts.common import Provider
from paysync_core.providers.base import (
    ParseContext,
    Parsed,
    ProviderAdapter,
    ProviderCredentials,
    WebhookRequest,
)
from paysync_core.providers.mpesa import MpesaAdapter
from paysync_core.providers.paystack import PaystackAdapter, sign_paystack
from paysync_core.providers.stripe import StripeAdapter, sign_stripe

#: The adapter of every gateway paysync understands; adapters are stateless and shared.
ADAPTERS: Mapping[Provider, ProviderAdapter] = MappingProxyType(
    {
        Provider.STRIPE: StripeAdapter(),
        Provider.PAYSTACK: PaystackAdapter(),
        Provider.MPESA: MpesaAdapter(),
    }
)


def adapter_for(provider: Provider | str) -> ProviderAdapter:
    """The adapter for a gateway; ValueError for a name paysync does not know."""
    return ADAPTERS[Provider(provider)]


__all__ = [
    "ADAPTERS",
    "MpesaAdapter",
    "ParseContext",
    "Parsed",
    "PaystackAdapter",
    "ProviderAdapter",
    "ProviderCredentials",
    "StripeAdapter",
    "WebhookRequest",
    "adapter_for",
    "sign_paystack",
    "sign_stripe",
]
