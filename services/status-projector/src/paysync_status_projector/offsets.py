"""The projector's offsets: committed after each batch's transaction, in order, settled before a rebalance."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

import structlog
from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener
from aiokafka.structs import ConsumerRecord, TopicPartition

log = structlog.get_logger()


def next_offsets(records: Iterable[ConsumerRecord]) -> dict[TopicPartition, int]:
    """Per partition, the offset after the last of `records`: what committing them names."""
    offsets: dict[TopicPartition, int] = {}
    for record in records:
        partition = TopicPartition(record.topic, record.partition)
        offsets[partition] = max(offsets.get(partition, 0), record.offset + 1)
    return offsets


def first_offsets(records: Iterable[ConsumerRecord]) -> dict[TopicPartition, int]:
    """Per partition, the offset of the first of `records`: where a rewind to them seeks."""
    offsets: dict[TopicPartition, int] = {}
    for record in records:
        partition = TopicPartition(record.topic, record.partition)
        offsets[partition] = min(offsets.get(partition, record.offset), record.offset)
    return offsets


class OffsetCommits:
    """A batch's offsets committed in the background, in order, while the next batch is taken and applied.

    Each commit names the batch's own offsets (its last record + 1, per partition), never the
    consumer's position, so it covers only records whose transaction has committed, whatever was
    fetched or rewound since. One that fails (a rebalance took the partition, the process stopped)
    means the batch is delivered again, and applying it again changes nothing.
    """

    def __init__(self, consumer: AIOKafkaConsumer) -> None:
        self._consumer = consumer
        self._last: asyncio.Task[None] | None = None

    def after(self, records: Iterable[ConsumerRecord]) -> None:
        """Commit these applied records' offsets once the previous batch's are."""
        self._last = asyncio.create_task(self._commit(next_offsets(records), self._last))

    async def settle(self) -> None:
        """Return once every commit asked for so far has ended (committed, or given up)."""
        if self._last is not None:
            await asyncio.shield(self._last)  # a cancelled waiter must not cancel the commit

    async def _commit(self, offsets: dict[TopicPartition, int], previous: asyncio.Task[None] | None) -> None:
        if previous is not None:
            await previous  # never raises: a later commit must not be overtaken by an earlier one
        owned = self._consumer.assignment()
        # A partition a rebalance took is another member's now: it starts from the last commit
        # that landed, so the records after it are applied again (no harm), and nothing is sent.
        kept = {partition: offset for partition, offset in offsets.items() if partition in owned}
        if len(kept) < len(offsets):
            log.info("projector.offsets_of_revoked_partitions_dropped", partitions=len(offsets) - len(kept))
        if not kept:
            return
        try:
            await self._consumer.commit(kept)
        except Exception as exc:  # noqa: BLE001 - whatever failed, the batch is redelivered: no harm
            log.warning("projector.offsets_not_committed", error=str(exc), partitions=len(kept))


class SettleCommitsOnRevoke(ConsumerRebalanceListener):
    """Before partitions move, the commits asked for land (or fail quietly); assignments are logged."""

    def __init__(self, commits: OffsetCommits) -> None:
        self._commits = commits

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        """Let the pending commit finish while this member still owns the partitions it names."""
        await self._commits.settle()

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        """Log the member's new share of the topic (an empty one: more members than partitions)."""
        log.info("projector.partitions_assigned", partitions=sorted(tp.partition for tp in assigned))
