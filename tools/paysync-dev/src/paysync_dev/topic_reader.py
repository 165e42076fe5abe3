"""Read a whole topic from the beginning to its current end (what tests assert against), count what
topics hold, or start a consumer group at its end."""

from __future__ import annotations

import asyncio

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.structs import ConsumerRecord


async def read_topic(bootstrap: str, topic: str, *, timeout: float = 15.0) -> list[ConsumerRecord]:
    """Every record now in the topic (all partitions), without joining a consumer group."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None)
    await consumer.start()
    try:
        partitions_ids = await _partitions(consumer, topic, timeout)
        partitions = [TopicPartition(topic, p) for p in sorted(partitions_ids)]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        records: list[ConsumerRecord] = []
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while [tp for tp in partitions if await consumer.position(tp) < ends[tp]]:
            if loop.time() > deadline:
                raise TimeoutError(f"could not read {topic} to its end within {timeout}s")
            batch = await consumer.getmany(timeout_ms=200)
            for tp_records in batch.values():
                records += [r for r in tp_records if r.offset < ends[TopicPartition(r.topic, r.partition)]]
        return records
    finally:
        await consumer.stop()


async def records_held(bootstrap: str, topics: list[str], *, timeout: float = 15.0) -> int:
    """How many records the topics hold now (from each partition's first retained offset to its end)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None)
    await consumer.start()
    try:
        partitions = [
            TopicPartition(topic, p) for topic in topics for p in await _partitions(consumer, topic, timeout)
        ]
        ends, firsts = await consumer.end_offsets(partitions), await consumer.beginning_offsets(partitions)
        return sum(ends[tp] - firsts[tp] for tp in partitions)
    finally:
        await consumer.stop()


async def commit_group_at_end(bootstrap: str, group: str, topic: str, *, timeout: float = 15.0) -> None:
    """Start a new consumer group where the topic ends now, so it does not re-read other tests' records."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    await consumer.start()
    try:
        partitions = [TopicPartition(topic, p) for p in sorted(await _partitions(consumer, topic, timeout))]
        ends = await consumer.end_offsets(partitions)
        consumer.assign(partitions)
        await consumer.commit({tp: ends[tp] for tp in partitions})
    finally:
        await consumer.stop()


async def _partitions(consumer: AIOKafkaConsumer, topic: str, timeout: float) -> set[int]:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        found = consumer.partitions_for_topic(topic)
        if found:
            return found
        if loop.time() > deadline:
            raise TimeoutError(f"topic {topic} has no partitions (does it exist?)")
        await consumer._client.force_metadata_update()  # aiokafka has no public call for this
