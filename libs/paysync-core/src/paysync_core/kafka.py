"""Kafka plumbing every service shares: topic provisioning and a durable producer broker."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from faststream.kafka import KafkaBroker

from paysync_core import topics
from paysync_core.topics import TopicSpec


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


def durable_broker(bootstrap: str, *, client_id: str, linger_ms: int = 1, **kwargs: Any) -> KafkaBroker:
    """A FastStream broker whose publishes return only once every in-sync replica has the record."""
    return KafkaBroker(
        bootstrap,
        client_id=client_id,
        acks="all",
        enable_idempotence=True,
        allow_auto_create_topics=False,
        linger_ms=linger_ms,
        **kwargs,
    )


class DurableProducer:
    """A bare aiokafka producer (acks=all, idempotent) for hot paths where every microsecond counts.

    aiokafka wants its producer made inside the running event loop, hence start().
    """

    def __init__(self, bootstrap: str, *, client_id: str, linger_ms: int = 2) -> None:
        self._options = {
            "bootstrap_servers": bootstrap,
            "client_id": client_id,
            "acks": "all",
            "enable_idempotence": True,
            "linger_ms": linger_ms,
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
        if self._producer is None:
            raise RuntimeError("start() the producer first")
        return await self._producer.send_and_wait(topic, value, key=key)
