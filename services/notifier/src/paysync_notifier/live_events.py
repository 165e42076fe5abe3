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
from paysync_notifier.positions import EventIds, Position, encode_position
from paysync_notifier.service import LiveStream, ResumeRefused, Scope, StreamEvent, Subscriber

log = structlog.get_logger()

#: The one event name that tells a client to refetch (docs/http-api.md).
RESYNC = "stream.resync"


#: Its first bytes: they open the stream at once (headers and a first line) and set the reconnect delay.
_OPENING = ServerSentEvent(comment="paysync live status", retry=3000).encode()

#: At most this many events go out in one write: a client far behind still gets them in bounded pieces.
_BATCH = 256


async def live_events(
    stream: LiveStream, scope: Scope, last_event_id: str | None, check_every: float
) -> AsyncIterator[bytes]:
    """The stream of one client: a first comment, a resync if it must refetch, then its events.

    It yields SSE bytes, each piece every event that was waiting (one write, not one per event):
    the feed publishes a poll's records at once, so a client usually has several to send.
    """
    await stream.ready.wait()  # the feed knows where the topic ends (readiness waits for it too)
    position, refused = _start(stream, last_event_id)
    # Subscribed before the replay, and no await between the two: nothing falls between them.
    subscriber = stream.subscribe(scope, position)
    backlog = list(stream.retained_after(position, scope))
    ids = EventIds(position)
    stream_metrics.CLIENTS.labels(scope.tenant).inc()
    try:
        yield _OPENING
        if refused is not None:
            yield _resync(refused, position)
        for start in range(0, len(backlog), _BATCH):
            yield _frames(backlog[start : start + _BATCH], position, ids)
        while not (subscriber.cut_off and subscriber.queue.empty()):
            # Skipped: those at or before the position were sent from the backlog.
            events = [
                e for e in await _waiting(subscriber, check_every) if e.offset >= position.get(e.partition, 0)
            ]
            if events:
                yield _frames(events, position, ids)
        # It fell behind and was dropped from the fan-out: its last id resumes it, if still retained.
        yield _resync("too_slow", position)
    finally:
        stream.unsubscribe(subscriber)
        stream_metrics.CLIENTS.labels(scope.tenant).dec()


async def _waiting(subscriber: Subscriber, check_every: float) -> list[StreamEvent]:
    """The events queued for the subscriber (waiting at most `check_every` for one); at most `_BATCH`."""
    queue = subscriber.queue
    if queue.empty():
        try:
            async with asyncio.timeout(check_every):  # wakes a cut-off subscriber whose queue is empty
                first = await queue.get()
        except TimeoutError:
            return []
        events = [first]
    else:
        events = []
    while len(events) < _BATCH and not queue.empty():
        events.append(queue.get_nowait())
    return events


def _start(stream: LiveStream, last_event_id: str | None) -> tuple[Position, str | None]:
    """Where the client starts, and why it must refetch first (None: it need not)."""
    if not last_event_id:
        return stream.now(), None
    try:
        return stream.resume_point(last_event_id), None
    except ResumeRefused as refused:
        return stream.now(), refused.reason


def _frames(events: list[StreamEvent], position: Position, ids: EventIds) -> bytes:
    """The SSE bytes of events sent in a row: each its shared frame after the id of the client's position."""
    lines = []
    for event in events:
        position[event.partition] = event.offset + 1
        event_id = ids.after(event.partition, event.offset + 1)
        if event.traceparent is not None:
            _traced_send(event, event_id)
        lines.append(b"id: %s\r\n%s" % (event_id.encode(), event.frame))
    stream_metrics.delivered(events)
    return b"".join(lines)


def _traced_send(event: StreamEvent, event_id: str) -> None:
    """Traced: the send to this client is a span of the change's trace."""
    attributes = {"paysync.tenant": event.tenant, "paysync.stream.event_id": event_id}
    with tracing.continued(event.traceparent, "payment.status send", SpanKind.PRODUCER, attributes):
        log.debug("stream.event_sent", tenant=event.tenant, event_id=event_id)


def _resync(reason: str, position: Position) -> bytes:
    stream_metrics.RESYNCS.labels(reason).inc()
    event_id = encode_position(position)
    data = json.dumps({"reason": reason, "last_event_id": event_id})
    return ServerSentEvent(data, id=event_id, event=RESYNC).encode()
