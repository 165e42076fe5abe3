"""The live stream: status changes fanned out to each tenant's connected front ends."""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass, field

from prometheus_client import Counter

from paysync_core.contracts import PaymentStatusChanged

CUT_OFF = Counter(
    "paysync_notifier_stream_cut_off_total", "Live-stream subscribers cut off because they fell behind"
)


@dataclass(frozen=True, slots=True)
class StreamEvent:
    """One event as a stream sends it; `id` is what `Last-Event-ID` resumes from."""

    id: int
    tenant: str
    data: str


@dataclass(eq=False)
class Subscriber:
    """One connected stream: its pending events, and whether it fell too far behind to keep."""

    tenant: str
    queue: asyncio.Queue[StreamEvent]
    cut_off: bool = field(default=False)


class LiveStream:
    """Fan-out of status changes to the subscribers of their tenant, with a bounded buffer to resume from.

    A subscriber whose queue is full is cut off rather than waited for: its stream sends what it
    has queued, then a resync event, and ends; the client reconnects with `Last-Event-ID`.
    Publishing never blocks and never skips another subscriber because of one that is slow.
    """

    def __init__(self, buffer: int, queue_size: int = 1000) -> None:
        self._recent: deque[StreamEvent] = deque(maxlen=buffer)
        self._next_id = 1
        self._queue_size = queue_size
        self._subscribers: dict[str, set[Subscriber]] = {}

    def publish(self, change: PaymentStatusChanged) -> StreamEvent:
        """Send a status change to its tenant's subscribers and keep it for late resumers."""
        event = StreamEvent(self._next_id, change.tenant, change.model_dump_json(exclude_none=True))
        self._next_id += 1
        self._recent.append(event)
        for subscriber in list(self._subscribers.get(event.tenant, ())):
            try:
                subscriber.queue.put_nowait(event)
            except asyncio.QueueFull:
                self._cut_off(subscriber)
        return event

    def subscribe(self, tenant: str) -> Subscriber:
        """A subscriber that receives the tenant's events from now on."""
        subscriber = Subscriber(tenant, asyncio.Queue(maxsize=self._queue_size))
        self._subscribers.setdefault(tenant, set()).add(subscriber)
        return subscriber

    def unsubscribe(self, subscriber: Subscriber) -> None:
        """Stop sending to a subscriber."""
        subscribers = self._subscribers.get(subscriber.tenant)
        if subscribers is not None:
            subscribers.discard(subscriber)
            if not subscribers:
                del self._subscribers[subscriber.tenant]

    def since(self, last_id: int, tenant: str) -> list[StreamEvent]:
        """Buffered events after `last_id` for one tenant."""
        return [e for e in self._recent if e.id > last_id and e.tenant == tenant]

    def _cut_off(self, subscriber: Subscriber) -> None:
        subscriber.cut_off = True
        self.unsubscribe(subscriber)
        CUT_OFF.inc()
