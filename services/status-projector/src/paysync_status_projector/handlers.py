"""The projector's batch handling: observation records in, payments and domain rows updated."""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Awaitable, Callable, Hashable, Mapping, Sequence
from typing import NamedTuple, TypeVar

import structlog
from aiokafka.partitioner import DefaultPartitioner, murmur2
from aiokafka.structs import ConsumerRecord
from faststream.kafka import KafkaBroker
from sqlalchemy.ext.asyncio import AsyncEngine

from paysync_core import topics, tracing
from paysync_core.contracts import PaymentObservation
from paysync_core.dead_letters import DeadLettered, is_outage, with_retries
from paysync_core.domains import Domains
from paysync_core.publishers import TopicPublisher
from paysync_status_projector.consumer import BatchConsumer
from paysync_status_projector.metrics import ALERTS, BATCH_SECONDS, BATCH_SIZE, OBSERVATIONS, STATUS_CHANGES
from paysync_status_projector.service import BatchResult, project
from paysync_status_projector.service.folding import Staged, StagedByKey, stage
from paysync_status_projector.settings import StatusProjectorSettings

T = TypeVar("T")
log = structlog.get_logger()
_debug = logging.getLogger(__name__)  # the stdlib logger `log` writes through, for its level


@functools.lru_cache(maxsize=1 << 16)
def _key_hash(key: bytes) -> int:
    return murmur2(key) & 0x7FFFFFFF


def same_partition_as_java_clients(key: bytes | None, all_partitions: list[int], available: list[int]) -> int:
    """Kafka's default partitioner (murmur2 of the key), remembering keys: a payment's changes share one."""
    if key is None:
        return DefaultPartitioner()(key, all_partitions, available)
    return all_partitions[_key_hash(key) % len(all_partitions)]


def projector_consumer(
    broker: KafkaBroker,
    engine: AsyncEngine,
    domains: Domains,
    settings: StatusProjectorSettings,
    on_committed: Callable[[], None],
    on_parked_matched: Callable[[], None] = lambda: None,
) -> BatchConsumer[Decoded]:
    """The observations' consumer: each batch applied in one transaction, its offsets committed after.

    `on_committed` runs after a batch that changed a status or raised an alert (the relay has events to
    send), `on_parked_matched` after one that bound an alias a parked observation names (the unpark
    can apply it).
    """
    batches = ObservationBatches(
        broker, engine, domains, settings.max_attempts, on_committed, on_parked_matched
    )
    return BatchConsumer(topics.PAYMENT_OBSERVATIONS.name, settings.common.kafka_bootstrap, settings, batches)


#: Records decoded between two yields to the event loop: while the batch before is being applied,
#: its statements' answers wait at most this many decodes (about 1 ms) for the loop.
DECODE_CHUNK = 64


class Decoded(NamedTuple):
    """A record and its observation, staged (None: it does not parse, and is dead-lettered when applied)."""

    record: ConsumerRecord
    staged: Staged | None


def _staged(record: ConsumerRecord) -> Staged | None:
    try:
        obs = PaymentObservation.from_bytes(record.value)
    except Exception:  # noqa: BLE001 - decoded again when applied, under `with_retries`, which dead-letters it
        return None
    return stage(obs)


async def _decode(record: ConsumerRecord) -> PaymentObservation:
    return PaymentObservation.from_bytes(record.value)


class ObservationBatches:
    """Applies one batch of observation records: decoded, projected, culprits dead-lettered, counted.

    `prepare` decodes (it may run while the batch before is being applied: it only reads the
    records' bytes); `apply` dead-letters what did not decode, projects the rest in one
    transaction and wakes the relay.
    """

    def __init__(
        self,
        broker: KafkaBroker,
        engine: AsyncEngine,
        domains: Domains,
        max_attempts: int,
        on_committed: Callable[[], None],
        on_parked_matched: Callable[[], None] = lambda: None,
    ) -> None:
        self._engine, self._domains = engine, domains
        self._dead_letters = TopicPublisher(broker, topics.PAYMENT_OBSERVATIONS.dlq)
        self._max_attempts, self._on_committed = max_attempts, on_committed
        self._on_parked_matched = on_parked_matched

    async def prepare(self, records: Sequence[ConsumerRecord]) -> list[Decoded]:
        """Each record's observation parsed and staged (`stage`), yielding to the event loop now and then."""
        decoded: list[Decoded] = []
        for start in range(0, len(records), DECODE_CHUNK):
            if start:
                await asyncio.sleep(0)
            decoded += [Decoded(r, _staged(r)) for r in records[start : start + DECODE_CHUNK]]
        return decoded

    async def apply(self, prepared: list[Decoded]) -> None:
        """Merge each observation into its payment's status, follow it in the domain rows, wake the relay
        (and the unpark, when an alias bound now matches a parked observation)."""
        result = await self.project_decoded(prepared)
        if result.status_changes or result.alerts:
            self._on_committed()
        if result.parked_matched:
            self._on_parked_matched()

    async def project_decoded(self, prepared: list[Decoded]) -> BatchResult:
        """Apply the batch's observations in one transaction (one by one if the database refuses one)."""
        decoded: list[tuple[ConsumerRecord, PaymentObservation]] = []
        staged = {(s.message.tenant, s.message.observation_id): s for _, s in prepared if s is not None}
        for record, derived in prepared:
            if derived is not None:
                decoded.append((record, derived.message))
                continue
            try:  # what did not parse is dead-lettered here, in the batch's turn, not while it waits
                decoded.append((record, await self._guarded(record, functools.partial(_decode, record))))
            except DeadLettered:
                OBSERVATIONS.labels("dead_lettered").inc()
        # With tracing on, each record's apply is a span of its webhook's trace, and the status change
        # it causes is stored in the outbox with that span's context (`tracing.RecordSpans`).
        spans = tracing.RecordSpans(topics.PAYMENT_OBSERVATIONS.name)
        if tracing.enabled():
            for record, obs in decoded:
                spans.start((obs.tenant, obs.observation_id), record, **{"paysync.tenant": obs.tenant})
        try:
            result = await self._project(decoded, spans.traceparents(), staged)
        except BaseException as exc:
            spans.end(exc)
            raise
        _log_changes(result, spans)
        spans.end()
        return result

    async def _project(
        self,
        decoded: list[tuple[ConsumerRecord, PaymentObservation]],
        traces: Mapping[Hashable, str],
        staged: StagedByKey,
    ) -> BatchResult:
        started = time.perf_counter()
        observations = [obs for _, obs in decoded]
        try:
            result = await project(self._engine, observations, self._domains, traces=traces, staged=staged)
        except Exception as exc:
            if is_outage(exc):
                raise  # nothing committed: the batch is redelivered
            # One observation the database refuses must not block its partition: apply them one
            # by one, so only the culprit is retried and dead-lettered.
            result = await self._one_by_one(decoded, traces, staged)
        _count(result, len(decoded), time.perf_counter() - started)
        return result

    async def _one_by_one(
        self,
        decoded: list[tuple[ConsumerRecord, PaymentObservation]],
        traces: Mapping[Hashable, str],
        staged: StagedByKey,
    ) -> BatchResult:
        result = BatchResult()
        for record, obs in decoded:
            apply = functools.partial(
                project, self._engine, [obs], self._domains, traces=traces, staged=staged
            )
            try:
                result.add(await self._guarded(record, apply))
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
        await self._dead_letters.forward(key, value)


def _log_changes(result: BatchResult, spans: tracing.RecordSpans) -> None:
    """A debug line per status change, in the span of the observation behind it (so with its trace id)."""
    if not _debug.isEnabledFor(logging.DEBUG):  # at INFO, not even the span context per change
        return
    for change in result.status_changes:
        with spans.current((change.tenant, change.observation_id)):
            log.debug(
                "payment.status_changed",
                tenant=change.tenant,
                payment_id=change.payment_id,
                old_status=change.old_status,
                new_status=change.new_status.value,
                sequence=change.sequence,
            )


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
