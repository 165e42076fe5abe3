"""LiveStream's fan-out: per tenant, and never held up or cut short by one full queue."""

from __future__ import annotations

from paysync_dev.live_stream import status_change
from paysync_notifier.service import LiveStream


def drain(queue) -> list[int]:
    ids = []
    while not queue.empty():
        ids.append(queue.get_nowait().id)
    return ids


async def test_a_full_queue_cuts_off_only_its_subscriber_and_everyone_else_gets_every_event() -> None:
    stream = LiveStream(buffer=100, queue_size=2)
    slow, *others = (stream.subscribe("shop") for _ in range(5))
    published = []
    for _ in range(6):
        published.append(stream.publish(status_change("shop")).id)
        for subscriber in others:
            assert drain(subscriber.queue) == published[-1:]
    assert slow.cut_off and drain(slow.queue) == published[:2]
    assert not any(s.cut_off for s in others)
    stream.publish(status_change("shop"))  # the cut-off subscriber no longer receives
    assert slow.queue.empty()


async def test_a_subscriber_receives_only_its_tenants_events() -> None:
    stream = LiveStream(buffer=100)
    mine, theirs = stream.subscribe("shop"), stream.subscribe("other")
    event = stream.publish(status_change("shop"))
    assert drain(mine.queue) == [event.id] and theirs.queue.empty()
    assert [e.id for e in stream.since(0, "other")] == []


async def test_the_replay_buffer_keeps_the_last_events_of_every_tenant_up_to_its_size() -> None:
    stream = LiveStream(buffer=3)
    ids = [stream.publish(status_change(tenant)).id for tenant in ("shop", "other", "shop", "shop", "shop")]
    # Five published, three kept: the two oldest (one of each tenant) are gone.
    assert [e.id for e in stream.since(0, "shop")] == ids[2:]
    assert stream.since(0, "other") == []
    assert [e.id for e in stream.since(ids[3], "shop")] == ids[4:]
