"""The live stream: status changes fanned out to each tenant's connected front ends, resumable by position.

Events are kept per partition of `paysync.payment-status.v1` for a window (a count and an age),
so a client that names its position (`positions.py`) is served exactly what came after it,
whichever replica it reaches and however often the notifier restarted: each replica reads that
window back from Kafka when it starts.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections import deque
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from prometheus_client import Counter

from paysync_notifier.positions import Position, UnknownPosition, decode_position

CUT_OFF = Counter(
    "paysync_notifier_stream_cut_off_total", "Live-stream subscribers cut off because they fell behind"
)


@dataclass(frozen=True, slots=True)
class StreamEvent:
    """One status change as a stream sends it, and where it sits in the topic."""

    partition: int
    offset: int
    tenant: str
    domain: str | None
    entity_id: str | None
    changed_at: datetime
    #: Kafka's timestamp of the record (ms): what the retained window's age is measured by.
    timestamp_ms: int
    data: str
    #: The W3C trace context of the change (when traced): each send to a client continues it.
    traceparent: str | None = None
    #: The event's SSE lines after its `id:` (made once here, sent as is to every client of the tenant).
    frame: bytes = field(default=b"", compare=False, repr=False)

    def __post_init__(self) -> None:
        # A client's id line differs (its own position); the rest of the event is the same bytes for all.
        if not self.frame:
            frame = b"event: payment.status\r\ndata: %s\r\n\r\n" % self.data.encode()
            object.__setattr__(self, "frame", frame)


@dataclass(frozen=True, slots=True)
class Scope:
    """Which of a tenant's events a stream carries: all, or one domain's, or one entity's."""

    tenant: str
    domain: str | None = None
    entity_id: str | None = None

    def admits(self, event: StreamEvent) -> bool:
        """Whether the event belongs on a stream of this scope."""
        return (
            event.tenant == self.tenant
            and (self.domain is None or event.domain == self.domain)
            and (self.entity_id is None or event.entity_id == self.entity_id)
        )


@dataclass(eq=False)
class Subscriber:
    """One connected stream: its scope, its pending events, and whether it fell too far behind."""

    scope: Scope
    #: Events before this position are not queued: the stream sends them from the retained window.
    floor: Position
    queue: asyncio.Queue[StreamEvent]
    cut_off: bool = field(default=False)


class ResumeRefused(Exception):
    """A client's position cannot be resumed from; `reason` says why (sent in `stream.resync`)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class LiveStream:
    """Fan-out of status changes to the subscribers of their tenant, and a retained window to resume from.

    A subscriber whose queue is full is cut off rather than waited for: its stream sends what it
    has queued, then a resync event, and ends; the client reconnects with `Last-Event-ID`.
    Publishing never blocks and never skips another subscriber because of one that is slow.
    """

    def __init__(self, per_partition: int, window_seconds: float, queue_size: int = 1000) -> None:
        self._per_partition, self._window_ms = per_partition, int(window_seconds * 1000)
        self._queue_size = queue_size
        #: Per partition: (arrival number, event); arrival order is the order the live streams sent them.
        self._retained: dict[int, deque[tuple[int, StreamEvent]]] = {}
        self._arrivals = itertools.count()
        #: Per partition: every record from this offset up to `_head` is retained (or was not a change).
        self._retained_from: Position = {}
        #: Per partition: the offset of the next record the feed will read.
        self._head: Position = {}
        #: Per partition: where the topic ended when the feed started; new streams begin there or later.
        self._live_from: Position = {}
        self._subscribers: dict[str, set[Subscriber]] = {}
        self.ready = asyncio.Event()

    def start_at(self, starts: Mapping[int, int], ends: Mapping[int, int]) -> None:
        """The feed reads each partition from `starts` (the window's start); the topic ended at `ends`."""
        self._retained_from, self._head = dict(starts), dict(starts)
        self._live_from = dict(ends)
        self._retained = {p: deque() for p in starts}
        self.ready.set()

    def now(self) -> Position:
        """The position of a client that starts now: after every record already in the topic."""
        return {p: max(self._head.get(p, 0), end) for p, end in self._live_from.items()}

    def resume_point(self, last_event_id: str) -> Position:
        """The position a `Last-Event-ID` names, if what follows it is all still retained."""
        try:
            position = decode_position(last_event_id)
        except UnknownPosition:
            raise ResumeRefused("unknown_position") from None
        if any(position.get(p, 0) < start for p, start in self._retained_from.items()):
            raise ResumeRefused("resume_window_passed")
        return position

    def publish(self, event: StreamEvent) -> None:
        """Retain a change and send it to the subscribers whose scope and position take it."""
        self._retain(event)
        for subscriber in list(self._subscribers.get(event.tenant, ())):
            if event.offset < subscriber.floor.get(event.partition, 0) or not subscriber.scope.admits(event):
                continue
            try:
                subscriber.queue.put_nowait(event)
            except asyncio.QueueFull:
                self._cut_off(subscriber)

    def skip(self, partition: int, offset: int) -> None:
        """A record that is no status change (unreadable): the feed moved past it."""
        self._head[partition] = offset + 1

    def subscribe(self, scope: Scope, floor: Position) -> Subscriber:
        """A subscriber that receives the scope's events at or after `floor`, from now on."""
        subscriber = Subscriber(scope, dict(floor), asyncio.Queue(maxsize=self._queue_size))
        self._subscribers.setdefault(scope.tenant, set()).add(subscriber)
        return subscriber

    def unsubscribe(self, subscriber: Subscriber) -> None:
        """Stop sending to a subscriber."""
        subscribers = self._subscribers.get(subscriber.scope.tenant)
        if subscribers is not None:
            subscribers.discard(subscriber)
            if not subscribers:
                del self._subscribers[subscriber.scope.tenant]

    def retained_after(self, position: Position, scope: Scope) -> Iterator[StreamEvent]:
        """Retained events at or after `position` in the scope, in the order they arrived."""
        per_partition = [
            [kept for kept in events if kept[1].offset >= position.get(p, 0) and scope.admits(kept[1])]
            for p, events in self._retained.items()
        ]
        # Lists, not generators: the deques may change while the stream sends (each send awaits).
        return iter([event for _, event in heapq.merge(*per_partition, key=lambda kept: kept[0])])

    def _retain(self, event: StreamEvent) -> None:
        kept = self._retained.setdefault(event.partition, deque())
        kept.append((next(self._arrivals), event))
        self._head[event.partition] = event.offset + 1
        oldest_kept = event.timestamp_ms - self._window_ms
        while kept and (len(kept) > self._per_partition or kept[0][1].timestamp_ms < oldest_kept):
            _, dropped = kept.popleft()
            self._retained_from[event.partition] = dropped.offset + 1

    def _cut_off(self, subscriber: Subscriber) -> None:
        subscriber.cut_off = True
        self.unsubscribe(subscriber)
        CUT_OFF.inc()
