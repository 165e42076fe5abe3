"""The one producer, against the real broker: what it sends arrives, in order, under its key."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import replace

import pytest

from paysync_core import topics
from paysync_core.kafka import DurableProducer, partition_of, provision_topics
from paysync_dev.topic_reader import read_topic

pytestmark = pytest.mark.integration


async def test_a_batch_sent_at_once_arrives_whole_and_in_order(kafka_bootstrap: str) -> None:
    # A topic of its own: the records are no paysync messages, and other tests parse the real topics.
    topic = replace(topics.ALERTS, name=f"paysync.tests.producer.{uuid.uuid4().hex}")
    await provision_topics(kafka_bootstrap, specs=[topic])
    producer = DurableProducer(kafka_bootstrap, client_id="paysync-tests")
    await producer.start()
    values = [f"record {n}".encode() for n in range(100)]
    try:
        await producer.send_all(topic.name, [(b"one key", v) for v in values])
        acknowledged = await producer.submit(topic.name, b"one key", b"last")
        await producer.send(topic.name, b"one key", b"after the last")
        assert (await acknowledged).topic == topic.name
    finally:
        await producer.stop()

    records = await read_topic(kafka_bootstrap, topic.name)
    assert [r.value for r in records] == [*values, b"last", b"after the last"]


async def test_sending_before_start_is_an_error_that_says_so() -> None:
    producer = DurableProducer("127.0.0.1:1", client_id="paysync-tests")
    with pytest.raises(RuntimeError, match="start"):
        await producer.send(topics.ALERTS.name, None, b"x")


async def test_records_for_other_partitions_leave_with_a_batch_that_is_ready(kafka_bootstrap: str) -> None:
    # aiokafka lingers batch by batch: a record for another partition would wait out its own 10 s.
    # As the Java client does, once one batch is ready its broker gets them all: acknowledged at once.
    # (The third record's new batch lingers its 10 s before `stop` returns: the test's floor.)
    topic = replace(topics.ALERTS, name=f"paysync.tests.producer.{uuid.uuid4().hex}", partitions=6)
    await provision_topics(kafka_bootstrap, specs=[topic])
    partitions = list(range(topic.partitions))
    keys = {partition_of(f"key {n}".encode(), partitions): f"key {n}".encode() for n in range(200)}
    producer = DurableProducer(
        kafka_bootstrap, client_id="paysync-tests", linger_ms=10_000, max_batch_size=4096
    )
    await producer.start()
    try:
        lingering = [await producer.submit(topic.name, keys[p], b"small") for p in partitions[1:]]
        for _ in range(3):  # the third does not fit: partition 0's batch is full, so ready
            await producer.submit(topic.name, keys[0], bytes(1500))
        async with asyncio.timeout(5):  # half the linger
            acknowledged = await asyncio.gather(*lingering)
    finally:
        await producer.stop()

    assert sorted(meta.partition for meta in acknowledged) == partitions[1:]
