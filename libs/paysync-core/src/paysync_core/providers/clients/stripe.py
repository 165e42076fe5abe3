"""Stripe through the official SDK, per tenant: status queries for reconciliation, and Checkout."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any, TypeVar

import httpx
import stripe
import structlog
from stripe import RequestOptions
from stripe.params import EventListParams, EventListParamsCreated, InvoiceRetrieveParams
from stripe.params.checkout import SessionCreateParams

from paysync_core.contracts.common import ObservationSource, Provider
from paysync_core.contracts.observation import PaymentObservation
from paysync_core.credentials import StripeCredentials
from paysync_core.errors import PaysyncError
from paysync_core.providers.base import ParseContext
from paysync_core.providers.clients import stripe_objects
from paysync_core.providers.clients.errors import GatewayUnreachable
from paysync_core.providers.clients.http import DEFAULT_TIMEOUT, GatewayHttp
from paysync_core.providers.clients.observe import Initiated
from paysync_core.providers.clients.retry import RequestBudget, RetryPolicy, Sleep
from paysync_core.providers.clients.stripe_transport import PaysyncStripeHttpClient, stripe_answer_error
from paysync_core.providers.stripe import EVENT_PARSERS as _EVENT_PARSERS
from paysync_core.providers.stripe import StripeAdapter

log = structlog.get_logger()
T = TypeVar("T")

#: Every event type the adapter maps: what reconciliation lists to catch missed webhooks.
MAPPED_EVENT_TYPES: tuple[str, ...] = tuple(sorted(_EVENT_PARSERS))
_MAX_TYPES_PER_LIST = 20  # Events API: "types" takes up to 20 names
_ADAPTER = StripeAdapter()


class StripeGatewayClient:
    """One tenant's Stripe account, reached through the SDK over the caller's AsyncClient."""

    provider = Provider.STRIPE

    def __init__(
        self,
        tenant: str,
        credentials: StripeCredentials,
        http: httpx.AsyncClient,
        *,
        policy: RetryPolicy | None = None,
        budget: RequestBudget | None = None,
        timeout: httpx.Timeout = DEFAULT_TIMEOUT,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self.tenant = tenant
        self._clock = clock
        gateway = GatewayHttp(http, Provider.STRIPE, policy or RetryPolicy(), budget, timeout, sleep)
        base = {"api": credentials.api_base.rstrip("/")} if credentials.api_base else None
        self._sdk = stripe.StripeClient(
            credentials.secret_key.get_secret_value(),
            base_addresses=base,  # type: ignore[arg-type]
            max_network_retries=0,  # paysync's transport retries; the SDK must not retry again
            http_client=PaysyncStripeHttpClient(gateway),
        )

    # -- queries -------------------------------------------------------------------------

    async def retrieve_checkout_session(self, session_id: str) -> stripe.checkout.Session:
        """GET /v1/checkout/sessions/:id."""
        return await _call(self._sdk.v1.checkout.sessions.retrieve_async(session_id), session_id)

    async def retrieve_payment_intent(self, intent_id: str) -> stripe.PaymentIntent:
        """GET /v1/payment_intents/:id."""
        return await _call(self._sdk.v1.payment_intents.retrieve_async(intent_id), intent_id)

    async def retrieve_invoice(self, invoice_id: str) -> stripe.Invoice:
        """GET /v1/invoices/:id with its `payments` expanded: Stripe leaves them out otherwise."""
        params: InvoiceRetrieveParams = {"expand": ["payments"]}  # where the invoice's PaymentIntent is named
        return await _call(self._sdk.v1.invoices.retrieve_async(invoice_id, params), invoice_id)

    async def list_events(
        self,
        *,
        created_gte: datetime,
        created_lte: datetime | None = None,
        types: Iterable[str] = MAPPED_EVENT_TYPES,
        page_size: int = 100,
    ) -> AsyncIterator[stripe.Event]:
        """Events of `types` created in the window, newest first per group of 20 types, every page."""
        names = list(dict.fromkeys(types))
        created: EventListParamsCreated = {"gte": int(created_gte.timestamp())}
        if created_lte is not None:
            created["lte"] = int(created_lte.timestamp())
        for start in range(0, len(names), _MAX_TYPES_PER_LIST):
            params: EventListParams = {
                "types": names[start : start + _MAX_TYPES_PER_LIST],
                "created": created,
                "limit": max(1, min(page_size, 100)),
            }
            page = await _call(self._sdk.v1.events.list_async(params), None)
            try:
                async for event in page.auto_paging_iter():
                    yield event
            except stripe.StripeError as exc:
                raise paysync_error(exc, None) from exc

    # -- observations ----------------------------------------------------------------------

    async def observe(self, provider_ref: str) -> PaymentObservation:
        """A verified observation of the payment a Stripe id names (cs_…, pi_… or in_…)."""
        if provider_ref.startswith("cs_"):
            return await self.observe_checkout_session(provider_ref)
        if provider_ref.startswith("pi_"):
            return await self.observe_payment_intent(provider_ref)
        if provider_ref.startswith("in_"):
            return await self.observe_invoice(provider_ref)
        raise ValueError(f"not a Checkout Session, PaymentIntent or Invoice id: {provider_ref[:40]!r}")

    async def observe_checkout_session(self, session_id: str) -> PaymentObservation:
        """The Checkout Session's state now, as a verified observation."""
        session = await self.retrieve_checkout_session(session_id)
        return stripe_objects.observe_checkout_session(
            session.to_dict(), tenant=self.tenant, observed_at=self._clock()
        )

    async def observe_payment_intent(self, intent_id: str) -> PaymentObservation:
        """The PaymentIntent's state now, as a verified observation."""
        intent = await self.retrieve_payment_intent(intent_id)
        return stripe_objects.observe_payment_intent(
            intent.to_dict(), tenant=self.tenant, observed_at=self._clock()
        )

    async def observe_invoice(self, invoice_id: str) -> PaymentObservation:
        """The Invoice's state now, as a verified observation."""
        invoice = await self.retrieve_invoice(invoice_id)
        return stripe_objects.observe_invoice(
            invoice.to_dict(), tenant=self.tenant, observed_at=self._clock()
        )

    def observation_for_event(self, event: stripe.Event | Mapping[str, Any]) -> PaymentObservation | None:
        """A listed Event read exactly as its webhook would be; None for types paysync ignores."""
        data = event.to_dict() if isinstance(event, stripe.StripeObject) else dict(event)
        body = json.dumps(data, default=str).encode()
        ctx = ParseContext(
            tenant=self.tenant, source=ObservationSource.RECONCILE, verified=True, observed_at=self._clock()
        )
        parsed = _ADAPTER.parse(body, ctx)
        return parsed.observations[0] if parsed.observations else None

    async def observe_events(
        self,
        *,
        created_gte: datetime,
        created_lte: datetime | None = None,
        types: Iterable[str] = MAPPED_EVENT_TYPES,
    ) -> AsyncIterator[PaymentObservation]:
        """Observations of every mapped event in the window: what webhooks said, or should have."""
        async for event in self.list_events(created_gte=created_gte, created_lte=created_lte, types=types):
            observation = self.observation_for_event(event)
            if observation is not None:
                yield observation

    # -- initiation ------------------------------------------------------------------------

    async def create_checkout_session(
        self,
        *,
        amount_minor: int,
        currency: str,
        product_name: str,
        success_url: str,
        cancel_url: str,
        domain: str,
        entity_id: str,
        metadata: Mapping[str, str] | None = None,
        customer_email: str | None = None,
        idempotency_key: str | None = None,
    ) -> Initiated:
        """POST /v1/checkout/sessions (mode=payment, one line item); the session id to register."""
        params = checkout_session_params(
            amount_minor=amount_minor,
            currency=currency,
            product_name=product_name,
            success_url=success_url,
            cancel_url=cancel_url,
            domain=domain,
            entity_id=entity_id,
            metadata=metadata,
            customer_email=customer_email,
        )
        options: RequestOptions | None = {"idempotency_key": idempotency_key} if idempotency_key else None
        session = await _call(self._sdk.v1.checkout.sessions.create_async(params, options), None)
        log.info(
            "stripe.checkout_session.created",
            tenant=self.tenant,
            session_id=session.id,
            domain=domain,
            entity_id=entity_id,
        )
        fields = session.to_dict()
        intent = _id_of(fields.get("payment_intent"))
        return Initiated(
            provider=Provider.STRIPE,
            provider_ref=session.id,
            checkout_url=fields.get("url"),
            details={"payment_intent": intent} if intent else {},
        )


def checkout_session_params(
    *,
    amount_minor: int,
    currency: str,
    product_name: str,
    success_url: str,
    cancel_url: str,
    domain: str,
    entity_id: str,
    metadata: Mapping[str, str] | None = None,
    customer_email: str | None = None,
) -> SessionCreateParams:
    """The parameters of POST /v1/checkout/sessions for one payment of one line item."""
    if amount_minor <= 0:
        raise ValueError("amount_minor must be positive")
    tags = {**(metadata or {}), "paysync_domain": domain, "paysync_entity_id": entity_id}
    params: SessionCreateParams = {
        "mode": "payment",
        "line_items": [
            {
                "quantity": 1,
                "price_data": {
                    "currency": currency.lower(),
                    "unit_amount": amount_minor,
                    "product_data": {"name": product_name},
                },
            }
        ],
        "success_url": success_url,
        "cancel_url": cancel_url,
        "client_reference_id": f"{domain}:{entity_id}"[:200],
        "metadata": tags,
        # The PaymentIntent carries the same tags, so its own events name the entity too.
        "payment_intent_data": {"metadata": tags},
    }
    if customer_email:
        params["customer_email"] = customer_email
    return params


async def _call(awaitable: Awaitable[T], reference: str | None) -> T:
    try:
        return await awaitable
    except stripe.StripeError as exc:
        raise paysync_error(exc, reference) from exc


def paysync_error(exc: stripe.StripeError, reference: str | None) -> PaysyncError:
    """The paysync error for a stripe SDK error: retryable only when trying again can help."""
    message = f"{type(exc).__name__}: {exc.user_message or exc.code or 'no message'}"[:300]
    if isinstance(exc, stripe.APIConnectionError):
        return GatewayUnreachable(message, provider="stripe", request_sent=True)
    return stripe_answer_error(
        exc.http_status, exc.headers or {}, code=exc.code, message=message, reference=reference
    )


def _id_of(value: object) -> str | None:
    if isinstance(value, str):
        return value
    return value.get("id") if isinstance(value, dict) else None
