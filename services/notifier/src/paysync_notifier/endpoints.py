"""The notifier's internal HTTP routes: the live stream api-gateway fronts, behind the internal token."""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from typing import Annotated

import structlog
from fastapi import APIRouter, Depends, Header, HTTPException
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import SecretStr
from sse_starlette.sse import EventSourceResponse, SendTimeoutError
from starlette.types import Receive, Send
from starlette.types import Scope as AsgiScope

from paysync_notifier.live_events import live_events
from paysync_notifier.service import LiveStream, Scope
from paysync_notifier.settings import NotifierSettings

log = structlog.get_logger()
_bearer = HTTPBearer(auto_error=False, description="The shared internal token (`PAYSYNC_INTERNAL_TOKEN`)")


class LiveResponse(EventSourceResponse):
    """An event stream whose client, when it stops accepting data, is disconnected quietly."""

    async def __call__(self, scope: AsgiScope, receive: Receive, send: Send) -> None:
        """Stream; a send past `send_timeout` ends the response (no ASGI error, one log line)."""
        try:
            await super().__call__(scope, receive, send)
        except SendTimeoutError:
            log.info("stream.client_disconnected", reason="send_timeout")


def internal_caller(token: SecretStr) -> Callable[..., Awaitable[None]]:
    """A dependency that admits only callers holding the internal token.

    With no token configured every internal request is refused (403): an unset secret must not
    turn the live stream of every tenant into an open endpoint.
    """
    expected = token.get_secret_value().encode()
    if not expected:
        log.warning("internal.token_missing", hint="set PAYSYNC_INTERNAL_TOKEN; internal routes refuse all")

    async def check(credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]) -> None:
        if not expected:
            raise HTTPException(403, "internal routes are disabled: no internal token is configured")
        given = credentials.credentials.encode() if credentials is not None else b""
        # Constant time, so the token cannot be guessed byte by byte from response times.
        if not hmac.compare_digest(given, expected):
            raise HTTPException(401, "a valid internal token is required", {"WWW-Authenticate": "Bearer"})

    return check


def stream_router(stream: LiveStream, token: SecretStr, settings: NotifierSettings) -> APIRouter:
    """`/internal/stream/{tenant}`: one tenant's status changes as server-sent events; `/internal/ping`."""
    router = APIRouter(prefix="/internal", dependencies=[Depends(internal_caller(token))])

    @router.get("/ping")
    async def ping() -> dict[str, str]:
        """200 for a caller whose internal token is right: how api-gateway checks it is let in."""
        return {"status": "ok"}

    @router.get("/stream/{tenant}")
    async def live(
        tenant: str,
        domain: str | None = None,
        entity_id: str | None = None,
        last_event_id: Annotated[str | None, Header()] = None,
    ) -> LiveResponse:
        """Status changes of one tenant (or of one domain or entity of it) as server-sent events."""
        # A client that stops reading blocks its send; past the timeout its stream is closed.
        events = live_events(
            stream, Scope(tenant, domain, entity_id), last_event_id, settings.heartbeat_seconds
        )
        return LiveResponse(
            events, ping=settings.heartbeat_seconds, send_timeout=settings.send_timeout_seconds
        )

    return router
