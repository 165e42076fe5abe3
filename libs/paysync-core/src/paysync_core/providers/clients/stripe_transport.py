"""The stripe SDK's HTTP client, sending through the AsyncClient paysync passes in.

The SDK's own HTTPXClient always builds its own `httpx.AsyncClient`; `stripe.HTTPClient` is
the documented base for custom clients, so this one sends through the caller's client, takes
from the request budget before every request (pages of a list included) and retries the way
paysync does: `Retry-After` and `Stripe-Should-Retry` honoured, jittered backoff otherwise.
The SDK is built with `max_network_retries=0` so nothing is retried twice.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, Awaitable, Mapping
from typing import Any, NoReturn

import anyio
import httpx
import stripe

from paysync_core.errors import GatewayError, RateLimited
from paysync_core.providers.clients.errors import GatewayRejected, NotFoundAtGateway
from paysync_core.providers.clients.http import GatewayHttp
from paysync_core.providers.clients.retry import retry_after_seconds


class _RetryableAnswer(GatewayError):
    """An HTTP answer Stripe says may be retried; handed to the SDK as is once tries run out."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        status = response.status_code
        super().__init__(
            f"HTTP {status} from Stripe",
            provider="stripe",
            retryable=True,
            status_code=status,
            retry_after=retry_after_seconds(response.headers),
        )


class _RateLimitedAnswer(_RetryableAnswer, RateLimited):
    """A 429, which is safe to repeat even for a request that is not idempotent."""


def stripe_says_retry(response: httpx.Response) -> bool:
    """Stripe's own rule: `Stripe-Should-Retry` decides; else 409, 429 and 5xx are worth another try."""
    return should_retry(response.status_code, response.headers)


def should_retry(status: int | None, headers: Mapping[str, str]) -> bool:
    """`stripe_says_retry` for a status and headers (no status: the answer never came)."""
    advice = _header(headers, "stripe-should-retry")
    if advice == "true":
        return True
    if advice == "false":
        return False
    return status is None or status in (409, 429) or status >= 500


def stripe_answer_error(
    status: int | None,
    headers: Mapping[str, str],
    *,
    code: str | None,
    message: str,
    reference: str | None,
) -> GatewayError:
    """The paysync error for one Stripe error answer; both Stripe read paths use this one rule.

    Only Stripe's own `resource_missing` says a payment is unknown: a 404 without it is a URL
    Stripe does not recognize (a wrong API base, a misrouting proxy), which is a fault of ours
    and must count against the gateway, not answer the check.
    """
    retry_after = retry_after_seconds(headers)
    if status == 429:
        return RateLimited(
            message, provider="stripe", retryable=True, status_code=status, retry_after=retry_after
        )
    if code == "resource_missing" and reference is not None:
        return NotFoundAtGateway(message, provider="stripe", reference=reference, status_code=status)
    retryable = should_retry(status, headers)
    if status is not None and 400 <= status < 500 and not retryable:
        return GatewayRejected(message, provider="stripe", status_code=status, gateway_code=code)
    return GatewayError(
        message, provider="stripe", retryable=retryable, status_code=status, retry_after=retry_after
    )


def _header(headers: Mapping[str, str], name: str) -> str | None:
    return next((v.strip().lower() for k, v in headers.items() if k.lower() == name), None)


class PaysyncStripeHttpClient(stripe.HTTPClient):
    """Async-only stripe HTTP client over the caller's httpx.AsyncClient."""

    name = "paysync-httpx"

    def __init__(self, gateway: GatewayHttp) -> None:
        super().__init__()
        self._gateway = gateway

    async def request_async(
        self, method: str, url: str, headers: Mapping[str, str], post_data: Any = None
    ) -> tuple[bytes, int, Mapping[str, str]]:
        """Send one SDK request (with paysync's retries); answer what Stripe finally said."""
        content = post_data if isinstance(post_data, (str, bytes)) and post_data else None

        async def attempt() -> httpx.Response:
            response = await self._gateway.send(method.upper(), url, headers=headers, content=content)
            if response.status_code >= 400 and stripe_says_retry(response):
                if response.status_code == 429:
                    raise _RateLimitedAnswer(response)
                raise _RetryableAnswer(response)
            return response

        path = httpx.URL(url).path
        try:
            response = await self._gateway.retrying(attempt, operation=f"{method.upper()} {path}")
        except _RetryableAnswer as exhausted:
            response = exhausted.response  # the SDK turns it into RateLimitError / APIError
        return response.content, response.status_code, response.headers

    async def request_stream_async(
        self, method: str, url: str, headers: Mapping[str, str], post_data: Any = None
    ) -> tuple[AsyncIterable[bytes], int, Mapping[str, str]]:
        """Streams (file downloads) are not something paysync asks Stripe for."""
        raise NotImplementedError("paysync does not stream from Stripe")

    def sleep_async(self, secs: float) -> Awaitable[None]:
        """The SDK's own retry sleep; unused with max_network_retries=0."""
        return anyio.sleep(secs)

    async def close_async(self) -> None:
        """Nothing to close: the AsyncClient belongs to the caller."""

    def request(
        self, method: str, url: str, headers: Mapping[str, str] | None, post_data: Any = None, **_: Any
    ) -> NoReturn:
        """paysync calls Stripe only with the SDK's `*_async` methods."""
        raise RuntimeError("PaysyncStripeHttpClient is async-only; use the *_async methods")

    def request_stream(
        self, method: str, url: str, headers: Mapping[str, str] | None, post_data: Any = None, **_: Any
    ) -> NoReturn:
        """paysync calls Stripe only with the SDK's `*_async` methods."""
        raise RuntimeError("PaysyncStripeHttpClient is async-only; use the *_async methods")

    def close(self) -> None:
        """Nothing to close: the AsyncClient belongs to the caller."""
