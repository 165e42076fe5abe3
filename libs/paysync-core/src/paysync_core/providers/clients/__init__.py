"""Gateway API clients, one per gateway and tenant: status queries for reconciliation, and initiation.

Each client gets the tenant's credentials and an `httpx.AsyncClient` through its constructor,
takes a token from the caller's request budget before every request, retries what a retry can
fix (honouring `Retry-After`), and raises paysync's typed gateway errors otherwise. What a
client fetches becomes verified RECONCILE observations through the adapters' own tables.
"""

from __future__ import annotations

from paysync_core.providers.clients.daraja_auth import DarajaTokens, TokenRejected
from paysync_core.providers.clients.errors import (
    BudgetExhausted,
    GatewayBusy,
    GatewayRejected,
    GatewayUnreachable,
    NotFoundAtGateway,
)
from paysync_core.providers.clients.mpesa import (
    DarajaGatewayClient,
    StillProcessing,
    StkQueryResult,
    normalize_msisdn,
)
from paysync_core.providers.clients.observe import Initiated
from paysync_core.providers.clients.paystack import TRANSACTION_STATUS, PaystackGatewayClient
from paysync_core.providers.clients.retry import RequestBudget, RetryPolicy, retry_after_seconds, with_retries
from paysync_core.providers.clients.stripe import MAPPED_EVENT_TYPES, StripeGatewayClient
from paysync_core.providers.clients.stripe_objects import STATUS_TABLES as STRIPE_OBJECT_TABLES

#: The status tables the clients add for objects fetched by id (beside the adapters' tables).
STATUS_TABLES = (*STRIPE_OBJECT_TABLES, TRANSACTION_STATUS)

__all__ = [
    "BudgetExhausted",
    "MAPPED_EVENT_TYPES",
    "STATUS_TABLES",
    "DarajaGatewayClient",
    "DarajaTokens",
    "GatewayBusy",
    "GatewayRejected",
    "GatewayUnreachable",
    "Initiated",
    "NotFoundAtGateway",
    "PaystackGatewayClient",
    "RequestBudget",
    "RetryPolicy",
    "StillProcessing",
    "StkQueryResult",
    "StripeGatewayClient",
    "TokenRejected",
    "normalize_msisdn",
    "retry_after_seconds",
    "with_retries",
]
