"""Composition root of the notifier."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from fastapi import FastAPI, Header, Request
from sse_starlette import ServerSentEvent
from sse_starlette.sse import EventSourceResponse

from paysync_core.kafka import durable_broker
from paysync_core.logging import configure_logging
from paysync_core.web import service_app
from paysync_notifier.handlers import register_handlers
from paysync_notifier.service import LiveStream
from paysync_notifier.settings import NotifierSettings


def create_app(settings: NotifierSettings | None = None) -> FastAPI:
    """The notifier: consumes status changes and serves them as server-sent events."""
    settings = settings or NotifierSettings()
    common = settings.common
    configure_logging("notifier", common.log_level, common.log_json)
    broker = durable_broker(common.kafka_bootstrap, client_id="paysync-notifier")
    stream = LiveStream(settings.replay_buffer)
    register_handlers(broker, stream, settings)

    app = service_app("paysync notifier", broker=broker)

    @app.get("/internal/stream/{tenant}")
    async def live(tenant: str, request: Request, last_event_id: str | None = Header(default=None)) -> EventSourceResponse:
        """Status changes of one tenant as server-sent events (internal: api-gateway fronts it)."""
        queue = stream.subscribe()

        async def events() -> AsyncIterator[dict | ServerSentEvent]:
            try:
                # Opens the stream at once (headers and a first line) and sets the reconnect delay.
                yield ServerSentEvent(comment="paysync live status", retry=3000)
                if last_event_id and last_event_id.isdigit():
                    for event in stream.since(int(last_event_id), tenant):
                        yield {"id": str(event.id), "event": "payment.status", "data": event.data}
                while True:  # sse-starlette cancels this generator when the client goes away
                    try:
                        event = await asyncio.wait_for(queue.get(), 15)
                    except TimeoutError:
                        continue
                    if event.tenant == tenant:
                        yield {"id": str(event.id), "event": "payment.status", "data": event.data}
            finally:
                stream.unsubscribe(queue)

        return EventSourceResponse(events(), ping=15)

    return app
