"""The steps a replay reads records in (`paysync_cli.replay_source.read_ranges`), from a real broker.

A real run's first step is small and each next one twice as large, up to `PAYSYNC_REPLAY_BATCH_RECORDS`:
the status-projector has its first observations to apply once that many are read, not a whole step's.
"""

from __future__ import annotations

import uuid

import pytest
from aiokafka import AIOKafkaProducer

from paysync_cli.replay_source import OffsetRange, consumer, partitions_of, read_ranges
from paysync_core.contracts import RawWebhook
from paysync_core.kafka import provision_topics
from paysync_core.topics import TopicSpec

pytestmark = pytest.mark.integration

RECORDS = 19


@pytest.fixture(scope="module")
async def topic(kafka_bootstrap: str) -> str:
    """A topic of this module's with RECORDS records in its one partition, values "0" to "18"."""
    name = f"paysync.test.replay-steps.{uuid.uuid4().hex[:8]}"
    await provision_topics(kafka_bootstrap, specs=[TopicSpec(name, 1, RawWebhook, key=lambda _: b"")])
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
    await producer.start()
    try:
        for n in range(RECORDS):
            await producer.send_and_wait(name, str(n).encode(), partition=0)
    finally:
        await producer.stop()
    return name


async def _steps(bootstrap: str, topic: str, batch: int, first: int | None) -> list[list[int]]:
    kafka = consumer(bootstrap)
    await kafka.start()
    try:
        await partitions_of(kafka, topic)
        ranges = [OffsetRange(0, 0, RECORDS)]
        steps = read_ranges(kafka, topic, ranges, batch, first=first)
        return [[int(r.value) for r in step] async for step in steps]
    finally:
        await kafka.stop()


async def test_steps_are_the_batch_size_without_a_first_step(kafka_bootstrap: str, topic: str) -> None:
    steps = await _steps(kafka_bootstrap, topic, batch=8, first=None)
    assert [len(s) for s in steps] == [8, 8, 3]
    assert [n for s in steps for n in s] == list(range(RECORDS))


async def test_steps_double_from_the_first_up_to_the_batch_size(kafka_bootstrap: str, topic: str) -> None:
    steps = await _steps(kafka_bootstrap, topic, batch=8, first=2)
    assert [len(s) for s in steps] == [2, 4, 8, 5]
    assert [n for s in steps for n in s] == list(range(RECORDS))


async def test_a_first_step_larger_than_the_batch_size_is_the_batch_size(
    kafka_bootstrap: str, topic: str
) -> None:
    steps = await _steps(kafka_bootstrap, topic, batch=8, first=50)
    assert [len(s) for s in steps] == [8, 8, 3]
