"""The normalizer: raw webhook records in, payment observations out."""

from __future__ import annotations

import asyncio
import functools

import structlog
from aiokafka.structs import ConsumerRecord
from faststream import AckPolicy
from faststream.kafka import KafkaBroker, KafkaMessage

from paysync_core import topics
from paysync_core.contracts import PaymentObservation, RawWebhook, ReconcileRequest, payment_key
from paysync_core.dead_letters import DeadLettered, with_retries
from paysync_webhook_ingest.metrics import CONFIRMATIONS, NORMALIZED
from paysync_webhook_ingest.service import confirmations_for, normalize
from paysync_webhook_ingest.settings import WebhookIngestSettings

log = structlog.get_logger()


def register_normalizer(broker: KafkaBroker, settings: WebhookIngestSettings) -> None:
    """Subscribe the normalizer to the raw topic; offsets commit after observations are acknowledged."""

    async def publish_observation(obs: PaymentObservation) -> None:
        await broker.publish(
            obs.to_bytes(),
            topics.PAYMENT_OBSERVATIONS.name,
            key=payment_key(obs.tenant, obs.provider, obs.provider_ref).encode(),
        )

    async def request_confirmation(request: ReconcileRequest) -> None:
        await broker.publish(request.to_bytes(), topics.RECONCILE_REQUESTS.name, key=request.tenant.encode())

    async def send_dead_letter(key: bytes | None, value: bytes) -> None:
        await broker.publish(value, topics.WEBHOOKS_RAW.dlq.name, key=key)

    async def observations_of(record: ConsumerRecord) -> list[PaymentObservation]:
        raw = RawWebhook.from_bytes(record.value)
        parsed = normalize(raw, partition=record.partition, offset=record.offset)
        NORMALIZED.labels(raw.provider.value, "unmapped" if parsed.unmapped else "mapped").inc()
        return list(parsed.observations)

    @broker.subscriber(
        topics.WEBHOOKS_RAW.name,
        group_id=settings.normalizer_group,
        batch=True,
        max_records=500,
        batch_timeout_ms=50,
        auto_offset_reset="earliest",
        ack_policy=AckPolicy.NACK_ON_ERROR,
    )
    async def normalize_raw_webhooks(_: list[bytes], message: KafkaMessage) -> None:
        """Turn each raw webhook into payment observations; dead-letter records that cannot be."""
        records: tuple[ConsumerRecord, ...] = message.raw_message
        observations: list[PaymentObservation] = []
        for record in records:
            try:
                observations += await with_retries(
                    record,
                    functools.partial(observations_of, record),
                    send_dead_letter=send_dead_letter,
                    service="webhook-ingest.normalizer",
                    max_attempts=settings.normalizer_max_attempts,
                )
            except DeadLettered:
                NORMALIZED.labels("unknown", "dead_lettered").inc()
        confirmations = confirmations_for(observations)
        # Every record acknowledged before the batch's offsets are committed.
        await asyncio.gather(
            *(publish_observation(o) for o in observations),
            *(request_confirmation(r) for r in confirmations),
        )
        CONFIRMATIONS.inc(len(confirmations))
