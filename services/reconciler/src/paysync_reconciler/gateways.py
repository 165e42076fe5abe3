"""Each tenant's gateway accounts as the reconciler uses them: query clients behind a budget and a breaker."""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import httpx
import structlog
from sqlalchemy.ext.asyncio import AsyncEngine

from paysync_core.contracts import PaymentObservation, Provider
from paysync_core.credentials import GatewayCredentials
from paysync_core.crypto import CredentialsCipher
from paysync_core.db import TENANTS_CHANNEL
from paysync_core.db import tenants as tenant_repo
from paysync_core.db.engine import no_transaction
from paysync_core.db.notify import asyncpg_dsn, listen
from paysync_core.errors import GatewayError, ProviderNotConfigured
from paysync_core.providers.clients import (
    BudgetExhausted,
    DarajaGatewayClient,
    NotFoundAtGateway,
    PaystackGatewayClient,
    RetryPolicy,
    StripeGatewayClient,
    retry_after_seconds,
)
from paysync_core.tls import client_tls
from paysync_reconciler import metrics
from paysync_reconciler.breaker import CircuitBreaker, CircuitOpen
from paysync_reconciler.budget import GatewayBudget, Priority, current_priority
from paysync_reconciler.budget_lease import LeaseBatches, SharedBucket
from paysync_reconciler.models import ListedPage
from paysync_reconciler.repository import budgets as budgets_repo
from paysync_reconciler.repository.budgets import Lease, Want
from paysync_reconciler.settings import ReconcilerSettings
from paysync_reconciler.stripe_events import StripeEventPages
from paysync_reconciler.stripe_events import refs_of as stripe_refs

log = structlog.get_logger()

#: Daraja's throttling answers (spike arrest, quota) come as HTTP 500 with these codes.
_DARAJA_THROTTLED = (b"500.003.02", b"500.003.03")

_PAGE = 100  # Paystack transactions per listed page

#: Told when a tenant's circuit to a gateway opens (True) or closes again (False).
CircuitListener = Callable[[str, Provider, bool], Awaitable[None]]

Client = StripeGatewayClient | PaystackGatewayClient | DarajaGatewayClient


class GatewayPort:
    """One tenant's account at one gateway: checks one payment, lists a window, within budget and breaker."""

    def __init__(
        self,
        tenant: str,
        provider: Provider,
        client: Client,
        budget: GatewayBudget,
        breaker: CircuitBreaker,
        on_circuit: CircuitListener | None = None,
        stripe_events: StripeEventPages | None = None,
    ) -> None:
        self.tenant, self.provider = tenant, provider
        self.client, self.budget, self.breaker = client, budget, breaker
        self._on_circuit = on_circuit
        self._stripe_events = stripe_events

    @property
    def can_list(self) -> bool:
        """Whether one call can answer for many payments (Stripe Events, Paystack transactions)."""
        return self.provider in (Provider.STRIPE, Provider.PAYSTACK)

    @property
    def list_name(self) -> str:
        """The watermark's name of this gateway's list sweep."""
        return {Provider.STRIPE: "stripe_events", Provider.PAYSTACK: "paystack_transactions"}.get(
            self.provider, "none"
        )

    def calls(self, level: Priority) -> int:
        """Requests this process has sent to the account at one priority."""
        return self.budget.taken.get(level, 0)

    async def check(self, provider_ref: str) -> PaymentObservation:
        """The payment's state now, straight from the gateway."""
        self._guard()
        try:
            observation = await self.client.observe(provider_ref)
        except NotFoundAtGateway:
            await self._succeeded()  # a definite answer: the gateway is fine
            raise
        except BudgetExhausted:
            raise  # our own budget said wait: says nothing about the gateway
        except GatewayError:
            await self._failed()
            raise
        await self._succeeded()
        return observation

    async def list_pages(self, start: datetime, end: datetime) -> AsyncIterator[ListedPage]:
        """The gateway's list for the window, page by page: Stripe Events, Paystack transactions."""
        self._guard()
        try:
            if isinstance(self.client, StripeGatewayClient) and self._stripe_events is not None:
                async for body, events in self._stripe_events.pages(start, end):
                    yield ListedPage(tuple(stripe_refs(e) for e in events), body)
            elif isinstance(self.client, PaystackGatewayClient):
                async for items in _chunks(self.client.list_transactions(start=start, end=end), _PAGE):
                    refs = tuple(
                        (t["reference"],) if isinstance(t.get("reference"), str) else () for t in items
                    )
                    yield ListedPage(refs, json.dumps(items).encode())
            else:
                return
        except BudgetExhausted:
            raise
        except GatewayError:
            await self._failed()
            raise
        await self._succeeded()

    def _guard(self) -> None:
        if not self.breaker.allow():
            raise CircuitOpen(self.provider.value, self.breaker.retry_after())

    async def _succeeded(self) -> None:
        if self.breaker.record_success():
            metrics.CIRCUIT_OPEN.labels(self.provider.value).dec()
            log.info("reconcile.circuit.closed", tenant=self.tenant, provider=self.provider.value)
            if self._on_circuit is not None:
                await self._on_circuit(self.tenant, self.provider, False)

    async def _failed(self) -> None:
        if self.breaker.record_failure():
            metrics.CIRCUIT_OPEN.labels(self.provider.value).inc()
            log.warning(
                "reconcile.circuit.opened",
                tenant=self.tenant,
                provider=self.provider.value,
                failures=self.breaker.failures,
            )
            if self._on_circuit is not None:
                await self._on_circuit(self.tenant, self.provider, True)


@dataclass(slots=True)
class _Entry:
    port: GatewayPort
    http: httpx.AsyncClient
    fingerprint: str


@dataclass(slots=True)
class _Cached:
    credentials: GatewayCredentials
    loaded_at: float
    #: Only ever a hash: a changed secret gives a new client, an unchanged one keeps its connections.
    #: Computed once per load, not per call (it serializes every secret of the tenant).
    fingerprint: str = field(init=False)

    def __post_init__(self) -> None:
        self.fingerprint = hashlib.sha256(self.credentials.to_plain_json().encode()).hexdigest()


async def follow_credential_changes(database_url: str, directory: GatewayDirectory) -> None:
    """Forget a tenant's cached credentials when they change (NOTIFY `paysync_tenants`), and every
    tenant's each time the LISTEN connection is made again: a change notified while it was away (a
    database restart, a failover) is then read at once, not after the cache's time-to-live."""
    channels = {TENANTS_CHANNEL: directory.forget}
    await listen(asyncpg_dsn(database_url), channels, on_connect=directory.forget_all)


@dataclass
class GatewayDirectory:
    """Builds and keeps each tenant's gateway ports; budgets and breakers outlive credential changes."""

    engine: AsyncEngine
    cipher: CredentialsCipher | None
    settings: ReconcilerSettings
    on_circuit: CircuitListener | None = None
    clock: Callable[[], float] = time.monotonic
    _credentials: dict[str, _Cached] = field(default_factory=dict)
    _ports: dict[tuple[str, Provider], _Entry] = field(default_factory=dict)
    _budgets: dict[tuple[str, Provider], GatewayBudget] = field(default_factory=dict)
    _breakers: dict[tuple[str, Provider], CircuitBreaker] = field(default_factory=dict)
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    _leases: LeaseBatches = field(init=False)

    def __post_init__(self) -> None:
        self._leases = LeaseBatches(self._lease_many)

    async def port(self, tenant: str, provider: Provider) -> GatewayPort:
        """The tenant's port to the gateway; ProviderNotConfigured if it has no credentials for it."""
        provider = Provider(provider)
        cached = await self._cached(tenant)
        credentials, fingerprint = cached.credentials, cached.fingerprint
        if getattr(credentials, provider.value) is None:
            raise ProviderNotConfigured(tenant, provider.value)
        key = (tenant, provider)
        entry = self._ports.get(key)
        if entry is not None and entry.fingerprint == fingerprint:
            return entry.port
        async with self._lock:
            entry = self._ports.get(key)
            if entry is None or entry.fingerprint != fingerprint:
                if entry is not None:
                    await entry.http.aclose()
                entry = self._ports[key] = self._build(tenant, provider, credentials, fingerprint)
            return entry.port

    def budget(self, tenant: str, provider: Provider) -> GatewayBudget:
        """The budget for one tenant's gateway account: this process's, drawing on the shared one."""
        key = (tenant, Provider(provider))
        budget = self._budgets.get(key)
        if budget is None:
            rate = self.settings.rate_for(provider)
            label = Provider(provider).value

            def counted(level: Priority) -> None:
                metrics.GATEWAY_CALLS.labels(label, level.name.lower()).inc()

            burst = max(1.0, rate * self.settings.budget_burst_seconds)
            budget = self._budgets[key] = GatewayBudget(
                rate=rate,
                burst=burst,
                slowdown_factor=self.settings.slowdown_factor,
                recovery_seconds=self.settings.recovery_seconds,
                on_take=counted,
                shared=SharedBucket(
                    rate, self.settings.budget_lease_seconds, self._leases.leaser(tenant, label, rate, burst)
                ),
            )
        return budget

    async def _lease_many(self, wants: list[Want]) -> dict[tuple[str, str], Lease]:
        """Leases from the tenants' buckets in PostgreSQL, the ones all replicas share."""
        async with no_transaction(self.engine) as conn:  # its statement is atomic (the rows locked)
            return await budgets_repo.lease(conn, wants)

    async def credentials(self, tenant: str) -> GatewayCredentials:
        """The tenant's gateway credentials, cached for a little while."""
        return (await self._cached(tenant)).credentials

    async def _cached(self, tenant: str) -> _Cached:
        cached = self._credentials.get(tenant)
        if cached is not None and self.clock() - cached.loaded_at < self.settings.credentials_ttl_seconds:
            return cached
        if self.cipher is None:
            raise ProviderNotConfigured(tenant, "any")
        async with self.engine.connect() as conn:
            credentials = await tenant_repo.load_credentials(conn, tenant, self.cipher)
        cached = self._credentials[tenant] = _Cached(credentials, self.clock())
        return cached

    def forget(self, tenant: str) -> None:
        """Drop a tenant's cached credentials (they changed)."""
        self._credentials.pop(tenant, None)

    def forget_all(self) -> None:
        """Drop every tenant's cached credentials (changes may have gone unheard)."""
        self._credentials.clear()

    async def close(self) -> None:
        """Close every HTTP client."""
        for entry in self._ports.values():
            await entry.http.aclose()
        self._ports.clear()

    def _build(
        self, tenant: str, provider: Provider, credentials: GatewayCredentials, fingerprint: str
    ) -> _Entry:
        s = self.settings
        budget = self.budget(tenant, provider)
        breaker = self._breakers.setdefault(
            (tenant, provider), CircuitBreaker(s.breaker_threshold, s.breaker_cooldown_seconds)
        )
        http = httpx.AsyncClient(
            verify=client_tls(),
            timeout=httpx.Timeout(s.http_timeout_seconds, connect=5.0),
            limits=httpx.Limits(max_connections=max(s.check_concurrency, s.on_demand_concurrency) * 2),
            event_hooks={"response": [_throttle_watch(budget, provider)]},
        )
        policy = RetryPolicy(
            max_attempts=s.max_attempts,
            base_delay=s.base_delay,
            max_delay=s.max_delay,
            max_retry_after=s.max_retry_after,
            max_budget_wait=s.max_budget_wait,
        )
        client: Client
        events = None
        if provider is Provider.STRIPE:
            events = StripeEventPages(
                credentials.stripe,  # type: ignore[arg-type]
                http,
                policy=policy,
                budget=budget,
                timeout=httpx.Timeout(s.http_timeout_seconds, connect=5.0),
            )
            client = StripeGatewayClient(tenant, credentials.stripe, http, policy=policy, budget=budget)  # type: ignore[arg-type]
        elif provider is Provider.PAYSTACK:
            client = PaystackGatewayClient(tenant, credentials.paystack, http, policy=policy, budget=budget)  # type: ignore[arg-type]
        else:
            client = DarajaGatewayClient(tenant, credentials.mpesa, http, policy=policy, budget=budget)  # type: ignore[arg-type]
        port = GatewayPort(tenant, provider, client, budget, breaker, self.on_circuit, events)
        return _Entry(port, http, fingerprint)


async def _chunks(items: AsyncIterator[dict[str, Any]], size: int) -> AsyncIterator[list[dict[str, Any]]]:
    chunk: list[dict[str, Any]] = []
    async for item in items:
        chunk.append(item)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _throttle_watch(budget: GatewayBudget, provider: Provider) -> Callable[[httpx.Response], Awaitable[None]]:
    """A response hook: a gateway that says "too many requests" slows this budget down."""

    async def watch(response: httpx.Response) -> None:
        throttled = response.status_code == 429
        if not throttled and provider is Provider.MPESA and response.status_code == 500:
            body = await response.aread()
            throttled = any(code in body for code in _DARAJA_THROTTLED)
        if throttled:
            retry_after = retry_after_seconds(response.headers)
            budget.slow_down(retry_after)
            metrics.THROTTLED_RATE.labels(provider.value).set(budget.current_rate)
            metrics.THROTTLED.labels(provider.value, current_priority.get().name.lower()).inc()
            log.info(
                "reconcile.gateway.throttled",
                provider=provider.value,
                retry_after=retry_after,
                rate=round(budget.current_rate, 2),
            )

    return watch
