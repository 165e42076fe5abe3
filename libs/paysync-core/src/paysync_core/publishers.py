"""FastStream publishers of one topic each: declared with the topic's contract, keyed as the topic keys it."""

from __future__ import annotations

from typing import Any, Generic

from faststream.kafka import KafkaBroker, KafkaRouter

from paysync_core.topics import M, TopicSpec


class TopicPublisher(Generic[M]):
    """Publishes a topic's contract messages; its declaration puts the contract in the AsyncAPI document."""

    def __init__(self, owner: KafkaRouter | KafkaBroker, spec: TopicSpec[M], description: str = "") -> None:
        self.spec = spec
        self._publisher = owner.publisher(
            spec.name, schema=spec.message, description=description or f"Keyed by {spec.key_description}"
        )

    async def publish(self, message: M) -> Any:
        """Publish one message under its key; returns once the broker acknowledged it."""
        return await self._publisher.publish(message.to_bytes(), key=self.spec.key_for(message))

    async def forward(self, key: bytes | None, value: bytes) -> Any:
        """Publish a record already serialized, under the key it came with (a dead letter's source key)."""
        return await self._publisher.publish(value, key=key)
