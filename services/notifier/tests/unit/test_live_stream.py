"""LiveStream's fan-out and retained window: per tenant and scope, resumable by position, never held up."""

from __future__ import annotations

import itertools
import random

import pytest

from paysync_dev.live_stream import status_change
from paysync_notifier.live_events import live_events
from paysync_notifier.positions import EventIds, UnknownPosition, decode_position, encode_position
from paysync_notifier.service import LiveStream, ResumeRefused, Scope, StreamEvent

_offsets = itertools.count()


def event(tenant: str, partition: int = 0, timestamp_ms: int = 0, **change: object) -> StreamEvent:
    """A status change of `tenant` at the next offset of `partition`."""
    c = status_change(tenant, **change)
    return StreamEvent(
        partition,
        next(_offsets),
        c.tenant,
        c.domain,
        c.entity_id,
        c.changed_at,
        timestamp_ms,
        c.model_dump_json(),
    )


def started(per_partition: int = 100, window_seconds: float = 600, queue_size: int = 1000) -> LiveStream:
    stream = LiveStream(per_partition, window_seconds, queue_size)
    stream.start_at({0: 0, 1: 0}, {0: 0, 1: 0})
    return stream


def drain(queue) -> list[int]:
    offsets = []
    while not queue.empty():
        offsets.append(queue.get_nowait().offset)
    return offsets


def test_an_event_id_names_one_offset_per_partition_and_nothing_else_is_one() -> None:
    assert decode_position(encode_position({0: 17, 2: 4})) == {0: 17, 1: 0, 2: 4}
    for bad in ("", "abc", "1.-2", "1..2", "²"):
        with pytest.raises(UnknownPosition):
            decode_position(bad)


def test_an_event_id_kept_current_is_the_position_encoded() -> None:
    rng = random.Random(14)
    for position in ({}, {0: 5}, {3: 7, 11: 2}):
        ids, moved = EventIds(position), dict(position)
        for _ in range(200):  # partitions past the id's end too: it grows as the position does
            partition, offset = rng.randrange(20), rng.randrange(10**9)
            moved[partition] = offset
            assert ids.after(partition, offset) == encode_position(moved)


async def test_events_waiting_together_go_out_in_one_write_each_with_its_own_id() -> None:
    stream = started()
    sent = live_events(stream, Scope("shop"), None, check_every=5)
    assert (await anext(sent)).startswith(b": paysync live status")
    events = [event("shop", partition=p) for p in (1, 0, 1)]
    for e in events:  # one poll of the feed: published before the stream runs again
        stream.publish(e)
    write = (await anext(sent)).decode()
    ids = [line.removeprefix("id: ") for line in write.split("\r\n") if line.startswith("id: ")]
    assert ids == [
        encode_position({0: 0, 1: events[0].offset + 1}),
        encode_position({0: events[1].offset + 1, 1: events[0].offset + 1}),
        encode_position({0: events[1].offset + 1, 1: events[2].offset + 1}),
    ]
    assert write.count("event: payment.status") == 3 and events[2].data in write
    await sent.aclose()


async def test_a_full_queue_cuts_off_only_its_subscriber_and_everyone_else_gets_every_event() -> None:
    stream = started(queue_size=2)
    slow, *others = (stream.subscribe(Scope("shop"), stream.now()) for _ in range(5))
    published = []
    for _ in range(6):
        e = event("shop")
        stream.publish(e)
        published.append(e.offset)
        for subscriber in others:
            assert drain(subscriber.queue) == published[-1:]
    assert slow.cut_off and drain(slow.queue) == published[:2]
    assert not any(s.cut_off for s in others)


async def test_a_subscriber_receives_only_its_tenants_and_its_scopes_events() -> None:
    stream = started()
    mine, theirs = (
        stream.subscribe(Scope("shop"), stream.now()),
        stream.subscribe(Scope("other"), stream.now()),
    )
    one_entity = stream.subscribe(Scope("shop", "jobs", "job-1"), stream.now())
    plain, of_entity = event("shop"), event("shop", entity_id="job-1")
    stream.publish(plain)
    stream.publish(of_entity)
    assert drain(mine.queue) == [plain.offset, of_entity.offset] and theirs.queue.empty()
    assert drain(one_entity.queue) == [of_entity.offset]


async def test_resuming_serves_the_retained_events_after_the_position_in_arrival_order() -> None:
    stream = started()
    events = [event("shop", partition=p) for p in (1, 0, 1, 0)]
    for e in events:
        stream.publish(e)
    after_two = encode_position({0: events[1].offset + 1, 1: events[0].offset + 1})
    resumed = stream.retained_after(stream.resume_point(after_two), Scope("shop"))
    assert [e.offset for e in resumed] == [e.offset for e in events[2:]]


async def test_a_position_older_than_the_retained_window_is_refused() -> None:
    stream = started(per_partition=2)
    for _ in range(3):
        stream.publish(event("shop"))
    with pytest.raises(ResumeRefused) as refused:
        stream.resume_point(encode_position({0: 0, 1: 0}))
    assert refused.value.reason == "resume_window_passed"
    with pytest.raises(ResumeRefused) as refused:
        stream.resume_point("not-an-id")
    assert refused.value.reason == "unknown_position"


async def test_events_older_than_the_window_are_no_longer_retained() -> None:
    stream = started(window_seconds=1)
    old, new = event("shop", timestamp_ms=0), event("shop", timestamp_ms=5000)
    stream.publish(old)
    stream.publish(new)
    assert [e.offset for e in stream.retained_after({}, Scope("shop"))] == [new.offset]
