"""KafkaProcess: a private broker on free ports keeps acknowledged records across a restart."""

import time
import uuid
from pathlib import Path

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from paysync_dev.kafka import KafkaProcess, port_open, version


async def _create_topic(bootstrap: str, topic: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])
    finally:
        await admin.close()


async def _produce(bootstrap: str, topic: str, value: bytes) -> int:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True)
    await producer.start()
    try:
        return (await producer.send_and_wait(topic, value)).offset
    finally:
        await producer.stop()


async def _read_all(bootstrap: str, topic: str) -> list[bytes]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        partition = TopicPartition(topic, 0)
        consumer.assign([partition])
        await consumer.seek_to_beginning(partition)
        end = (await consumer.end_offsets([partition]))[partition]
        values: list[bytes] = []
        while len(values) < end:
            batch = await consumer.getmany(partition, timeout_ms=5000)
            values.extend(record.value for record in batch.get(partition, []))
        return values
    finally:
        await consumer.stop()


async def test_records_survive_stop_and_restart(tmp_path: Path) -> None:
    broker = KafkaProcess.on_free_ports(tmp_path / "broker")
    topic = f"restart-{uuid.uuid4().hex[:8]}"
    began = time.monotonic()
    bootstrap = broker.start()
    cold = time.monotonic() - began
    try:
        assert broker.started_here
        assert broker.running_version() == version()
        assert broker.start() == bootstrap  # idempotent: already answering
        await _create_topic(bootstrap, topic)
        assert await _produce(bootstrap, topic, b"before-restart") == 0

        assert broker.stop() is True
        assert broker.pid() is None
        assert not port_open(broker.host, broker.port)

        began = time.monotonic()
        assert broker.start() == bootstrap
        warm = time.monotonic() - began
        assert await _produce(bootstrap, topic, b"after-restart") == 1
        assert await _read_all(bootstrap, topic) == [b"before-restart", b"after-restart"]
        print(f"Apache Kafka {broker.running_version()}: cold start {cold:.1f} s, restart {warm:.1f} s")
    finally:
        broker.stop()
    assert broker.stop() is False
