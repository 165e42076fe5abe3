"""`GET /v1/stream`: the tenant's status changes as server-sent events, fronting the notifier."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

import httpx
from fastapi import APIRouter, Depends, Header, Request
from fastapi.responses import StreamingResponse

from paysync_api_gateway.auth import current_tenant

router = APIRouter(prefix="/v1")


@router.get("/stream", response_class=StreamingResponse)
async def stream(
    request: Request,
    tenant: Annotated[str, Depends(current_tenant)],
    last_event_id: Annotated[str | None, Header()] = None,
) -> StreamingResponse:
    """Live status changes; reconnect with `Last-Event-ID` to resume where the stream left off."""
    headers = {"Last-Event-ID": last_event_id} if last_event_id else {}
    notifier: httpx.AsyncClient = request.app.state.notifier
    upstream = await notifier.send(
        notifier.build_request("GET", f"/internal/stream/{tenant}", headers=headers), stream=True
    )

    async def relay() -> AsyncIterator[bytes]:
        try:
            async for chunk in upstream.aiter_raw():
                yield chunk
        finally:
            await upstream.aclose()

    return StreamingResponse(
        relay(), media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )
