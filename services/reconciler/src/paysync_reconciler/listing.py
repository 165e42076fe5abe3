"""Reading listed pages into observations: the CPU-heavy part of a list sweep, fit for a worker process.

A Stripe Events page holds 100 events, and Stripe's test-mode limit allows 25 pages a second:
reading each event as its webhook would be read costs a few hundred microseconds, so at full
pace reading alone would take most of a core. A process pool does it beside the event loop,
which keeps fetching pages at the budget's pace and publishing what the workers return.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from functools import lru_cache, partial
from multiprocessing import get_context

import httpx
import structlog

from paysync_core import topics
from paysync_core.contracts import PaymentObservation, Provider
from paysync_core.credentials import PaystackCredentials, StripeCredentials
from paysync_core.domain.status import UnifiedStatus
from paysync_core.errors import PaysyncError
from paysync_core.providers.clients import PaystackGatewayClient, StripeGatewayClient
from paysync_core.tls import client_tls

log = structlog.get_logger()


@dataclass(frozen=True, slots=True)
class Listed:
    """One listed item read into an observation: the record to publish and what the sweep needs of it."""

    key: bytes
    value: bytes
    observation_id: str
    provider_ref: str
    refs: tuple[str, ...]
    status: UnifiedStatus | None
    amount_minor: int | None
    currency: str | None

    @classmethod
    def of(cls, obs: PaymentObservation) -> Listed:
        """The listed form of an observation."""
        return cls(
            key=topics.PAYMENT_OBSERVATIONS.key_for(obs),
            value=obs.to_bytes(),
            observation_id=obs.observation_id,
            provider_ref=obs.provider_ref,
            refs=obs.refs,
            status=obs.status,
            amount_minor=obs.amount_minor,
            currency=obs.currency,
        )


#: Reads pages (provider, tenant, payloads) into listed items, page by page.
PageReader = Callable[[Provider, str, list[bytes]], Awaitable[list[list[Listed]]]]


def read_pages(provider: str, tenant: str, payloads: list[bytes]) -> list[list[Listed]]:
    """Pages of a gateway's list as listed items; an item the adapter cannot read skips only itself."""
    return [[Listed.of(obs) for obs in _observations(Provider(provider), tenant, p)] for p in payloads]


async def read_inline(provider: Provider, tenant: str, payloads: list[bytes]) -> list[list[Listed]]:
    """Read pages in this process (small volumes, tests)."""
    return read_pages(provider.value, tenant, payloads)


class PoolReader:
    """Reads pages in worker processes (spawned at `start`, or on first use, kept for the service's life)."""

    def __init__(self, workers: int) -> None:
        self._workers = workers
        self._pool: ProcessPoolExecutor | None = None
        self._closed = False

    def start(self) -> None:
        """Spawn the workers now and have them import the adapters, without waiting for them.

        A spawned worker starts a new interpreter and imports the gateway adapters (about a second
        on an idle machine, many more on a busy one): paid at start-up, not by the first sweep.
        """
        for _ in range(self._workers):
            self._ready_pool().submit(read_pages, Provider.STRIPE.value, "", [])

    async def __call__(self, provider: Provider, tenant: str, payloads: list[bytes]) -> list[list[Listed]]:
        """Read pages in a worker."""
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(
                self._ready_pool(), partial(read_pages, provider.value, tenant, payloads)
            )
        except BrokenProcessPool:
            self._pool = None  # a worker died: the next call starts a new pool
            raise

    def _ready_pool(self) -> ProcessPoolExecutor:
        if self._closed:
            raise RuntimeError("the page readers are stopped: the service is shutting down")
        if self._pool is None:
            self._pool = ProcessPoolExecutor(self._workers, mp_context=get_context("spawn"))
        return self._pool

    def close(self) -> None:
        """Stop the workers and wait until they have exited.

        Not left to the interpreter's exit: uvicorn ends by re-raising SIGTERM, which skips the exit
        handlers that would stop them, and a worker spawned after the service's process group got
        its SIGTERM would outlive the service, blocked on its pipe.
        """
        self._closed = True
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None


def _observations(provider: Provider, tenant: str, payload: bytes) -> Iterator[PaymentObservation]:
    if provider is Provider.STRIPE:
        client = _stripe(tenant)
        data = json.loads(payload).get("data")
        for event in data if isinstance(data, list) else ():
            if not isinstance(event, dict):
                continue
            try:
                observation = client.observation_for_event(event)
            except PaysyncError as exc:
                log.warning(
                    "reconcile.list.unreadable",
                    provider="stripe",
                    event_id=str(event.get("id"))[:60],
                    error=exc.code,
                )
                continue
            if observation is not None:
                yield observation
    elif provider is Provider.PAYSTACK:
        client_ = _paystack(tenant)
        items = json.loads(payload)
        for item in items if isinstance(items, list) else ():
            if not isinstance(item, dict):
                continue
            try:
                yield client_.observation_for(item)
            except PaysyncError as exc:
                log.warning("reconcile.list.unreadable", provider="paystack", error=exc.code)


# Only the clients' readers are used here (no request is sent): credentials are placeholders.
@lru_cache(maxsize=1024)
def _stripe(tenant: str) -> StripeGatewayClient:
    unused = StripeCredentials(secret_key="sk_unused", webhook_secrets=("whsec_unused",))  # noqa: S106 - a placeholder (above)
    return StripeGatewayClient(tenant, unused, httpx.AsyncClient(verify=client_tls()))


@lru_cache(maxsize=1024)
def _paystack(tenant: str) -> PaystackGatewayClient:
    unused = PaystackCredentials(secret_key="sk_unused")  # noqa: S106 - a placeholder (above)
    return PaystackGatewayClient(tenant, unused, httpx.AsyncClient(verify=client_tls()))
