"""The projector's subscriber: observations in, payments and domain rows updated."""

from __future__ import annotations

import time
from collections.abc import Callable

from aiokafka.structs import ConsumerRecord
from faststream import AckPolicy
from faststream.kafka import KafkaBroker, KafkaMessage
from sqlalchemy.ext.asyncio import AsyncEngine

from paysync_core import topics
from paysync_core.contracts import PaymentObservation
from paysync_core.dead_letters import DeadLettered, with_retries
from paysync_status_projector.domains import DomainSpec
from paysync_status_projector.metrics import BATCH_SECONDS, OBSERVATIONS, STATUS_CHANGES
from paysync_status_projector.service import project
from paysync_status_projector.settings import StatusProjectorSettings


def register_projector(
    broker: KafkaBroker,
    engine: AsyncEngine,
    domains: dict[str, DomainSpec],
    settings: StatusProjectorSettings,
    on_committed: Callable[[], None],
) -> None:
    """Subscribe to observations; offsets are committed only after the batch's transaction is."""

    async def send_dead_letter(key: bytes | None, value: bytes) -> None:
        await broker.publish(value, topics.PAYMENT_OBSERVATIONS.dlq.name, key=key)

    async def decode(record: ConsumerRecord) -> PaymentObservation:
        return PaymentObservation.from_bytes(record.value)

    @broker.subscriber(
        topics.PAYMENT_OBSERVATIONS.name,
        group_id=settings.group_id,
        batch=True,
        max_records=settings.max_batch,
        batch_timeout_ms=settings.batch_timeout_ms,
        auto_offset_reset="earliest",
        ack_policy=AckPolicy.NACK_ON_ERROR,
    )
    async def apply_observations(_: list[bytes], message: KafkaMessage) -> None:
        """Merge each observation into its payment's status and follow it in the domain rows."""
        batch: list[PaymentObservation] = []
        for record in message.raw_message:
            try:
                batch.append(await with_retries(
                    record, lambda record=record: decode(record), send_dead_letter=send_dead_letter,
                    service="status-projector", max_attempts=settings.max_attempts,
                ))
            except DeadLettered:
                OBSERVATIONS.labels("dead_lettered").inc()
        started = time.perf_counter()
        result = await project(engine, batch, domains)
        BATCH_SECONDS.observe(time.perf_counter() - started)
        OBSERVATIONS.labels("applied").inc(result.applied)
        OBSERVATIONS.labels("duplicate").inc(result.duplicates)
        OBSERVATIONS.labels("parked").inc(result.parked)
        for change in result.status_changes:
            STATUS_CHANGES.labels(change.new_status.value).inc()
        if result.status_changes:
            on_committed()
