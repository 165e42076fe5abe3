"""The projector's subscriber: observations in, payments and domain rows updated."""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Awaitable, Callable
from itertools import chain
from typing import ClassVar, TypeVar

import structlog
from aiokafka import AIOKafkaConsumer
from aiokafka.partitioner import DefaultPartitioner, murmur2
from aiokafka.structs import ConsumerRecord, TopicPartition
from faststream import AckPolicy
from faststream.kafka import KafkaBroker, KafkaMessage
from faststream.kafka.subscriber.usecase import BatchSubscriber
from sqlalchemy.ext.asyncio import AsyncEngine

from paysync_core import topics
from paysync_core.contracts import PaymentObservation
from paysync_core.dead_letters import DeadLettered, is_outage, with_retries
from paysync_status_projector.domains import Domains
from paysync_status_projector.metrics import ALERTS, BATCH_SECONDS, BATCH_SIZE, OBSERVATIONS, STATUS_CHANGES
from paysync_status_projector.service import BatchResult, project
from paysync_status_projector.settings import StatusProjectorSettings

log = structlog.get_logger()
T = TypeVar("T")


@functools.lru_cache(maxsize=1 << 16)
def _key_hash(key: bytes) -> int:
    return murmur2(key) & 0x7FFFFFFF


def same_partition_as_java_clients(key: bytes | None, all_partitions: list[int], available: list[int]) -> int:
    """Kafka's default partitioner (murmur2 of the key), remembering keys: a payment's changes share one."""
    if key is None:
        return DefaultPartitioner()(key, all_partitions, available)
    return all_partitions[_key_hash(key) % len(all_partitions)]


class FreshBatchSubscriber(BatchSubscriber):
    """FastStream's batch subscriber, its batch topped up with what the broker holds when it is taken.

    aiokafka fetches a partition again only once its buffered records are consumed: the records a
    batch is given were fetched just after the previous batch was taken, and those that arrived
    while it was being applied wait at the broker for one more batch. Taking the buffered records
    sends that fetch; waiting up to `top_up_ms` for its answer puts them in this batch instead.
    Within a partition the order is kept (buffered records first); offsets and acks are unchanged.
    """

    __slots__ = ()
    #: Set per subscriber by `fresh_batches` (FastStream's subscribers have slots, no instance dict).
    top_up_ms: ClassVar[int] = 0

    async def get_msg(self, consumer: AIOKafkaConsumer) -> tuple[ConsumerRecord, ...]:
        """The buffered records, then those of the fetch their consumption sent (up to `max_records`)."""
        taken = await consumer.getmany(timeout_ms=self.batch_timeout_ms, max_records=self.max_records)
        # Empty: the next call waits again at once (FastStream's own sleeps batch_timeout_ms first).
        room = (self.max_records or 0) - sum(map(len, taken.values()))
        if taken and room > 0 and self.top_up_ms > 0:
            fresh = await consumer.getmany(timeout_ms=self.top_up_ms, max_records=room)
            for partition, records in fresh.items():
                taken.setdefault(partition, []).extend(records)
        return tuple(chain.from_iterable(taken.values()))


def fresh_batches(subscriber: BatchSubscriber, top_up_ms: int) -> BatchSubscriber:
    """Make a subscriber FastStream built take its batches as `FreshBatchSubscriber` does."""
    # FastStream picks its subscriber classes itself; this changes only how a batch is taken.
    subscriber.__class__ = type(
        "FreshBatchSubscriber", (FreshBatchSubscriber,), {"__slots__": (), "top_up_ms": top_up_ms}
    )
    return subscriber


class OffsetCommits:
    """A batch's offsets committed in the background, in order, while the next batch is taken and applied.

    Each commit names the batch's own offsets (its last record + 1, per partition), never the
    consumer's position, so it covers only records whose transaction has committed, whatever was
    fetched or rewound since. One that fails (a rebalance took the partition, the process stopped)
    means the batch is delivered again, and applying it again changes nothing.
    """

    def __init__(self) -> None:
        self._last: asyncio.Task[None] | None = None

    def after(self, message: KafkaMessage) -> None:
        """Commit this applied batch's offsets once the previous batch's are."""
        offsets: dict[TopicPartition, int] = {}
        for record in message.raw_message:
            partition = TopicPartition(record.topic, record.partition)
            offsets[partition] = max(offsets.get(partition, 0), record.offset + 1)
        self._last = asyncio.create_task(self._commit(message.consumer, offsets, self._last))

    @staticmethod
    async def _commit(
        consumer: AIOKafkaConsumer, offsets: dict[TopicPartition, int], previous: asyncio.Task[None] | None
    ) -> None:
        if previous is not None:
            await previous  # never raises: a later commit must not be overtaken by an earlier one
        try:
            await consumer.commit(offsets)
        except Exception as exc:  # noqa: BLE001 - whatever failed, the batch is redelivered: no harm
            log.warning("projector.offsets_not_committed", error=str(exc), partitions=len(offsets))


def register_projector(
    broker: KafkaBroker,
    engine: AsyncEngine,
    domains: Domains,
    settings: StatusProjectorSettings,
    on_committed: Callable[[], None],
) -> None:
    """Subscribe to observations; offsets are committed only after the batch's transaction is."""
    commits = OffsetCommits()
    batches = ObservationBatches(broker, engine, domains, settings.max_attempts)
    subscriber = fresh_batches(
        broker.subscriber(
            topics.PAYMENT_OBSERVATIONS.name,
            group_id=settings.group_id,
            group_instance_id=settings.group_instance_id,
            session_timeout_ms=settings.session_timeout_ms,
            heartbeat_interval_ms=settings.heartbeat_interval_ms,
            batch=True,
            max_records=settings.max_batch,
            batch_timeout_ms=settings.batch_timeout_ms,
            auto_offset_reset=settings.auto_offset_reset,
            ack_policy=AckPolicy.MANUAL,  # acknowledged by `commits`, or rewound on error, below
            decoder=_raw_bodies,
        ),
        settings.batch_top_up_ms,
    )

    @subscriber
    async def apply_observations(_: list[bytes], message: KafkaMessage) -> None:
        """Merge each observation into its payment's status and follow it in the domain rows."""
        try:
            result = await batches.apply(message)
            if result.status_changes or result.alerts:
                on_committed()
        except Exception:
            await message.nack()  # each partition rewound to the batch's first record: redelivered
            raise
        commits.after(message)


async def _raw_bodies(message: KafkaMessage) -> list[bytes]:
    # Each record is parsed (and dead-lettered if need be) below, once: not as JSON by FastStream first.
    return message.body  # type: ignore[return-value]


async def _decode(record: ConsumerRecord) -> PaymentObservation:
    return PaymentObservation.from_bytes(record.value)


class ObservationBatches:
    """Applies one batch of observation records: decoded, projected, culprits dead-lettered, counted."""

    def __init__(self, broker: KafkaBroker, engine: AsyncEngine, domains: Domains, max_attempts: int) -> None:
        self._broker, self._engine, self._domains = broker, engine, domains
        self._max_attempts = max_attempts

    async def apply(self, message: KafkaMessage) -> BatchResult:
        """Apply the batch's observations in one transaction (one by one if the database refuses one)."""
        decoded: list[tuple[ConsumerRecord, PaymentObservation]] = []
        for record in message.raw_message:
            try:
                decoded.append((record, await self._guarded(record, functools.partial(_decode, record))))
            except DeadLettered:
                OBSERVATIONS.labels("dead_lettered").inc()
        started = time.perf_counter()
        try:
            result = await project(self._engine, [obs for _, obs in decoded], self._domains)
        except Exception as exc:
            if is_outage(exc):
                raise  # nothing committed: the batch is redelivered
            # One observation the database refuses must not block its partition: apply them one
            # by one, so only the culprit is retried and dead-lettered.
            result = await self._one_by_one(decoded)
        _count(result, len(decoded), time.perf_counter() - started)
        return result

    async def _one_by_one(self, decoded: list[tuple[ConsumerRecord, PaymentObservation]]) -> BatchResult:
        result = BatchResult()
        for record, obs in decoded:
            try:
                result.add(
                    await self._guarded(
                        record, functools.partial(project, self._engine, [obs], self._domains)
                    )
                )
            except DeadLettered:
                OBSERVATIONS.labels("dead_lettered").inc()
        return result

    async def _guarded(self, record: ConsumerRecord, work: Callable[[], Awaitable[T]]) -> T:
        return await with_retries(
            record,
            work,
            send_dead_letter=self._send_dead_letter,
            service="status-projector",
            max_attempts=self._max_attempts,
        )

    async def _send_dead_letter(self, key: bytes | None, value: bytes) -> None:
        await self._broker.publish(value, topics.PAYMENT_OBSERVATIONS.dlq.name, key=key)


def _count(result: BatchResult, size: int, seconds: float) -> None:
    """Record a batch's outcome in the metrics."""
    BATCH_SECONDS.observe(seconds)
    BATCH_SIZE.observe(size)
    OBSERVATIONS.labels("applied").inc(result.applied)
    OBSERVATIONS.labels("duplicate").inc(result.duplicates)
    OBSERVATIONS.labels("parked").inc(result.parked)
    ALERTS.labels("mismatch").inc(result.alerts)
    for change in result.status_changes:
        STATUS_CHANGES.labels(change.new_status.value).inc()
