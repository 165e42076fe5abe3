"""Kafka plumbing every service shares: topic provisioning and a durable producer broker."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.partitioner import DefaultPartitioner
from faststream.kafka import KafkaBroker

from paysync_core import topics
from paysync_core.topics import TopicSpec

#: How aiokafka picks a keyed record's partition (murmur2, as the Java client): `send_many` does the same.
_PARTITIONER = DefaultPartitioner()


@dataclass(frozen=True, slots=True)
class ProvisionReport:
    """What provisioning found and did."""

    created: tuple[str, ...]
    existing: tuple[str, ...]


async def provision_topics(
    bootstrap: str, *, replication_factor: int = 1, specs: Iterable[TopicSpec] = topics.ALL
) -> ProvisionReport:
    """Create the topics that do not exist yet; existing ones are left as they are."""
    specs = list(specs)
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, client_id="paysync-provisioner")
    await admin.start()
    try:
        present = set(await admin.list_topics())
        missing = [s for s in specs if s.name not in present]
        if missing:
            await admin.create_topics(
                [
                    NewTopic(
                        name=s.name,
                        num_partitions=s.partitions,
                        replication_factor=replication_factor,
                        topic_configs=dict(s.configs),
                    )
                    for s in missing
                ]
            )
        return ProvisionReport(
            created=tuple(s.name for s in missing),
            existing=tuple(s.name for s in specs if s.name in present),
        )
    finally:
        await admin.close()


def durable_broker(bootstrap: str, *, client_id: str, **kwargs: object) -> KafkaBroker:
    """A FastStream broker whose publishes return only once every in-sync replica has the record."""
    return KafkaBroker(
        bootstrap,
        client_id=client_id,
        acks="all",
        enable_idempotence=True,
        allow_auto_create_topics=False,
        linger_ms=kwargs.pop("linger_ms", 1),
        **kwargs,
    )


class DurableProducer:
    """A bare aiokafka producer (acks=all, idempotent) for hot paths where every microsecond counts.

    aiokafka wants its producer made inside the running event loop, hence start().
    """

    def __init__(
        self, bootstrap: str, *, client_id: str, linger_ms: int = 2, max_batch_size: int = 16384
    ) -> None:
        self._options = {
            "bootstrap_servers": bootstrap,
            "client_id": client_id,
            "acks": "all",
            "enable_idempotence": True,
            "linger_ms": linger_ms,
            "max_batch_size": max_batch_size,
        }
        self._producer: AIOKafkaProducer | None = None

    async def start(self) -> None:
        """Connect to the broker."""
        self._producer = AIOKafkaProducer(**self._options)
        await self._producer.start()

    async def stop(self) -> None:
        """Send what is pending, then disconnect."""
        if self._producer is not None:
            await self._producer.stop()

    async def send(self, topic: str, key: bytes | None, value: bytes) -> object:
        """Publish and return once every in-sync replica has the record."""
        assert self._producer is not None, "start() the producer first"
        return await self._producer.send_and_wait(topic, value, key=key)

    async def send_many(self, topic: str, records: Sequence[tuple[bytes | None, bytes]]) -> None:
        """Publish records to the partitions `send` would choose for their keys, in full batches (bulk
        loads, replays); return once every one is acknowledged. No future per record, unlike `send`."""
        assert self._producer is not None, "start() the producer first"
        partitions = sorted(await self._producer.partitions_for(topic))
        by_partition: dict[int, list[tuple[bytes | None, bytes]]] = defaultdict(list)
        for key, value in records:
            by_partition[_PARTITIONER(key, partitions, partitions)].append((key, value))
        await asyncio.gather(*(self._send_batches(topic, p, rs) for p, rs in by_partition.items()))

    async def _send_batches(
        self, topic: str, partition: int, records: list[tuple[bytes | None, bytes]]
    ) -> None:
        assert self._producer is not None
        acknowledged = []
        batch = self._producer.create_batch()
        for key, value in records:
            if batch.append(key=key, value=value, timestamp=None) is None:  # full: send it, start the next
                acknowledged.append(await self._producer.send_batch(batch, topic, partition=partition))
                batch = self._producer.create_batch()
                batch.append(key=key, value=value, timestamp=None)
        if batch.record_count():
            acknowledged.append(await self._producer.send_batch(batch, topic, partition=partition))
        await asyncio.gather(*acknowledged)
