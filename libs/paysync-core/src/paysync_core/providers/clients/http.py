"""One tenant's HTTP access to one gateway: the caller's AsyncClient, timeouts, budget, retries."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

import httpx

from paysync_core.contracts.common import Provider
from paysync_core.errors import GatewayError, RateLimited
from paysync_core.providers.clients.errors import GatewayRejected, GatewayUnreachable
from paysync_core.providers.clients.retry import (
    RequestBudget,
    RetryPolicy,
    Sleep,
    retry_after_seconds,
    take_budget,
    with_retries,
)

T = TypeVar("T")

#: Per-request timeouts when the caller names none: connecting is quick or it is not happening.
DEFAULT_TIMEOUT = httpx.Timeout(15.0, connect=5.0)
JsonObject = dict[str, Any]


@dataclass(slots=True)
class GatewayHttp:
    """Sends requests for one gateway client; every request takes from the budget first."""

    http: httpx.AsyncClient
    provider: Provider
    policy: RetryPolicy = field(default_factory=RetryPolicy)
    budget: RequestBudget | None = None
    timeout: httpx.Timeout = field(default_factory=lambda: DEFAULT_TIMEOUT)
    sleep: Sleep = asyncio.sleep

    async def send(
        self,
        method: str,
        url: str | httpx.URL,
        *,
        headers: Mapping[str, str] | None = None,
        params: Mapping[str, str | int] | None = None,
        json_body: object = None,
        content: str | bytes | None = None,
    ) -> httpx.Response:
        """One request: a token from the budget, then the send; no answer is GatewayUnreachable."""
        await take_budget(self.budget, self.policy, self.provider.value, self.sleep)
        try:
            return await self.http.request(
                method,
                url,
                headers=headers,
                params=params,
                json=json_body,
                content=content,
                timeout=self.timeout,
            )
        except httpx.TransportError as exc:
            # Only a failure to connect proves the gateway never saw the request.
            sent = not isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout))
            where = httpx.URL(url).path
            raise GatewayUnreachable(
                f"{method} {where}: {type(exc).__name__}", provider=self.provider.value, request_sent=sent
            ) from exc

    async def retrying(
        self, attempt: Callable[[], Awaitable[T]], *, operation: str, idempotent: bool = True
    ) -> T:
        """`attempt` under this client's retry policy."""
        return await with_retries(
            attempt,
            policy=self.policy,
            provider=self.provider.value,
            operation=operation,
            idempotent=idempotent,
            sleep=self.sleep,
        )


def json_object(response: httpx.Response, provider: Provider) -> JsonObject:
    """The response body as a JSON object; anything else is a gateway error."""
    try:
        value = json.loads(response.content)
    except ValueError as exc:
        raise GatewayError(
            f"HTTP {response.status_code} with a body that is not JSON",
            provider=provider.value,
            retryable=response.status_code >= 500,
            status_code=response.status_code,
        ) from exc
    if not isinstance(value, dict):
        raise GatewayError(
            f"HTTP {response.status_code} with a JSON body that is not an object",
            provider=provider.value,
            retryable=response.status_code >= 500,
            status_code=response.status_code,
        )
    return value


def error_for_status(response: httpx.Response, provider: Provider, detail: str) -> GatewayError:
    """The typed error for a failed response, by HTTP status alone."""
    status = response.status_code
    retry_after = retry_after_seconds(response.headers)
    message = f"HTTP {status}: {detail}"
    if status == 429:
        return RateLimited(
            message, provider=provider.value, retryable=True, status_code=status, retry_after=retry_after
        )
    if status >= 500 or status in (408, 409):
        return GatewayError(
            message, provider=provider.value, retryable=True, status_code=status, retry_after=retry_after
        )
    return GatewayRejected(message, provider=provider.value, status_code=status)


def text_field(body: Mapping[str, Any], key: str, limit: int = 200) -> str | None:
    """A short string field of a gateway body, for messages; None when absent or not text."""
    value = body.get(key)
    return value[:limit] if isinstance(value, str) and value else None
