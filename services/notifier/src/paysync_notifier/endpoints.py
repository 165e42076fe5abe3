"""The notifier's internal HTTP routes: the live stream api-gateway fronts, behind the internal token."""

from __future__ import annotations

import asyncio
import hmac
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Annotated

import structlog
from fastapi import APIRouter, Depends, Header, HTTPException
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import SecretStr
from sse_starlette import ServerSentEvent
from sse_starlette.sse import EventSourceResponse, SendTimeoutError
from starlette.types import Receive, Scope, Send

from paysync_notifier.service import LiveStream, StreamEvent

log = structlog.get_logger()
_bearer = HTTPBearer(auto_error=False, description="The shared internal token (`PAYSYNC_INTERNAL_TOKEN`)")
#: How often an idle stream is sent a keep-alive comment (seconds).
_PING_SECONDS = 15


class LiveResponse(EventSourceResponse):
    """An event stream whose client, when it stops accepting data, is disconnected quietly."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
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


def stream_router(stream: LiveStream, token: SecretStr, send_timeout: float) -> APIRouter:
    """`/internal/stream/{tenant}`: one tenant's status changes as server-sent events; `/internal/ping`."""
    router = APIRouter(prefix="/internal", dependencies=[Depends(internal_caller(token))])

    @router.get("/ping")
    async def ping() -> dict[str, str]:
        """200 for a caller whose internal token is right: how api-gateway checks it is let in."""
        return {"status": "ok"}

    @router.get("/stream/{tenant}")
    async def live(tenant: str, last_event_id: Annotated[str | None, Header()] = None) -> LiveResponse:
        """Status changes of one tenant as server-sent events (internal: api-gateway fronts it)."""
        resume_from = int(last_event_id) if last_event_id and last_event_id.isdigit() else None
        # A client that stops reading blocks its send; past the timeout its stream is closed.
        events = _events(stream, tenant, resume_from)
        return LiveResponse(events, ping=_PING_SECONDS, send_timeout=send_timeout)

    return router


async def _events(
    stream: LiveStream, tenant: str, resume_from: int | None
) -> AsyncIterator[dict | ServerSentEvent]:
    # Subscribed before the replay, so nothing published meanwhile falls between the two.
    subscriber = stream.subscribe(tenant)
    try:
        # Opens the stream at once (headers and a first line) and sets the reconnect delay.
        yield ServerSentEvent(comment="paysync live status", retry=3000)
        last_id = resume_from
        if resume_from is not None:
            for event in stream.since(resume_from, tenant):
                last_id = event.id
                yield _as_sse(event)
        while not (subscriber.cut_off and subscriber.queue.empty()):
            try:
                event = await asyncio.wait_for(subscriber.queue.get(), _PING_SECONDS)
            except TimeoutError:
                continue
            if last_id is not None and event.id <= last_id:
                continue  # already sent from the replay buffer
            last_id = event.id
            yield _as_sse(event)
        # It fell behind and was dropped from the fan-out: tell it to come back from where it is.
        yield {"event": "stream.resync", "data": json.dumps({"reason": "too_slow", "last_event_id": last_id})}
    finally:
        stream.unsubscribe(subscriber)


def _as_sse(event: StreamEvent) -> dict:
    return {"id": str(event.id), "event": "payment.status", "data": event.data}
