"""Kafka plumbing every service shares: topic provisioning, the durable producer and broker."""

from __future__ import annotations

import asyncio
import struct
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import structlog
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError
from aiokafka.partitioner import DefaultPartitioner
from aiokafka.structs import RecordMetadata

from paysync_core import topics, tracing
from paysync_core.topics import TopicSpec

if TYPE_CHECKING:
    from faststream.kafka import KafkaBroker

#: How aiokafka picks a record's partition (murmur2 of its key, as the Java client; at random without one).
_PARTITIONER = DefaultPartitioner()
_M, _MASK = 0x5BD1E995, 0xFFFFFFFF

log = structlog.get_logger()
T = TypeVar("T")

#: The pause after a first failed try of `until_broker_answers`, doubled after each, up to the longest.
BROKER_RETRY_FIRST_SECONDS, BROKER_RETRY_LONGEST_SECONDS = 0.5, 5.0


def murmur2(data: bytes) -> int:
    """Kafka's murmur2 of `data`, as aiokafka's (and the Java client's) `murmur2` gives it, in half its CPU.

    The same arithmetic over the key's 32-bit little-endian words, unpacked in one call rather than
    assembled byte by byte: `send_many` hashes every record's key (a replay's observations, each its own).
    """
    length = len(data)
    h = 0x9747B28C ^ length
    for word in struct.unpack_from(f"<{length >> 2}I", data):
        k = (word * _M) & _MASK
        h = ((h * _M) ^ ((k ^ (k >> 24)) * _M)) & _MASK
    tail, whole = length & 3, length & ~3
    if tail:
        if tail == 3:
            h ^= data[whole + 2] << 16
        if tail >= 2:
            h ^= data[whole + 1] << 8
        h = ((h ^ data[whole]) * _M) & _MASK
    h = ((h ^ (h >> 13)) * _M) & _MASK
    return h ^ (h >> 15)


def partition_of(key: bytes | None, partitions: list[int]) -> int:
    """The partition aiokafka's producer sends a record with `key` to, of the topic's sorted `partitions`."""
    if key is None:
        return _PARTITIONER(key, partitions, partitions)
    return partitions[(murmur2(key) & 0x7FFFFFFF) % len(partitions)]


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


#: What makes a publish durable, for every producer paysync has (FastStream's and `DurableProducer`):
#: acknowledged by every in-sync replica, written once per partition even when retried.
DURABLE_PRODUCER_OPTIONS: dict[str, Any] = {"acks": "all", "enable_idempotence": True}


def durable_broker(bootstrap: str, *, client_id: str, linger_ms: int = 1, **kwargs: Any) -> KafkaBroker:
    """A FastStream broker whose publishes return only once every in-sync replica has the record.

    With tracing on, its subscribers and publishers carry the trace context in record headers.
    """
    # Imported here: FastStream is a third of a second of CPU to import, which the processes that only
    # use `DurableProducer` or the admin client (`paysync` commands, the replay) would pay at every start.
    from faststream.kafka import KafkaBroker

    return KafkaBroker(
        bootstrap,
        client_id=client_id,
        allow_auto_create_topics=False,
        linger_ms=linger_ms,
        middlewares=tracing.broker_middlewares(),
        **DURABLE_PRODUCER_OPTIONS,
        **kwargs,
    )


async def until_broker_answers(attempt: Callable[[], Awaitable[T]], event: str) -> T:
    """`attempt()`'s result, tried again for as long as it fails with a Kafka error (the broker not up
    yet, restarting, out of reach): how a background loop starts its Kafka clients without dying of it.

    Each failure is a warning `event` with the error (aiokafka's, which names the broker's address and
    never a secret) and the pause before the next try: `BROKER_RETRY_FIRST_SECONDS`, doubled each time
    up to `BROKER_RETRY_LONGEST_SECONDS`.
    """
    pause = BROKER_RETRY_FIRST_SECONDS
    while True:
        try:
            return await attempt()
        except KafkaError as exc:
            log.warning(event, error=str(exc), retry_in_seconds=pause)
        await asyncio.sleep(pause)
        pause = min(pause * 2, BROKER_RETRY_LONGEST_SECONDS)


def drain_whole_nodes(producer: AIOKafkaProducer) -> None:
    """Once one of a broker's batches has lingered `linger_ms`, send that broker all its batches, as
    the Java client does (aiokafka sends only the batches that have lingered themselves).

    Why: aiokafka lingers batch by batch, so records spread over partitions (webhook-ingest's keys
    over the raw topic's 12) leave in as many produce requests as there are linger deadlines, often
    one record each; a broker's cost is mostly per request. A record still waits at most
    `linger_ms` (less, when it rides with an older one); placement, ordering and acknowledgements
    are aiokafka's own.
    """
    accumulator = producer._message_accumulator
    drain = accumulator.drain_by_nodes
    queues, leader_of = accumulator._batches, accumulator._cluster.leader_for_partition

    def drain_by_nodes(ignore_nodes: Any, muted_partitions: Any = frozenset()) -> Any:
        ready = {
            leader
            for tp, queue in queues.items()
            if queue
            and tp not in muted_partitions
            and (leader := leader_of(tp)) not in ignore_nodes
            and queue[0].remaining_linger() is None
        }
        if ready:
            for tp, queue in queues.items():
                if queue and leader_of(tp) in ready:
                    queue[0]._linger_time = 0  # lingered enough: its broker's request leaves now
        return drain(ignore_nodes, muted_partitions)

    accumulator.drain_by_nodes = drain_by_nodes


class DurableProducer:
    """The producer every service writes to Kafka with (acks=all, idempotent), bytes in, no framework.

    The hot paths (webhook-ingest's raw records, the reconciler's sweeps, the projector's relay) send
    pre-encoded bytes: FastStream's publish machinery would cost more per record than the rest of
    their work. `send` returns once the record is acknowledged; `submit` once it is handed over,
    with a future for the acknowledgement, so many records can be in flight at once.
    aiokafka wants its producer made inside the running event loop, hence `start()`.
    """

    def __init__(
        self,
        bootstrap: str,
        *,
        client_id: str,
        linger_ms: int = 2,
        partitioner: Callable[[bytes | None, list[int], list[int]], int] | None = None,
        max_batch_size: int = 16384,
    ) -> None:
        self._options: dict[str, Any] = {
            "bootstrap_servers": bootstrap,
            "client_id": client_id,
            "linger_ms": linger_ms,
            **DURABLE_PRODUCER_OPTIONS,
            "max_batch_size": max_batch_size,
        }
        if partitioner is not None:
            self._options["partitioner"] = partitioner
        self._producer: AIOKafkaProducer | None = None

    async def start(self) -> None:
        """Connect to the broker; after a failure (the broker not up yet) it may be called again."""
        if self._producer is None:
            self._producer = AIOKafkaProducer(**self._options)
            drain_whole_nodes(self._producer)
        await self._producer.start()

    async def stop(self) -> None:
        """Send what is pending, then disconnect."""
        if self._producer is not None:
            await self._producer.stop()

    async def send(
        self, topic: str, key: bytes | None, value: bytes, headers: tracing.Headers | None = None
    ) -> RecordMetadata:
        """Publish and return once every in-sync replica has the record."""
        if headers is None and tracing.enabled():
            with tracing.producing(topic, key) as headers:
                return await self._ready().send_and_wait(topic, value, key=key, headers=headers)
        return await self._ready().send_and_wait(topic, value, key=key, headers=headers)

    async def submit(
        self, topic: str, key: bytes | None, value: bytes, headers: tracing.Headers | None = None
    ) -> asyncio.Future[RecordMetadata]:
        """Hand the record over, in call order; the future resolves once every in-sync replica has it."""
        if headers is None:
            headers = tracing.current_headers()
        return await self._ready().send(topic, value, key=key, headers=headers)

    async def send_all(self, topic: str, records: Sequence[tuple[bytes | None, bytes]]) -> None:
        """Publish (key, value) records without waiting record by record; return once all are acknowledged."""
        acknowledgements = []
        for n, (key, value) in enumerate(records, 1):
            acknowledgements.append(await self.submit(topic, key, value))
            if n % 32 == 0:
                await asyncio.sleep(0)  # a big batch must not hold the event loop
        await asyncio.gather(*acknowledgements)

    def _ready(self) -> AIOKafkaProducer:
        if self._producer is None:
            raise RuntimeError("start() the producer first")
        return self._producer

    async def send_many(self, topic: str, records: Sequence[tuple[bytes | None, bytes]]) -> dict[int, int]:
        """Publish records to the partitions `send` would choose for their keys, in full batches (bulk
        loads, replays); return once every one is acknowledged. No future per record, unlike `send`.

        Returns, per partition written, the offset after the last record: a consumer group whose
        committed offset reached it has consumed them all (what a replay waits for).
        """
        partitions = sorted(await self._ready().partitions_for(topic))
        by_partition: dict[int, list[tuple[bytes | None, bytes]]] = defaultdict(list)
        for key, value in records:
            by_partition[partition_of(key, partitions)].append((key, value))
        ends = await asyncio.gather(*(self._send_batches(topic, p, rs) for p, rs in by_partition.items()))
        return dict(zip(by_partition, ends, strict=True))

    async def _send_batches(
        self, topic: str, partition: int, records: list[tuple[bytes | None, bytes]]
    ) -> int:
        """Send `records` to `partition` in full batches; the offset after the last once acknowledged."""
        producer = self._ready()
        acknowledged: list[tuple[asyncio.Future[RecordMetadata], int]] = []  # a batch's ack, its records
        batch = producer.create_batch()
        for key, value in records:
            if batch.append(key=key, value=value, timestamp=None) is None:  # full: send it, start the next
                count = batch.record_count()
                acknowledged.append((await producer.send_batch(batch, topic, partition=partition), count))
                batch = producer.create_batch()
                batch.append(key=key, value=value, timestamp=None)
        if count := batch.record_count():
            acknowledged.append((await producer.send_batch(batch, topic, partition=partition), count))
        sent = await asyncio.gather(*(ack for ack, _ in acknowledged))
        return max(meta.offset + count for meta, (_, count) in zip(sent, acknowledged, strict=True))
