"""The projector's consumer loop on aiokafka: fresh batches in, offsets committed after their transaction."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import chain
from typing import Generic, Protocol, TypeVar

import structlog
from aiokafka import AIOKafkaConsumer
from aiokafka.errors import ConsumerStoppedError, KafkaError
from aiokafka.structs import ConsumerRecord

from paysync_core.web import BROKER_STOP_SECONDS
from paysync_status_projector.offsets import OffsetCommits, SettleCommitsOnRevoke, first_offsets
from paysync_status_projector.settings import StatusProjectorSettings

log = structlog.get_logger()

#: What one record becomes once prepared (the projector: the record and its decoded observation).
T = TypeVar("T")

#: How long the loop pauses after the client reports a Kafka error, before it fetches again.
KAFKA_ERROR_PAUSE_SECONDS = 5.0


class BatchStages(Protocol[T]):
    """What the consumer does with a batch, in two steps: prepare each record, then apply them all."""

    async def prepare(self, records: Sequence[ConsumerRecord]) -> list[T]:
        """Each record made ready to apply, one item per record, reading nothing and changing nothing."""
        ...

    async def apply(self, prepared: list[T]) -> None:
        """Apply a prepared batch; raise when nothing of it may count as done (it is then redelivered)."""
        ...


@dataclass(slots=True)
class Batch(Generic[T]):
    """Records taken together, and what preparing them gave (None: not prepared, or it failed)."""

    records: list[ConsumerRecord]
    prepared: list[T] | None = None


class BatchConsumer(Generic[T]):
    """Takes batches of one topic for a consumer group, applies each, commits it only once applied.

    At least once: a batch's offsets are committed (in the background, in order) only after
    it was applied; if applying raised, each partition is rewound to the batch's first record,
    so the same records come again. Applying a batch twice changes nothing (the projection
    records what it processed), so redelivery after an error, a crash or a rebalance is harmless.

    With `pipeline` on, the next batch is taken and prepared (decoded) while the current one is
    applied, so that Python's share of the next batch runs while this process waits for
    PostgreSQL; at most one batch is ahead. Only preparing overlaps, never applying: a batch
    merges each payment's observations into its state as locked in the batch's transaction, and
    that state is what the batch before wrote (or an unpark, a drift repair, another replica),
    so merging the next batch before this one committed would merge into a state about to
    change. Decoding is a function of the record's bytes alone. Batches are applied one at a
    time, in the order taken, and committed in that order; if one fails, the batch ahead is
    set aside unapplied and both are rewound and delivered again, as one failed batch is.
    A rebalance settles the pending commit as it does without the pipeline (the batch ahead is
    then applied like a batch taken just before a rebalance: its offsets are committed only for
    the partitions still owned).

    Each batch is topped up with the broker's newest records: aiokafka fetches a partition
    again only once its buffered records are consumed, so the records a batch is given were
    fetched just after the previous batch was taken, and those that arrived while it was being
    applied wait for one more batch. Taking the buffered records sends that fetch; waiting up to
    `batch_top_up_ms` for its answer puts them in this batch instead. With the pipeline on, the
    batch ahead gets, once the current batch is applied, what has been fetched since it was
    taken. Order within a partition is kept (buffered records first).
    """

    def __init__(
        self, topic: str, bootstrap: str, settings: StatusProjectorSettings, stages: BatchStages[T]
    ) -> None:
        self._topic, self._bootstrap, self._settings, self._stages = topic, bootstrap, settings, stages
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
            if self._settings.pipeline:
                await self._run_overlapped(consumer)
            else:
                await self._run_serially(consumer)
        except ConsumerStoppedError:
            return
        finally:
            await self._stop()

    async def _run_serially(self, consumer: AIOKafkaConsumer) -> None:
        """Take a batch, prepare and apply it, take the next."""
        while True:
            records = await self._next_batch(consumer)
            if records and not await self._applied(Batch(records)):
                self._rewind(records)

    async def _run_overlapped(self, consumer: AIOKafkaConsumer) -> None:
        """Apply each batch while the next one is taken and prepared."""
        current: Batch[T] = Batch([])
        ahead: asyncio.Task[Batch[T]] | None = None
        try:
            while True:
                ahead = asyncio.create_task(self._take_prepared(consumer))
                applied = not current.records or await self._applied(current)
                # Awaited, never cancelled: records it took must be applied or rewound.
                taken, ahead = await ahead, None
                if applied:
                    current = await self._topped_up(consumer, taken)
                else:  # the batch ahead is set aside, and both are delivered again
                    self._rewind([*current.records, *taken.records])
                    current = Batch([])
        finally:
            if ahead is not None:  # stopping: what it took is not applied, so not committed either
                ahead.cancel()
                await asyncio.wait([ahead])

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

    async def _take_prepared(self, consumer: AIOKafkaConsumer) -> Batch[T]:
        """The next batch, prepared (if preparing fails, applying it prepares it again, and fails there)."""
        records = await self._next_batch(consumer)
        return Batch(records, await self._prepared_or_none(records))

    async def _topped_up(self, consumer: AIOKafkaConsumer, batch: Batch[T]) -> Batch[T]:
        """The batch taken ahead, with what was fetched while the batch before it was applied."""
        room = self._settings.max_batch - len(batch.records)
        if room <= 0 or self._settings.batch_top_up_ms <= 0 or batch.prepared is None:
            return batch
        try:
            fresh = await consumer.getmany(timeout_ms=0, max_records=room)
        except KafkaError:  # nothing taken: the next batch meets the error again, and pauses
            return batch
        records = list(chain.from_iterable(fresh.values()))
        prepared = await self._prepared_or_none(records) if records else []
        if prepared is None:
            return Batch([*batch.records, *records])
        return Batch([*batch.records, *records], [*batch.prepared, *prepared])

    async def _prepared_or_none(self, records: Sequence[ConsumerRecord]) -> list[T] | None:
        try:
            return await self._stages.prepare(records)
        except Exception:  # noqa: BLE001 - left for the apply step, which prepares again and says why
            return None

    async def _applied(self, batch: Batch[T]) -> bool:
        """Apply the batch and commit its offsets; False if it failed (nothing of it counts as done)."""
        try:
            prepared = batch.prepared
            if prepared is None:
                prepared = await self._stages.prepare(batch.records)
            await self._stages.apply(prepared)
        except Exception:  # any failure: nothing of the batch counts as done
            log.exception("projector.batch_failed", records=len(batch.records))
            return False
        self._started()[1].after(batch.records)
        return True

    def _rewind(self, records: list[ConsumerRecord]) -> None:
        """Seek each partition this member still owns back to the first of these records on it."""
        consumer, _ = self._started()
        owned = consumer.assignment()
        for partition, offset in first_offsets(records).items():
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
