"""The projector's consumer loop on aiokafka: fresh batches in, offsets committed after their transaction."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from itertools import chain

import structlog
from aiokafka import AIOKafkaConsumer
from aiokafka.errors import ConsumerStoppedError, KafkaError
from aiokafka.structs import ConsumerRecord

from paysync_core.web import BROKER_STOP_SECONDS
from paysync_status_projector.offsets import OffsetCommits, SettleCommitsOnRevoke, first_offsets
from paysync_status_projector.settings import StatusProjectorSettings

log = structlog.get_logger()

#: Applies one batch; it raises when nothing of it may count as done (the batch is then redelivered).
ApplyBatch = Callable[[Sequence[ConsumerRecord]], Awaitable[None]]

#: How long the loop pauses after the client reports a Kafka error, before it fetches again.
KAFKA_ERROR_PAUSE_SECONDS = 5.0


class BatchConsumer:
    """Takes batches of one topic for a consumer group, applies each, commits it only once applied.

    At least once: a batch's offsets are committed (in the background, in order) only after
    `apply` returned; if it raised, each partition is rewound to the batch's first record, so
    the same records come again. Applying a batch twice changes nothing (the projection records
    what it processed), so redelivery after an error, a crash or a rebalance is harmless.

    Each batch is topped up with the broker's newest records: aiokafka fetches a partition
    again only once its buffered records are consumed, so the records a batch is given were
    fetched just after the previous batch was taken, and those that arrived while it was being
    applied wait for one more batch. Taking the buffered records sends that fetch; waiting up to
    `batch_top_up_ms` for its answer puts them in this batch instead. Order within a partition
    is kept (buffered records first).
    """

    def __init__(
        self, topic: str, bootstrap: str, settings: StatusProjectorSettings, apply: ApplyBatch
    ) -> None:
        self._topic, self._bootstrap, self._settings, self._apply = topic, bootstrap, settings, apply
        self._consumer: AIOKafkaConsumer | None = None
        self._commits: OffsetCommits | None = None

    async def start(self) -> None:
        """Connect and join the group (raises when the broker cannot be reached)."""
        consumer = self._new_consumer()
        commits = OffsetCommits(consumer)
        consumer.subscribe([self._topic], listener=SettleCommitsOnRevoke(commits))
        await consumer.start()
        self._consumer, self._commits = consumer, commits

    async def run(self) -> None:
        """Take and apply batches until cancelled; then settle the commits and leave the group."""
        consumer, _ = self._started()
        try:
            while True:
                batch = await self._next_batch(consumer)
                if batch:
                    await self._apply_or_rewind(batch)
        except ConsumerStoppedError:
            return
        finally:
            await self._stop()

    def _started(self) -> tuple[AIOKafkaConsumer, OffsetCommits]:
        if self._consumer is None or self._commits is None:
            raise RuntimeError("start() the consumer first")
        return self._consumer, self._commits

    def _new_consumer(self) -> AIOKafkaConsumer:
        s = self._settings
        return AIOKafkaConsumer(
            bootstrap_servers=self._bootstrap,
            client_id="paysync-status-projector",
            group_id=s.group_id,
            group_instance_id=s.group_instance_id,
            session_timeout_ms=s.session_timeout_ms,
            heartbeat_interval_ms=s.heartbeat_interval_ms,
            auto_offset_reset=s.auto_offset_reset,
            enable_auto_commit=False,  # committed by `OffsetCommits`, after each batch's transaction
        )

    async def _next_batch(self, consumer: AIOKafkaConsumer) -> list[ConsumerRecord]:
        """The next batch, or nothing (no records within `batch_timeout_ms`, or a Kafka error)."""
        try:
            return await self._take(consumer)
        except KafkaError as exc:
            log.error("projector.fetch_failed", error=str(exc))
            await asyncio.sleep(KAFKA_ERROR_PAUSE_SECONDS)
            return []

    async def _take(self, consumer: AIOKafkaConsumer) -> list[ConsumerRecord]:
        """The buffered records, then those of the fetch their consumption sent (up to `max_batch`)."""
        limit, top_up_ms = self._settings.max_batch, self._settings.batch_top_up_ms
        taken = await consumer.getmany(timeout_ms=self._settings.batch_timeout_ms, max_records=limit)
        room = limit - sum(map(len, taken.values()))
        if taken and room > 0 and top_up_ms > 0:
            fresh = await consumer.getmany(timeout_ms=top_up_ms, max_records=room)
            for partition, records in fresh.items():
                taken.setdefault(partition, []).extend(records)
        return list(chain.from_iterable(taken.values()))

    async def _apply_or_rewind(self, batch: list[ConsumerRecord]) -> None:
        """Apply the batch and commit it, or rewind its partitions so that it comes again."""
        try:
            await self._apply(batch)
        except Exception:  # any failure: nothing of the batch counts as done
            log.exception("projector.batch_failed", records=len(batch))
            self._rewind(batch)
            return
        self._started()[1].after(batch)

    def _rewind(self, batch: list[ConsumerRecord]) -> None:
        """Seek each partition this member still owns back to the batch's first record on it."""
        consumer, _ = self._started()
        owned = consumer.assignment()
        for partition, offset in first_offsets(batch).items():
            if partition in owned:  # a revoked one restarts from its last commit, wherever it went
                consumer.seek(partition, offset)

    async def _stop(self) -> None:
        """Settle the pending commit and leave the group, within the service's shutdown bound."""
        consumer, self._consumer = self._consumer, None
        if consumer is None:
            return
        try:
            async with asyncio.timeout(BROKER_STOP_SECONDS):
                if self._commits is not None:
                    await self._commits.settle()
                await consumer.stop()
        except TimeoutError:  # aiokafka can hang in stop() mid-rebalance; what was applied is committed
            log.error("projector.consumer_stop_timed_out", seconds=BROKER_STOP_SECONDS)
