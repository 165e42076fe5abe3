"""CORS per tenant: web pages on a tenant's allowed origins may call `/v1` with the tenant's keys.

A preflight (`OPTIONS` with `Access-Control-Request-Method`) carries no key, so it cannot name the
tenant. It is answered (204, the origin echoed) when *some* tenant allows the origin, and refused
(403, no CORS headers: the browser blocks the call) otherwise. That reveals only that some tenant
allows an origin, which its own web pages show anyway. The actual request decides for its tenant:
it carries the key, and an `Origin` the key's tenant does not allow is refused 403
`origin_not_allowed` before the route runs, without CORS headers, so a page on another tenant's
origin (or any other) neither reads an answer nor starts work. Allowed origins are cached like API
keys: a change reaches every replica within `api_key_cache_seconds`.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any
from urllib.parse import urlsplit

from fastapi import Request
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from paysync_core.db import tenants as tenant_repo
from paysync_core.errors import PaysyncError

#: Where a request's scope holds the origin its tenant allowed, for the middleware to echo.
_ALLOWED = "paysync.cors_allowed"
_METHODS = "GET, POST, PUT, PATCH, DELETE"
_HEADERS = "Authorization, Content-Type, If-None-Match, Last-Event-ID, Idempotency-Key"
_EXPOSED = "ETag, Location, Retry-After"


class OriginNotAllowed(PaysyncError):
    """A browser request from a web origin the tenant has not allowed."""

    code = "origin_not_allowed"


class OriginDirectory:
    """Every tenant's allowed origins, reloaded (one statement, single flight) once `ttl` has passed."""

    def __init__(self, engine: AsyncEngine, ttl: float) -> None:
        self._engine, self._ttl = engine, ttl
        self._by_tenant: dict[str, frozenset[str]] = {}
        self._any: frozenset[str] = frozenset()
        self._fresh_until = float("-inf")
        self._flight: asyncio.Task[None] | None = None

    async def allows(self, tenant: str, origin: str) -> bool:
        """Whether `tenant` lets pages on `origin` call the API."""
        await self._fresh()
        return origin in self._by_tenant.get(tenant, frozenset())

    async def any_allows(self, origin: str) -> bool:
        """Whether some tenant lets pages on `origin` call the API (all a preflight can know)."""
        await self._fresh()
        return origin in self._any

    def forget(self) -> None:
        """Reload on next use (this replica changed a tenant's origins)."""
        self._fresh_until = float("-inf")

    async def _fresh(self) -> None:
        if self._fresh_until > time.monotonic():
            return
        if self._flight is None or self._flight.done():
            self._flight = asyncio.create_task(self._load())
        await asyncio.shield(self._flight)

    async def _load(self) -> None:
        async with self._engine.connect() as conn:
            by_tenant = await tenant_repo.tenants_cors_origins(conn)
        self._by_tenant = {tenant: frozenset(origins) for tenant, origins in by_tenant.items()}
        self._any = frozenset().union(*self._by_tenant.values())
        self._fresh_until = time.monotonic() + self._ttl


async def check_origin(request: Request, origins: OriginDirectory, tenant: str) -> None:
    """Let a browser request through only from an origin `tenant` allows (no `Origin`: not a browser's)."""
    origin = request.headers.get("origin")
    if origin is None or same_origin(request, origin):
        return
    if not await origins.allows(tenant, origin):
        raise OriginNotAllowed(f"pages on {origin} may not call this API with this tenant's keys")
    allowed: dict[str, str] | None = request.scope.get(_ALLOWED)
    if allowed is not None:
        allowed["origin"] = origin


def same_origin(request: Request, origin: str) -> bool:
    """Whether a browser request comes from a page of this API's own origin (the console, `/console`).

    Browsers send `Origin` on same-origin `POST`s too. `Sec-Fetch-Site` is set by the browser alone
    (no script can set it); a browser without it is recognised by an `Origin` naming the host it
    called. A page elsewhere can forge neither, and a client that is not a browser needs neither.
    """
    if request.headers.get("sec-fetch-site") == "same-origin":
        return True
    host = request.headers.get("host")
    return host is not None and urlsplit(origin).netloc.lower() == host.lower()


class TenantCors:
    """ASGI middleware on `/v1`: answers preflights, and adds CORS headers where `check_origin` allowed."""

    def __init__(self, app: ASGIApp, origins: OriginDirectory, max_age: int) -> None:
        self.app, self.origins, self.max_age = app, origins, max_age

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Preflights are answered here; other requests pass on, their answers marked on the way out."""
        if scope["type"] != "http" or not scope["path"].startswith("/v1/"):
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        origin = headers.get("origin")
        if origin is None:
            await self.app(scope, receive, send)
            return
        if scope["method"] == "OPTIONS" and "access-control-request-method" in headers:
            await self._preflight(origin, send)
            return
        allowed: dict[str, str] = {}
        scope[_ALLOWED] = allowed

        async def send_marked(message: Message) -> None:
            if message["type"] == "http.response.start":
                out = MutableHeaders(scope=message)
                out.add_vary_header("Origin")
                if "origin" in allowed:
                    out["Access-Control-Allow-Origin"] = allowed["origin"]
                    out["Access-Control-Expose-Headers"] = _EXPOSED
            await send(message)

        await self.app(scope, receive, send_marked)

    async def _preflight(self, origin: str, send: Send) -> None:
        headers: list[tuple[bytes, bytes]] = [(b"vary", b"Origin")]
        if await self.origins.any_allows(origin):
            status, body = 204, b""
            headers += _encoded(
                {
                    "Access-Control-Allow-Origin": origin,
                    "Access-Control-Allow-Methods": _METHODS,
                    "Access-Control-Allow-Headers": _HEADERS,
                    "Access-Control-Max-Age": str(self.max_age),
                }
            )
        else:
            status = 403
            body = (
                b'{"error":"origin_not_allowed","message":"no tenant lets pages on this origin call the API",'
                b'"problems":[]}'
            )
            headers += _encoded({"Content-Type": "application/json", "Content-Length": str(len(body))})
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def _encoded(headers: dict[str, Any]) -> list[tuple[bytes, bytes]]:
    return [(name.lower().encode(), str(value).encode()) for name, value in headers.items()]
