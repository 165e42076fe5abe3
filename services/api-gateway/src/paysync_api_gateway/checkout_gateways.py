"""Starting payments at the gateways with a tenant's credentials, through paysync-core's clients."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import httpx

from paysync_api_gateway.checkout_schemas import StartCheckout
from paysync_core.checkout import stripe_session_args
from paysync_core.contracts import PaymentObservation
from paysync_core.credentials import GatewayCredentials
from paysync_core.errors import PaysyncError, ProviderNotConfigured
from paysync_core.providers.clients import (
    DarajaGatewayClient,
    GatewayRejected,
    Initiated,
    PaystackGatewayClient,
    RetryPolicy,
    StillProcessing,
    StripeGatewayClient,
)

#: One try more after a refusal at the door (rate limit, subscriber lock); a customer is waiting.
_POLICY = RetryPolicy(max_attempts=2, max_retry_after=5.0)


class GatewayDeclined(PaysyncError):
    """The gateway refused to start this payment (402): the customer or the request must change."""

    code = "gateway_declined"


@dataclass(frozen=True, slots=True)
class Gateways:
    """Where a checkout's gateway calls go, and what the gateways need beyond the request."""

    credentials: GatewayCredentials
    http: httpx.AsyncClient
    mpesa_callback_base_url: str

    def _configured(self, tenant: str, provider: str) -> object:
        """The tenant's credentials for `provider`; ProviderNotConfigured if it has none."""
        found = getattr(self.credentials, provider)
        if found is None:
            raise ProviderNotConfigured(tenant, provider)
        return found

    async def start(self, tenant: str, payment_id: uuid.UUID, body: StartCheckout, attempt: int) -> Initiated:
        """Start the payment at its gateway; the same `payment_id` and `attempt` start it at most once
        where the gateway allows (Stripe: idempotency key; Paystack: the reference is ours)."""
        if body.provider.value == "stripe":
            return await self._stripe(tenant, payment_id, body)
        if body.provider.value == "paystack":
            return await self._paystack(tenant, body, paystack_reference(payment_id, attempt))
        reference = body.account_reference or ""
        description = body.description or reference
        return await self.push(tenant, body.amount_minor, body.phone or "", reference, description)

    async def _stripe(self, tenant: str, payment_id: uuid.UUID, body: StartCheckout) -> Initiated:
        credentials = self._configured(tenant, "stripe")
        client = StripeGatewayClient(tenant, credentials, self.http, policy=_POLICY)  # type: ignore[arg-type]
        # Stripe answers a repeat of the idempotency key with the session it made the first time.
        return await client.create_checkout_session(**stripe_session_args(payment_id, body.replayable()))

    async def _paystack(self, tenant: str, body: StartCheckout, reference: str) -> Initiated:
        credentials = self._configured(tenant, "paystack")
        client = PaystackGatewayClient(tenant, credentials, self.http, policy=_POLICY)  # type: ignore[arg-type]
        return await client.initialize_transaction(
            email=body.email or "",
            amount_minor=body.amount_minor,
            reference=reference,
            callback_url=body.callback_url,
            domain=body.domain,
            entity_id=body.entity_id,
            currency=body.currency,
        )

    async def push(
        self, tenant: str, amount_minor: int, phone: str, account_reference: str, description: str
    ) -> Initiated:
        """Send an M-Pesa STK push; GatewayDeclined when Daraja will not prompt this customer."""
        credentials = self._configured(tenant, "mpesa")
        client = DarajaGatewayClient(tenant, credentials, self.http, policy=_POLICY)  # type: ignore[arg-type]
        try:
            return await client.stk_push(
                amount_minor=amount_minor,
                phone=phone,
                account_reference=account_reference,
                description=description,
                callback_base_url=self.mpesa_callback_base_url,
            )
        except GatewayRejected as exc:
            if exc.status_code == 200:  # Daraja took the request and said no (ResponseCode not 0)
                raise GatewayDeclined(str(exc)) from exc
            raise


def push_pending(gateways: Gateways, tenant: str, checkout_request_id: str) -> PaymentObservation:
    """What Daraja's acceptance of a push says: the push waits for the customer (pending, now).

    The same observation an STK Push Query of the push gives while the customer has not answered.
    """
    credentials = gateways._configured(tenant, "mpesa")
    client = DarajaGatewayClient(tenant, credentials, gateways.http)  # type: ignore[arg-type]
    return client.observation_for(StillProcessing(checkout_request_id, "STK push sent again"))


def paystack_reference(payment_id: uuid.UUID, attempt: int) -> str:
    """The Paystack reference of a checkout's attempt: ours, so a lost answer leaves nothing unknown."""
    return str(payment_id) if attempt <= 1 else f"{payment_id}.{attempt}"
