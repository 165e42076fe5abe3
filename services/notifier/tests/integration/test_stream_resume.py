"""Durable event ids: `Last-Event-ID` resumes exactly after a restart and through any replica.

Each notifier here is its own process reading the real broker; a restart is a SIGKILL.
"""

from __future__ import annotations

import asyncio
import secrets
import uuid
from collections.abc import Awaitable, Callable

import httpx
import pytest

from paysync_core.kafka import DurableProducer
from paysync_dev.live_stream import SseListener, publish_status_changes, status_change
from paysync_dev.service_fixtures import unique, wait_until

from .conftest import Notifier

pytestmark = pytest.mark.integration

StartNotifier = Callable[..., Awaitable[Notifier]]


def resumed_at(client: httpx.AsyncClient, notifier: Notifier, tenant: str, last_id: str) -> SseListener:
    """A stream of `tenant` at `notifier`, resuming after the event `last_id`."""
    return SseListener(
        client, notifier.stream_url(tenant), notifier.auth() | {"Last-Event-ID": last_id}
    ).start()


async def events_of(listener: SseListener, count: int) -> list[dict]:
    """Wait until the stream has `count` events, and give them."""

    async def arrived() -> bool:
        return len(listener.events) >= count

    await wait_until(arrived, 60, f"{count} events on the stream")
    return listener.events


async def test_last_event_id_resumes_exactly_after_a_restart_and_through_another_replica(
    start_notifier: StartNotifier, producer: DurableProducer
) -> None:
    token, tenant = secrets.token_urlsafe(32), unique("tenant")
    first = await start_notifier(token)
    seen = [status_change(tenant) for _ in range(3)]
    async with httpx.AsyncClient(timeout=httpx.Timeout(5, read=None)) as client:
        listener = SseListener(client, first.stream_url(tenant), first.auth()).start()
        await listener.opened.wait()
        await publish_status_changes(producer, seen)
        last_id = (await events_of(listener, 3))[-1]["id"]
        await listener.stop()

        first.service.process.kill()  # a crash, while changes keep coming
        missed = [status_change(tenant) for _ in range(4)]
        await publish_status_changes(producer, missed)
        other = await start_notifier(token)  # a replica that started after all of them
        first.service.process.start()
        await asyncio.to_thread(first.service.process.wait_ready)

        streams = [resumed_at(client, replica, tenant, last_id) for replica in (first, other)]
        for stream in streams:
            await events_of(stream, len(missed))
        marker = status_change(tenant)  # after it, nothing else can be on its way
        await publish_status_changes(producer, [marker])
        for stream in streams:
            await wait_until(
                lambda s=stream: _has(s, marker.payment_id), 60, "the marker on the resumed stream"
            )
            await stream.stop()
    expected = {c.payment_id for c in missed} | {marker.payment_id}
    for stream in streams:
        received = [e["data"]["payment_id"] for e in stream.events]
        assert sorted(received) == sorted(expected), "each missed change once, nothing seen before"
    # An id is a position in the topic: after the same changes, every replica names the same one
    # (replicas may interleave partitions differently, so the ids in between may differ).
    assert streams[0].events[-1]["id"] == streams[1].events[-1]["id"]


async def _has(listener: SseListener, payment_id: str) -> bool:
    return payment_id in listener.payment_ids()


async def test_a_position_past_the_retained_window_gets_a_resync_then_the_live_changes(
    start_notifier: StartNotifier, producer: DurableProducer
) -> None:
    notifier = await start_notifier(secrets.token_urlsafe(32), resume_events_per_partition=2)
    tenant, payment_id, ref = unique("tenant"), str(uuid.uuid4()), f"cs_test_{uuid.uuid4().hex}"

    def change(sequence: int):  # one payment: one key, one partition
        return status_change(tenant, payment_id=payment_id, provider_ref=ref, sequence=sequence)

    async with httpx.AsyncClient(timeout=httpx.Timeout(5, read=None)) as client:
        listener = SseListener(client, notifier.stream_url(tenant), notifier.auth()).start()
        await listener.opened.wait()
        await publish_status_changes(producer, [change(1)])
        last_id = (await events_of(listener, 1))[0]["id"]  # where a client that went away resumes
        for sequence in (2, 3, 4):  # three more on that partition: the first is no longer kept
            await publish_status_changes(producer, [change(sequence)])
        # Resume only once the notifier has all three (it keeps 2 per partition): a condition, not a time.
        await events_of(listener, 4)
        await listener.stop()

        resumed = resumed_at(client, notifier, tenant, last_id)
        [resync] = await events_of(resumed, 1)
        live = status_change(tenant)
        await publish_status_changes(producer, [live])
        await wait_until(lambda: _has(resumed, live.payment_id), 60, "a live change after the resync")
        await resumed.stop()
    assert resync["event"] == "stream.resync"
    assert resync["data"]["reason"] == "resume_window_passed" and resync["id"]
    assert [e["data"].get("payment_id") for e in resumed.events[1:]] == [live.payment_id]


async def test_an_idle_stream_gets_heartbeats_at_the_configured_interval(
    start_notifier: StartNotifier,
) -> None:
    notifier = await start_notifier(secrets.token_urlsafe(32), heartbeat_seconds=0.2)
    async with (
        httpx.AsyncClient(timeout=httpx.Timeout(5, read=None)) as client,
        client.stream("GET", notifier.stream_url(unique("tenant")), headers=notifier.auth()) as response,
    ):
        assert response.status_code == 200
        # Generous next to the interval; with the default (15 s) none would come within it.
        async with asyncio.timeout(10):
            async for line in response.aiter_lines():
                if line.startswith(": ping"):
                    break
