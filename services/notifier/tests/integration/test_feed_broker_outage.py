"""The live stream's feed outlives a broker that is away when it starts, or goes away later.

The broker is the test's own (it is stopped and started here); the feed is `StatusFeed.run`, the
notifier's background loop, feeding a `LiveStream` as in the service.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from paysync_core import kafka, topics
from paysync_core.kafka import DurableProducer
from paysync_dev.fixtures import broker_of_its_own
from paysync_dev.kafka import KafkaProcess
from paysync_dev.live_stream import publish_status_changes, status_change
from paysync_dev.logs import captured_logs
from paysync_dev.service_fixtures import wait_until
from paysync_notifier.service import LiveStream, Scope, Subscriber
from paysync_notifier.status_feed import StatusFeed

pytestmark = pytest.mark.integration

WAITING = "stream.feed_waiting_for_broker"


@pytest.fixture
def status_broker(tmp_path: Path) -> Iterator[KafkaProcess]:
    """A broker of this test's own with the status-change topic."""
    with broker_of_its_own(tmp_path / "kafka", [topics.PAYMENT_STATUS]) as broker:
        yield broker


async def reaches(bootstrap: str, subscriber: Subscriber, tenant: str) -> None:
    """Publish a status change of `tenant` and wait until the feed has handed it to `subscriber`."""
    change = status_change(tenant)
    producer = DurableProducer(bootstrap, client_id="paysync-tests")
    await producer.start()
    try:
        await publish_status_changes(producer, [change])
    finally:
        await producer.stop()
    seen: list[str] = []

    async def arrived() -> bool:
        while not subscriber.queue.empty():
            seen.append(subscriber.queue.get_nowait().data)
        return any(change.payment_id in data for data in seen)

    await wait_until(arrived, 60, f"the change of payment {change.payment_id} in the live stream")


async def test_the_feed_waits_for_a_broker_that_is_away_and_reads_on_after_it_goes_away_again(
    status_broker: KafkaProcess,
) -> None:
    await asyncio.to_thread(status_broker.stop)
    stream = LiveStream(per_partition=100, window_seconds=600)
    feed = StatusFeed(status_broker.bootstrap, stream, window_seconds=600, per_partition=100)
    with captured_logs(kafka) as logs:
        task = asyncio.create_task(feed.run())

        async def tried_twice() -> bool:
            if task.done():
                raise AssertionError("the feed ended while the broker was away") from task.exception()
            return sum(entry["event"] == WAITING for entry in logs) >= 2

        async def started() -> bool:
            return stream.ready.is_set()

        try:
            await wait_until(tried_twice, 30, "the feed trying the broker again")
            assert not stream.ready.is_set(), "not ready (the notifier's /readyz) while nothing is fed"

            await asyncio.to_thread(status_broker.start)
            await wait_until(started, 60, "the feed started once the broker answers")
            tenant = f"tenant-{uuid.uuid4().hex[:8]}"
            subscriber = stream.subscribe(Scope(tenant), stream.now())
            await reaches(status_broker.bootstrap, subscriber, tenant)

            # Gone once the feed reads, and back: aiokafka reconnects, the feed reads on from where it was.
            await asyncio.to_thread(status_broker.stop)
            await asyncio.to_thread(status_broker.start)
            await reaches(status_broker.bootstrap, subscriber, tenant)
            assert not task.done()
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
    warning = next(entry for entry in logs if entry["event"] == WAITING)
    assert warning["log_level"] == "warning"
    assert status_broker.bootstrap.split(":")[1] in warning["error"], "the error says which broker"
