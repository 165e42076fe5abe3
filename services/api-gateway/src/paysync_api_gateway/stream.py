"""`GET /v1/stream`: the tenant's status changes as server-sent events, fronting the notifier.

Each open stream holds one connection to the notifier. Admission is decided here, before that
connection is made: a tenant may hold `stream_max_per_tenant` streams and this replica
`stream_max_total`, so no tenant can take the connections another's stream needs. Past a cap,
or with the notifier unreachable, the answer comes at once (429 / 503 with `Retry-After`).
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from typing import Annotated

import anyio
import httpx
import structlog
from fastapi import APIRouter, Depends, Header, Query
from fastapi.responses import StreamingResponse
from prometheus_client import Gauge
from pydantic import SecretStr

from paysync_api_gateway.contract import errors
from paysync_api_gateway.deps import Notifier, Slots
from paysync_api_gateway.stream_tokens import StreamAccess, stream_access
from paysync_api_gateway.upstream import UpstreamRefused, open_stream, safe_header_value
from paysync_core import tracing
from paysync_core.errors import PaysyncError

log = structlog.get_logger()
router = APIRouter(prefix="/v1")
#: How long opening the notifier's stream may take (connect and its answer's head).
_CONNECT_SECONDS = 5.0
OPEN_STREAMS = Gauge("paysync_api_gateway_live_streams", "Live streams this replica holds open")


class TooManyStreams(PaysyncError):
    """The tenant already holds as many live streams as it may: close one, or retry later."""

    code = "too_many_streams"
    retryable = True


class StreamUnavailable(PaysyncError):
    """The live stream cannot be served now (notifier unreachable, or this replica is full)."""

    code = "stream_unavailable"
    retryable = True


class NotifierRefusedUs(Exception):
    """The notifier does not accept this replica's internal token (a configuration error)."""


class StreamSlots:
    """Counts this replica's open streams, per tenant and in all."""

    def __init__(self, per_tenant: int, total: int) -> None:
        self._per_tenant, self._total = per_tenant, total
        self._open: Counter[str] = Counter()

    def acquire(self, tenant: str) -> None:
        """Take one of the tenant's slots, or raise if none is free."""
        if self._open[tenant] >= self._per_tenant:
            raise TooManyStreams(f"at most {self._per_tenant} live streams per tenant are open at once")
        if self._open.total() >= self._total:
            raise StreamUnavailable("the live stream is at capacity; try again shortly")
        self._open[tenant] += 1
        OPEN_STREAMS.inc()

    def release(self, tenant: str) -> None:
        """Give back a slot taken with `acquire`."""
        self._open[tenant] -= 1
        OPEN_STREAMS.dec()
        if self._open[tenant] <= 0:
            del self._open[tenant]


def notifier_client(url: str, internal_token: SecretStr) -> httpx.AsyncClient:
    """The client that opens streams at the notifier, carrying the internal token.

    No pool limit: `StreamSlots` caps the streams, and a pool cap would make the overflow wait
    in httpx's queue (a hang) instead of being answered.
    """
    token = internal_token.get_secret_value()
    if not token:
        log.warning("stream.internal_token_missing", hint="set PAYSYNC_INTERNAL_TOKEN")
    return httpx.AsyncClient(
        base_url=url,
        headers={"Authorization": f"Bearer {token}"} if token else {},
        timeout=httpx.Timeout(5.0, read=None),
        limits=httpx.Limits(max_connections=None, max_keepalive_connections=20),
    )


async def notifier_answers(notifier: httpx.AsyncClient) -> bool:
    """Whether the notifier is ready and lets us in (our internal token is its): for `/readyz`.

    A down notifier makes api-gateway "degraded", not "not ready": every other endpoint still
    works, and a readiness that follows a downstream every replica shares would take all
    replicas out of the load balancer at once, turning a stream outage into a full outage.
    """
    ready = await notifier.get("/readyz", timeout=2.0)
    if ready.status_code != 200:
        return False
    let_in = await notifier.get("/internal/ping", timeout=2.0)
    if let_in.status_code != 200:
        raise NotifierRefusedUs(f"the notifier answered {let_in.status_code} to our internal token")
    return True


#: The 200 of `GET /v1/stream`: server-sent events, described (docs/http-api.md#the-live-stream).
_EVENTS = {
    "description": "Server-sent events: `event: payment.status` with `id:` the stream position after "
    "the change and `data:` the PaymentStatusChanged as JSON (docs/topics.md); `event: stream.resync` "
    'with `data: {"reason", "last_event_id"}` (refetch what you show, then carry on); a `: ping` '
    "comment on an idle stream. Send the last `id` as `Last-Event-ID` to resume after it",
    "content": {"text/event-stream": {"schema": {"type": "string"}}},
}


@router.get(
    "/stream",
    response_class=StreamingResponse,
    responses=errors(
        429,
        503,
        answers={200: _EVENTS},
        e429="Too many live streams for this tenant (`too_many_streams`) or failed keys from this address",
        e503="The live stream is at capacity or the notifier is away (`stream_unavailable`)",
    ),
)
async def stream(
    access: Annotated[StreamAccess, Depends(stream_access)],
    notifier: Notifier,
    slots: Slots,
    last_event_id: Annotated[str | None, Header()] = None,
    resume_from: Annotated[
        str | None,
        Query(
            alias="last_event_id",
            max_length=4096,
            description="Resume after this event id, for a client that cannot send `Last-Event-ID` "
            "(a new `EventSource`); the header wins when both are sent",
        ),
    ] = None,
) -> StreamingResponse:
    """Live status changes; reconnect with `Last-Event-ID` to resume where the stream left off.

    A tenant API key (`Authorization`) or a stream token (`?token=`, from `POST /v1/stream-tokens`)
    authorises it; a token scoped to a domain or entity gets only its events. 429 when the tenant
    holds too many streams; 503 when the stream cannot be served now. Both carry `Retry-After`.
    """
    tenant = access.tenant
    slots.acquire(tenant)  # before any connection is made: a tenant at its cap costs nothing upstream
    try:
        # The header is the newer of the two: EventSource's own reconnect sends it and keeps the URL.
        upstream = await _open_upstream(notifier, access, last_event_id or resume_from)
    except BaseException:
        slots.release(tenant)
        raise

    async def relay() -> AsyncIterator[bytes]:
        try:
            async for data in upstream:
                yield data
        finally:
            slots.release(tenant)
            with anyio.CancelScope(shield=True):  # the client left: still give the connection back
                await upstream.aclose()  # type: ignore[attr-defined]

    return StreamingResponse(
        relay(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


async def _open_upstream(
    notifier: httpx.AsyncClient, access: StreamAccess, last_event_id: str | None
) -> AsyncIterator[bytes]:
    """The notifier's stream for this access, as bytes (`upstream.py`: no per-chunk parsing)."""
    if last_event_id and not safe_header_value(last_event_id):
        last_event_id = "unknown"  # not an id of ours: the notifier answers `stream.resync`, as for any such
    headers = {"Last-Event-ID": last_event_id} if last_event_id else {}
    if (parent := tracing.traceparent()) is not None:  # the notifier's request span continues ours
        headers["traceparent"] = parent
    scope = {
        name: value for name, value in (("domain", access.domain), ("entity_id", access.entity_id)) if value
    }
    request = notifier.build_request(
        "GET", f"/internal/stream/{access.tenant}", headers=headers, params=scope
    )
    try:
        return await open_stream(request, _CONNECT_SECONDS)
    except (OSError, TimeoutError, asyncio.IncompleteReadError) as exc:
        log.warning("stream.notifier_unreachable", error=type(exc).__name__)
        raise StreamUnavailable("the live stream is unavailable; try again shortly") from exc
    except UpstreamRefused as refused:
        log.error("stream.notifier_refused", status=refused.status)
        raise StreamUnavailable("the live stream is unavailable; try again shortly") from None
