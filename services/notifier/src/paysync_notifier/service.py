"""The live stream: status changes fanned out to every connected front end."""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass

from paysync_core.contracts import PaymentStatusChanged


@dataclass(frozen=True, slots=True)
class StreamEvent:
    """One event as a stream sends it; `id` is what `Last-Event-ID` resumes from."""

    id: int
    tenant: str
    data: str


class LiveStream:
    """Fan-out of status changes to subscribers, with a bounded buffer to resume from."""

    def __init__(self, buffer: int) -> None:
        self._recent: deque[StreamEvent] = deque(maxlen=buffer)
        self._next_id = 1
        self._subscribers: set[asyncio.Queue[StreamEvent]] = set()

    def publish(self, change: PaymentStatusChanged) -> StreamEvent:
        """Send a status change to every subscriber and keep it for late resumers."""
        event = StreamEvent(self._next_id, change.tenant, change.model_dump_json(exclude_none=True))
        self._next_id += 1
        self._recent.append(event)
        for queue in self._subscribers:
            queue.put_nowait(event)
        return event

    def subscribe(self) -> asyncio.Queue[StreamEvent]:
        """A queue that receives every event from now on."""
        queue: asyncio.Queue[StreamEvent] = asyncio.Queue(maxsize=10_000)
        self._subscribers.add(queue)
        return queue

    def unsubscribe(self, queue: asyncio.Queue[StreamEvent]) -> None:
        """Stop sending to a queue."""
        self._subscribers.discard(queue)

    def since(self, last_id: int, tenant: str) -> list[StreamEvent]:
        """Buffered events after `last_id` for one tenant."""
        return [e for e in self._recent if e.id > last_id and e.tenant == tenant]
