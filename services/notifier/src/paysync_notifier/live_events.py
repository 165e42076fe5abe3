"""One live stream's events: what it missed (from its `Last-Event-ID`), then each change as it comes.

Each `payment.status` event's id is the client's position after it (`positions.py`), so the id
the client last saw is where any replica resumes it. When that position cannot be resumed (past
the retained window, or not an id of ours) the stream first sends `stream.resync` (refetch what
you show), with the id of the position it continues from: now.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import structlog
from opentelemetry.trace import SpanKind
from sse_starlette import ServerSentEvent

from paysync_core import tracing
from paysync_notifier import stream_metrics
from paysync_notifier.positions import Position, encode_position
from paysync_notifier.service import LiveStream, ResumeRefused, Scope, StreamEvent

log = structlog.get_logger()

#: The one event name that tells a client to refetch (docs/http-api.md).
RESYNC = "stream.resync"


async def live_events(
    stream: LiveStream, scope: Scope, last_event_id: str | None, check_every: float
) -> AsyncIterator[dict | ServerSentEvent]:
    """The stream of one client: a first comment, a resync if it must refetch, then its events."""
    await stream.ready.wait()  # the feed knows where the topic ends (readiness waits for it too)
    position, refused = _start(stream, last_event_id)
    # Subscribed before the replay, and no await between the two: nothing falls between them.
    subscriber = stream.subscribe(scope, position)
    backlog = stream.retained_after(position, scope)
    stream_metrics.CLIENTS.labels(scope.tenant).inc()
    try:
        # Opens the stream at once (headers and a first line) and sets the reconnect delay.
        yield ServerSentEvent(comment="paysync live status", retry=3000)
        if refused is not None:
            yield _resync(refused, position)
        for event in backlog:
            yield _sent(event, position)
        while not (subscriber.cut_off and subscriber.queue.empty()):
            try:
                event = await asyncio.wait_for(subscriber.queue.get(), check_every)
            except TimeoutError:
                continue
            if event.offset >= position.get(event.partition, 0):  # else sent from the backlog
                yield _sent(event, position)
        # It fell behind and was dropped from the fan-out: its last id resumes it, if still retained.
        yield _resync("too_slow", position)
    finally:
        stream.unsubscribe(subscriber)
        stream_metrics.CLIENTS.labels(scope.tenant).dec()


def _start(stream: LiveStream, last_event_id: str | None) -> tuple[Position, str | None]:
    """Where the client starts, and why it must refetch first (None: it need not)."""
    if not last_event_id:
        return stream.now(), None
    try:
        return stream.resume_point(last_event_id), None
    except ResumeRefused as refused:
        return stream.now(), refused.reason


def _sent(event: StreamEvent, position: Position) -> dict:
    position[event.partition] = event.offset + 1
    stream_metrics.delivered(event.tenant, event.changed_at)
    event_id = encode_position(position)
    if event.traceparent is not None:  # traced: the send to this client is a span of the change's trace
        attributes = {"paysync.tenant": event.tenant, "paysync.stream.event_id": event_id}
        with tracing.continued(event.traceparent, "payment.status send", SpanKind.PRODUCER, attributes):
            log.debug("stream.event_sent", tenant=event.tenant, event_id=event_id)
    return {"id": event_id, "event": "payment.status", "data": event.data}


def _resync(reason: str, position: Position) -> dict:
    stream_metrics.RESYNCS.labels(reason).inc()
    event_id = encode_position(position)
    return {
        "id": event_id,
        "event": RESYNC,
        "data": json.dumps({"reason": reason, "last_event_id": event_id}),
    }
