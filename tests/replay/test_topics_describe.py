"""`paysync topics describe`: what an operator checks before and after a replay."""

from __future__ import annotations

import uuid

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.structs import OffsetAndMetadata

from paysync_core import topics
from paysync_dev.service_fixtures import publish

RAW = topics.WEBHOOKS_RAW.name


async def test_partitions_retention_end_offsets_and_a_groups_lag_are_shown(kafka_topics, cli):
    for n in range(3):
        await publish(kafka_topics, RAW, b"describe-test", f"not a webhook {n}".encode())
    [before] = cli("topics", "describe", "--topic", RAW, "--json")
    partition = next(int(p) for p, end in before["end_offsets"].items() if end >= 3)
    end = before["end_offsets"][str(partition)]

    group = f"describe-{uuid.uuid4().hex[:8]}"  # a consumer that stopped 3 records before the end
    consumer = AIOKafkaConsumer(bootstrap_servers=kafka_topics, group_id=group, enable_auto_commit=False)
    await consumer.start()
    try:
        consumer.assign([TopicPartition(RAW, partition)])
        await consumer.commit({TopicPartition(RAW, partition): OffsetAndMetadata(end - 3, "")})
    finally:
        await consumer.stop()

    [after] = cli("topics", "describe", "--topic", RAW, "--json")
    assert after["partitions"] == topics.WEBHOOKS_RAW.partitions == len(after["end_offsets"])
    assert after["retention_ms"] == int(topics.WEBHOOKS_RAW.configs["retention.ms"])
    assert after["records"] == sum(after["end_offsets"].values()) >= 3
    assert {"group": group, "lag": 3, "partitions": 1} in after["groups"]


def test_a_topic_that_does_not_exist_is_refused(paysync):
    done = paysync("topics", "describe", "--topic", "paysync.nope.v1")
    assert done.returncode == 2 and "no such topic: paysync.nope.v1" in done.stderr
