"""The projector's subscriber: observations in, payments and domain rows updated."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable

from aiokafka.partitioner import DefaultPartitioner, murmur2
from aiokafka.structs import ConsumerRecord
from faststream import AckPolicy
from faststream.kafka import KafkaBroker, KafkaMessage
from sqlalchemy.ext.asyncio import AsyncEngine

from paysync_core import topics
from paysync_core.contracts import PaymentObservation
from paysync_core.dead_letters import DeadLettered, is_outage, with_retries
from paysync_status_projector.domains import Domains
from paysync_status_projector.metrics import ALERTS, BATCH_SECONDS, BATCH_SIZE, OBSERVATIONS, STATUS_CHANGES
from paysync_status_projector.service import BatchResult, project
from paysync_status_projector.settings import StatusProjectorSettings


@functools.lru_cache(maxsize=1 << 16)
def _key_hash(key: bytes) -> int:
    return murmur2(key) & 0x7FFFFFFF


def same_partition_as_java_clients(key: bytes | None, all_partitions: list[int], available: list[int]) -> int:
    """Kafka's default partitioner (murmur2 of the key), remembering keys: a payment's changes share one."""
    if key is None:
        return DefaultPartitioner()(key, all_partitions, available)
    return all_partitions[_key_hash(key) % len(all_partitions)]


def register_projector(
    broker: KafkaBroker,
    engine: AsyncEngine,
    domains: Domains,
    settings: StatusProjectorSettings,
    on_committed: Callable[[], None],
) -> None:
    """Subscribe to observations; offsets are committed only after the batch's transaction is."""

    async def send_dead_letter(key: bytes | None, value: bytes) -> None:
        await broker.publish(value, topics.PAYMENT_OBSERVATIONS.dlq.name, key=key)

    async def guarded(record: ConsumerRecord, work: Callable) -> object:  # noqa: ANN401
        return await with_retries(
            record,
            work,
            send_dead_letter=send_dead_letter,
            service="status-projector",
            max_attempts=settings.max_attempts,
        )

    async def decode(record: ConsumerRecord) -> PaymentObservation:
        return PaymentObservation.from_bytes(record.value)

    async def raw_bodies(message: KafkaMessage) -> list[bytes]:
        # Each record is parsed (and dead-lettered if need be) below, once: not as JSON by FastStream first.
        return message.body  # type: ignore[return-value]

    @broker.subscriber(
        topics.PAYMENT_OBSERVATIONS.name,
        group_id=settings.group_id,
        group_instance_id=settings.group_instance_id,
        session_timeout_ms=settings.session_timeout_ms,
        heartbeat_interval_ms=settings.heartbeat_interval_ms,
        batch=True,
        max_records=settings.max_batch,
        batch_timeout_ms=settings.batch_timeout_ms,
        auto_offset_reset=settings.auto_offset_reset,
        ack_policy=AckPolicy.NACK_ON_ERROR,
        decoder=raw_bodies,
    )
    async def apply_observations(_: list[bytes], message: KafkaMessage) -> None:
        """Merge each observation into its payment's status and follow it in the domain rows."""
        decoded: list[tuple[ConsumerRecord, PaymentObservation]] = []
        for record in message.raw_message:
            try:
                decoded.append((record, await guarded(record, lambda r=record: decode(r))))
            except DeadLettered:
                OBSERVATIONS.labels("dead_lettered").inc()
        started = time.perf_counter()
        try:
            result = await project(engine, [obs for _, obs in decoded], domains)
        except Exception as exc:
            if is_outage(exc):
                raise  # nothing committed: the batch is redelivered
            # One observation the database refuses must not block its partition: apply them one
            # by one, so only the culprit is retried and dead-lettered.
            result = BatchResult()
            for record, obs in decoded:
                try:
                    result.add(await guarded(record, lambda o=obs: project(engine, [o], domains)))
                except DeadLettered:
                    OBSERVATIONS.labels("dead_lettered").inc()
        BATCH_SECONDS.observe(time.perf_counter() - started)
        BATCH_SIZE.observe(len(decoded))
        OBSERVATIONS.labels("applied").inc(result.applied)
        OBSERVATIONS.labels("duplicate").inc(result.duplicates)
        OBSERVATIONS.labels("parked").inc(result.parked)
        ALERTS.labels("mismatch").inc(result.alerts)
        for change in result.status_changes:
            STATUS_CHANGES.labels(change.new_status.value).inc()
        if result.status_changes or result.alerts:
            on_committed()
