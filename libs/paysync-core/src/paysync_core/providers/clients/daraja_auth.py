"""Daraja OAuth: a client-credentials access token per tenant app, cached until shortly before expiry."""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import Callable
from dataclasses import dataclass

import httpx

from paysync_core.contracts.common import Provider
from paysync_core.credentials import MpesaCredentials
from paysync_core.errors import GatewayError
from paysync_core.providers.clients.errors import GatewayRejected
from paysync_core.providers.clients.http import GatewayHttp, error_for_status, json_object, text_field

TOKEN_PATH = "/oauth/v1/generate"  # noqa: S105 - a URL path, not a password
#: Daraja's documented lifetime (3600 s) when an answer leaves `expires_in` out.
DEFAULT_LIFETIME = 3600.0


class TokenRejected(GatewayError):
    """Daraja refused the access token (expired or revoked): get a new one and try once more."""

    code = "token_rejected"

    def __init__(self, message: str, *, status_code: int | None) -> None:
        super().__init__(message, provider="mpesa", retryable=False, status_code=status_code)


@dataclass(frozen=True, slots=True)
class _Token:
    value: str
    refresh_at: float  # monotonic seconds


class DarajaTokens:
    """The tenant app's access token: fetched once, shared by concurrent calls, renewed early."""

    def __init__(
        self,
        credentials: MpesaCredentials,
        base_url: str,
        gateway: GatewayHttp,
        *,
        refresh_margin: float = 60.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        key, secret = credentials.consumer_key, credentials.consumer_secret
        pair = f"{key.get_secret_value()}:{secret.get_secret_value()}"
        self._basic = "Basic " + base64.b64encode(pair.encode()).decode()
        self._url = f"{base_url}{TOKEN_PATH}"
        self._gateway = gateway
        self._margin = refresh_margin
        self._monotonic = monotonic
        self._token: _Token | None = None
        self._lock = asyncio.Lock()
        self.fetches = 0  # how many tokens this cache has asked Daraja for

    async def get(self) -> str:
        """A token that is not about to expire; fetched (once, for every waiting caller) if needed."""
        token = self._token
        if token is not None and self._monotonic() < token.refresh_at:
            return token.value
        async with self._lock:
            token = self._token
            if token is None or self._monotonic() >= token.refresh_at:
                token = self._token = await self._fetch()
            return token.value

    def invalidate(self, value: str) -> None:
        """Forget `value` after Daraja refused it, unless a newer token has replaced it already."""
        if self._token is not None and self._token.value == value:
            self._token = None

    async def _fetch(self) -> _Token:
        async def attempt() -> _Token:
            response = await self._gateway.send(
                "GET",
                self._url,
                params={"grant_type": "client_credentials"},
                headers={"Authorization": self._basic, "Accept": "application/json"},
            )
            return self._read(response)

        token = await self._gateway.retrying(attempt, operation="oauth.generate")
        self.fetches += 1
        return token

    def _read(self, response: httpx.Response) -> _Token:
        if response.status_code >= 300:
            body = _quiet_json(response)
            detail = text_field(body, "errorMessage") or text_field(body, "error_description") or "no detail"
            if response.status_code in (400, 401, 403):
                raise GatewayRejected(
                    f"OAuth refused the consumer key/secret: {detail}",
                    provider="mpesa",
                    status_code=response.status_code,
                    gateway_code=text_field(body, "errorCode"),
                )
            raise error_for_status(response, Provider.MPESA, f"OAuth: {detail}")
        body = json_object(response, Provider.MPESA)
        value = body.get("access_token")
        if not isinstance(value, str) or not value:
            raise GatewayError(
                "OAuth answer without an access_token",
                provider="mpesa",
                retryable=True,
                status_code=response.status_code,
            )
        lifetime = _seconds(body.get("expires_in"))
        # Renew a little before Daraja would refuse it, but never before half its life.
        early = min(self._margin, lifetime / 2)
        return _Token(value, self._monotonic() + lifetime - early)


def _seconds(value: object) -> float:
    """`expires_in` as seconds; Daraja sends it as a string ("3599")."""
    if isinstance(value, bool):
        return DEFAULT_LIFETIME
    if isinstance(value, (int, float)) and value > 0:
        return float(value)
    if isinstance(value, str):
        try:
            seconds = float(value)
        except ValueError:
            return DEFAULT_LIFETIME
        return seconds if seconds > 0 else DEFAULT_LIFETIME
    return DEFAULT_LIFETIME


def _quiet_json(response: httpx.Response) -> dict[str, object]:
    try:
        return json_object(response, Provider.MPESA)
    except GatewayError:
        return {}
