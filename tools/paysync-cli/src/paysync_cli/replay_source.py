"""What a replay reads: ranges of a topic's partitions, read without a consumer group, as observations."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.structs import ConsumerRecord
from pydantic import ValidationError

from paysync_core import topics
from paysync_core.contracts import ObservationSource, PaymentObservation, Provider, RawWebhook
from paysync_core.errors import PaysyncError
from paysync_core.normalize import normalize_raw


class ReplaySource(StrEnum):
    """The topic a replay reads."""

    RAW = "raw"  # paysync.webhooks.raw.v1, re-normalized with today's adapters
    OBSERVATIONS = "observations"  # paysync.payment-observations.v1, as they were published

    @property
    def topic(self) -> str:
        """The topic's name."""
        return topics.WEBHOOKS_RAW.name if self is ReplaySource.RAW else topics.PAYMENT_OBSERVATIONS.name


@dataclass(frozen=True, slots=True)
class OffsetRange:
    """Offsets [start, end) of one partition."""

    partition: int
    start: int
    end: int

    @property
    def size(self) -> int:
        """How many offsets the range spans (records, unless some were deleted)."""
        return max(0, self.end - self.start)


@dataclass(frozen=True, slots=True)
class Filters:
    """Which records a replay keeps; None or empty keeps every value."""

    tenant: str | None = None
    gateway: str | None = None
    event_types: frozenset[str] = frozenset()

    def keeps_origin(self, tenant: str, gateway: str) -> bool:
        """Whether records of this tenant and gateway are replayed."""
        return (self.tenant is None or tenant == self.tenant) and (
            self.gateway is None or gateway == self.gateway
        )

    def keeps_event(self, event_type: str | None) -> bool:
        """Whether records of this gateway event type are replayed."""
        return not self.event_types or event_type in self.event_types


@dataclass(slots=True)
class Derived:
    """What one batch of records stands for, after the filters."""

    observations: list[PaymentObservation] = field(default_factory=list)
    filtered_out: int = 0
    unreadable: int = 0  # not a record of the topic's contract, or a body no adapter can read
    phones_unhashed: int = 0  # M-Pesa callbacks with a payer's number, replayed with no phone hash key


def consumer(bootstrap: str) -> AIOKafkaConsumer:
    """A consumer with no group: it commits nothing and takes no partition from a live consumer."""
    return AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False)


async def partitions_of(kafka: AIOKafkaConsumer, topic: str, timeout: float = 15.0) -> list[int]:
    """The topic's partition ids (metadata is fetched until the topic shows up, or `timeout`)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not (found := kafka.partitions_for_topic(topic)):
        if loop.time() > deadline:
            raise TimeoutError(f"topic {topic} has no partitions (is it provisioned?)")
        await kafka._client.force_metadata_update()  # aiokafka has no public call for this
    return sorted(found)


async def time_ranges(
    kafka: AIOKafkaConsumer, topic: str, since: datetime | None, until: datetime | None
) -> list[OffsetRange]:
    """Each partition's offsets of records written from `since` (inclusive) to `until` (exclusive)."""
    parts = [TopicPartition(topic, p) for p in await partitions_of(kafka, topic)]
    ends = await kafka.end_offsets(parts)
    starts = await _offsets_at(kafka, parts, since, await kafka.beginning_offsets(parts), ends)
    stops = await _offsets_at(kafka, parts, until, ends, ends)
    return [OffsetRange(tp.partition, starts[tp], stops[tp]) for tp in parts]


async def explicit_ranges(
    kafka: AIOKafkaConsumer, topic: str, wanted: list[tuple[int, int, int | None]]
) -> list[OffsetRange]:
    """Ranges given as (partition, first offset, last offset inclusive or None for the end)."""
    known = await partitions_of(kafka, topic)
    unknown = sorted({p for p, _, _ in wanted} - set(known))
    if unknown:
        raise ValueError(f"{topic} has no partition {unknown} (it has 0..{max(known)})")
    parts = [TopicPartition(topic, p) for p, _, _ in wanted]
    firsts, ends = await kafka.beginning_offsets(parts), await kafka.end_offsets(parts)
    # Offsets already deleted by retention are skipped, not read as "start from the end".
    return [
        OffsetRange(p, max(a, firsts[tp]), min(ends[tp], b + 1 if b is not None else ends[tp]))
        for tp, (p, a, b) in zip(parts, wanted, strict=True)
    ]


async def _offsets_at(
    kafka: AIOKafkaConsumer,
    parts: list[TopicPartition],
    at: datetime | None,
    default: dict[TopicPartition, int],
    ends: dict[TopicPartition, int],
) -> dict[TopicPartition, int]:
    """The first offset of each partition written at or after `at` (the end if none), or `default`."""
    if at is None:
        return dict(default)
    found = await kafka.offsets_for_times({tp: int(at.timestamp() * 1000) for tp in parts})
    return {tp: found[tp].offset if found.get(tp) else ends[tp] for tp in parts}


async def read_ranges(
    kafka: AIOKafkaConsumer, topic: str, ranges: list[OffsetRange], batch: int, *, first: int | None = None
) -> AsyncIterator[list[ConsumerRecord]]:
    """The records of every range, in batches of up to `batch`, read from assigned partitions.

    With `first`, the first batch has up to `first` records and each next one twice as many, up to `batch`:
    a real run's first step is published (and the status-projector has work) after that many are read.
    """
    size = batch if first is None else max(1, min(first, batch))
    todo = {TopicPartition(topic, r.partition): r for r in ranges if r.size}
    if not todo:
        return
    kafka.assign(list(todo))
    for tp, r in todo.items():
        kafka.seek(tp, r.start)
    pending: list[ConsumerRecord] = []
    while todo:
        fetched = await kafka.getmany(*todo, timeout_ms=500, max_records=size)
        for tp, records in fetched.items():
            pending += [rec for rec in records if rec.offset < todo[tp].end]
        for tp in [tp for tp, r in todo.items() if await kafka.position(tp) >= r.end]:
            del todo[tp]
        kafka.pause(*[tp for tp in kafka.assignment() if tp not in todo])
        while len(pending) >= size or (pending and not todo):
            yield pending[:size]
            pending = pending[size:]
            size = min(size * 2, batch)


def derive(
    records: list[ConsumerRecord], source: ReplaySource, filters: Filters, phone_key: str = ""
) -> Derived:
    """The replayed observations (`source` "replay") the records stand for, with today's adapters.

    `phone_key` is `PAYSYNC_PHONE_HASH_KEY`, as the normalizer has it: an M-Pesa callback's payer number
    becomes the observation's `phone_hash`, so the payment can be found by phone (never the number).
    """
    derived = Derived()
    by_origin = filters.tenant is not None or filters.gateway is not None
    for record in records:
        if by_origin and not _key_keeps(record.key, filters):
            derived.filtered_out += 1  # other tenants' or gateways' records are never decoded
            continue
        try:
            if source is ReplaySource.RAW:
                kept = _from_raw(record, filters, phone_key)
            else:
                kept = _from_observation(record, filters)
        except (ValidationError, PaysyncError, ValueError):
            derived.unreadable += 1
            continue
        if kept is None:
            derived.filtered_out += 1
            continue
        derived.observations += kept
        if not phone_key:
            derived.phones_unhashed += _payers_unhashed(kept)
    return derived


def _payers_unhashed(kept: Sequence[PaymentObservation]) -> int:
    """M-Pesa callbacks that named their payer (masked in the evidence) but carry no phone hash."""
    if not kept or kept[0].provider is not Provider.MPESA:  # one record's observations: one gateway's
        return 0
    return sum(1 for o in kept if o.evidence.phone_masked is not None and o.phone_hash is None)


def _key_keeps(key: bytes | None, filters: Filters) -> bool:
    """Whether a record's key (`<tenant>:<provider>[:<ref>]`, both topics) passes the origin filters.

    A key of another shape (not written by paysync) keeps the record: its decoded body decides.
    """
    parts = key.split(b":", 2) if key else []
    if len(parts) < 2:
        return True
    return filters.keeps_origin(parts[0].decode(errors="replace"), parts[1].decode(errors="replace"))


def _from_raw(
    record: ConsumerRecord, filters: Filters, phone_key: str
) -> Sequence[PaymentObservation] | None:
    raw = RawWebhook.from_bytes(record.value)
    if not filters.keeps_origin(raw.tenant, raw.provider.value):
        return None  # decided before parsing: other tenants' records cost no adapter call
    parsed = normalize_raw(
        raw,
        partition=record.partition,
        offset=record.offset,
        source=ObservationSource.REPLAY,
        phone_key=phone_key,
    )
    return parsed.observations if filters.keeps_event(parsed.event_type) else None


def _from_observation(record: ConsumerRecord, filters: Filters) -> Sequence[PaymentObservation] | None:
    obs = PaymentObservation.from_bytes(record.value)
    if not (
        filters.keeps_origin(obs.tenant, obs.provider.value) and filters.keeps_event(obs.evidence.event_type)
    ):
        return None
    return [obs.model_copy(update={"source": ObservationSource.REPLAY})]
