"""The dead-letter view: reading the dead-letter topics, choosing letters, redriving them after a fix.

What `paysync dlq list|show|redrive` and `/admin/v1/dead-letters` share. Kafka records cannot be
deleted, so a redriven letter leaves the view by its row in the redrive ledger
(`dead_letter_redrives`, `db/redrives.py`); a redriven record that fails again is a new letter, with
its new error, and is in the view again.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncEngine

from paysync_core import topics
from paysync_core.contracts import DeadLetter
from paysync_core.db import redrives
from paysync_core.db.redrives import Position
from paysync_core.kafka import DurableProducer

#: How long one fetch from the broker may wait before the reader looks at its positions again.
_POLL_MS = 500


@dataclass(frozen=True, slots=True)
class Letter:
    """One record of a `<topic>.dlq` topic, where it sits, and what it says (None: unreadable)."""

    dlq_topic: str
    partition: int
    offset: int
    written_at: datetime
    letter: DeadLetter | None

    @property
    def id(self) -> str:
        """`<dlq topic>:<partition>:<offset>`, how commands name one letter."""
        return f"{self.dlq_topic}:{self.partition}:{self.offset}"

    @property
    def position(self) -> tuple[str, int, int]:
        """The letter's own position: the redrive ledger's key."""
        return self.dlq_topic, self.partition, self.offset

    @property
    def reason(self) -> str:
        """The error type that stopped the record (`unreadable` for a letter that is not a DeadLetter)."""
        return self.letter.error_type if self.letter else "unreadable"

    @property
    def tenant(self) -> str | None:
        """The tenant named by the original record (observations, raw webhooks, requests carry one)."""
        try:
            original = json.loads(self.letter.value) if self.letter else None
        except ValueError:
            return None
        return original.get("tenant") if isinstance(original, dict) else None

    def summary(self) -> dict[str, Any]:
        """What `dlq list` shows of it."""
        d = self.letter
        return {
            "id": self.id,
            "dlq_topic": self.dlq_topic,
            "partition": self.partition,
            "offset": self.offset,
            "reason": self.reason,
            "error": d.error if d else None,
            "source_topic": d.source_topic if d else None,
            "source_partition": d.partition if d else None,
            "source_offset": d.offset if d else None,
            "attempts": d.attempts if d else None,
            "service": d.service if d else None,
            "failed_at": (d.failed_at if d else self.written_at).isoformat(),
            "tenant": self.tenant,
        }

    def details(self) -> dict[str, Any]:
        """What `dlq show` prints: the summary and the original record (JSON if it is JSON, else text)."""
        original: Any = None
        if self.letter is not None:
            try:
                original = json.loads(self.letter.value)
            except ValueError:
                original = self.letter.value.decode("utf-8", "replace")
        key = self.letter.key.decode("utf-8", "replace") if self.letter and self.letter.key else None
        return {**self.summary(), "key": key, "original": original}


@dataclass(frozen=True, slots=True)
class Selection:
    """Which letters a command is about: by topic, reason, tenant and when they were written."""

    dlq_topics: tuple[str, ...]
    reason: str | None = None
    tenant: str | None = None
    since: datetime | None = None
    until: datetime | None = None

    def matches(self, letter: Letter) -> bool:
        """Whether the letter passes the reason, tenant and time filters."""
        if self.until is not None and letter.written_at >= self.until:
            return False
        if self.tenant is not None and letter.tenant != self.tenant:
            return False
        if self.reason is None:
            return True
        wanted = self.reason.lower()
        error = letter.letter.error.lower() if letter.letter else ""
        return letter.reason.lower() == wanted or wanted in error


def dlq_topics(topic: str | None) -> tuple[str, ...]:
    """The dead-letter topics meant by `--topic` (a source topic or its `.dlq`; None: every one)."""
    every = {spec.dlq.name: spec for spec in topics.WITH_DLQ}
    if topic is None:
        return tuple(every)
    name = topic if topic.endswith(".dlq") else f"{topic}.dlq"
    if name not in every:
        known = ", ".join(spec.name for spec in topics.WITH_DLQ)
        raise ValueError(f"{topic!r} has no dead-letter topic; topics that have one: {known}")
    return (name,)


def partitions_of(dlq_topic: str) -> int:
    """How many partitions a dead-letter topic was provisioned with."""
    return next(spec.dlq.partitions for spec in topics.WITH_DLQ if spec.dlq.name == dlq_topic)


async def read_letters(
    bootstrap: str, selection: Selection, progress: Callable[[int, int], None] | None = None
) -> list[Letter]:
    """Every letter of the selected topics from `since` (Kafka's offsets-for-times) to their end now.

    The ends are taken once at the start, so letters written while reading are left for the next run.
    `progress(done, total)` is told how far the reading has come, in records.
    """
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False)
    await consumer.start()
    try:
        parts = [TopicPartition(t, p) for t in selection.dlq_topics for p in range(partitions_of(t))]
        consumer.assign(parts)
        starts, ends = await _range(consumer, parts, selection.since)
        total = sum(ends[tp] - starts[tp] for tp in parts)
        told = None if progress is None else lambda done: progress(done, total)
        letters = await _read(consumer, starts, ends, told)
        return [letter for letter in letters if selection.matches(letter)]
    finally:
        await consumer.stop()


async def _read(
    consumer: AIOKafkaConsumer,
    starts: dict[TopicPartition, int],
    ends: dict[TopicPartition, int],
    progress: Callable[[int], object] | None = None,
) -> list[Letter]:
    """The letters of each assigned partition from its start up to (not including) its end."""
    letters: list[Letter] = []
    pending = {tp for tp in starts if starts[tp] < ends[tp]}
    for tp in pending:
        consumer.seek(tp, starts[tp])
    while pending:
        batches = await consumer.getmany(*pending, timeout_ms=_POLL_MS)
        for tp, records in batches.items():
            letters += [_letter(r) for r in records if r.offset < ends[tp]]
        pending = {tp for tp in pending if await consumer.position(tp) < ends[tp]}
        if progress is not None:
            progress(len(letters))
    return letters


#: A dead-letter partition: (dlq topic, partition).
Partition = tuple[str, int]


@dataclass(frozen=True, slots=True)
class NewLetters:
    """What `read_new` read, and each partition's retained span now: [first, end) offsets."""

    letters: list[Letter]
    spans: dict[Partition, tuple[int, int]]


async def read_new(bootstrap: str, dlq_topics: tuple[str, ...], after: dict[Partition, int]) -> NewLetters:
    """The letters of `dlq_topics` from the next offset `after` names per partition (from the first one
    retained where it names none, or names one retention removed) to their end now."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False)
    await consumer.start()
    try:
        parts = [TopicPartition(t, p) for t in dlq_topics for p in range(partitions_of(t))]
        consumer.assign(parts)
        firsts = await consumer.beginning_offsets(parts)
        ends = await consumer.end_offsets(parts)
        starts = {}
        for tp in parts:
            stored = after.get((tp.topic, tp.partition), firsts[tp])
            # Behind the first retained offset (retention), or past the end (a topic made again): re-read.
            starts[tp] = stored if firsts[tp] <= stored <= ends[tp] else firsts[tp]
        letters = await _read(consumer, starts, ends)
        return NewLetters(letters, {(tp.topic, tp.partition): (firsts[tp], ends[tp]) for tp in parts})
    finally:
        await consumer.stop()


async def _range(
    consumer: AIOKafkaConsumer, parts: list[TopicPartition], since: datetime | None
) -> tuple[dict[TopicPartition, int], dict[TopicPartition, int]]:
    """Where reading starts (the first record at or after `since`, else the beginning) and ends (now)."""
    ends = await consumer.end_offsets(parts)
    starts = await consumer.beginning_offsets(parts)
    if since is not None:
        found = await consumer.offsets_for_times({tp: int(since.timestamp() * 1000) for tp in parts})
        starts = {tp: found[tp].offset if found.get(tp) else ends[tp] for tp in parts}
    return starts, ends


def _letter(record: Any) -> Letter:
    written_at = datetime.fromtimestamp(record.timestamp / 1000, UTC)
    try:
        letter = DeadLetter.from_bytes(record.value)
    except (ValidationError, ValueError):
        letter = None  # shown as unreadable, never redriven
    return Letter(record.topic, record.partition, record.offset, written_at, letter)


async def in_view(
    bootstrap: str,
    engine: AsyncEngine,
    selection: Selection,
    progress: Callable[[int, int], None] | None = None,
) -> list[Letter]:
    """The selected letters that were not redriven yet."""
    letters = await read_letters(bootstrap, selection, progress)
    async with engine.connect() as conn:
        done = await redrives.redriven(conn, (x.position for x in letters))
    return [x for x in letters if x.position not in done]


def counts(letters: list[Letter]) -> dict[str, int]:
    """Letters per dead-letter topic."""
    return dict(sorted(Counter(x.dlq_topic for x in letters).items()))


async def redrive(
    letters: list[Letter],
    sender: DurableProducer,
    engine: AsyncEngine,
    who: str,
    advance: Callable[[], None] | None = None,
) -> dict[str, Any]:
    """Republish each readable letter's original key and value to its source topic and enter it in the
    ledger (it leaves the view); the counts before and after, what went where, what was unreadable."""
    done: list[dict[str, Any]] = []
    for x in letters:
        if x.letter is None:
            continue
        sent = await sender.send(x.letter.source_topic, x.letter.key, x.letter.value)
        row = _ledger_row(x, x.letter, sent, who)
        # Entered after the broker took the record: a crash in between redrives it again on the next
        # run, which idempotent consumers make harmless; the reverse would lose it.
        async with engine.begin() as conn:
            await redrives.record_redrives(conn, [row])
        to = f"{row['source_topic']}:{row['redriven_partition']}:{row['redriven_offset']}"
        done.append({"id": x.id, "dlq_topic": x.dlq_topic, "to": to})
        if advance is not None:
            advance()
    unreadable = [x for x in letters if x.letter is None]
    return {
        "before": counts(letters),
        "redriven": done,
        "skipped": [x.id for x in unreadable],
        "after": counts(unreadable),
    }


def _ledger_row(x: Letter, letter: DeadLetter, sent: Any, who: str) -> dict[str, Any]:
    """The ledger row of a letter republished as `sent` (the broker's record metadata)."""
    return {
        "dlq_topic": x.dlq_topic,
        "partition": x.partition,
        "offset": x.offset,
        "source_topic": letter.source_topic,
        "error_type": letter.error_type[:200],
        "redriven_partition": sent.partition,
        "redriven_offset": sent.offset,
        "redriven_by": who[:100],
    }


def ledger_json(row: Any) -> dict[str, Any] | None:
    """A ledger row as `dlq show` and the admin API show it (None: not redriven)."""
    if row is None:
        return None
    return {
        "by": row.redriven_by,
        "at": row.redriven_at.isoformat(),
        "to": f"{row.source_topic}:{row.redriven_partition}:{row.redriven_offset}",
    }


def parse_letter_id(letter_id: str) -> tuple[Selection, Position]:
    """`<dlq topic>:<partition>:<offset>` as the selection of its topic and its position; ValueError."""
    dlq_topic, partition, offset = letter_id.rsplit(":", 2)
    return Selection(dlq_topics(dlq_topic)), (dlq_topic, int(partition), int(offset))


async def find(bootstrap: str, engine: AsyncEngine, letter_id: str) -> tuple[Letter | None, Any]:
    """One letter by its id, and its ledger row if it was redriven; ValueError for a malformed id."""
    selection, position = parse_letter_id(letter_id)
    letters = await read_letters(bootstrap, selection)
    found = next((x for x in letters if x.position == position), None)
    async with engine.connect() as conn:
        ledger = await redrives.redriven(conn, [position])
    return found, ledger.get(position)
