"""The normalizer: raw webhook records in, payment observations out."""

from __future__ import annotations

import asyncio
import functools

import structlog
from aiokafka.structs import ConsumerRecord
from faststream import AckPolicy
from faststream.kafka import KafkaMessage, KafkaRouter

from paysync_core import topics
from paysync_core.contracts import PaymentObservation, RawWebhook
from paysync_core.dead_letters import DeadLettered, with_retries
from paysync_core.publishers import TopicPublisher
from paysync_webhook_ingest.metrics import CONFIRMATIONS, NORMALIZED
from paysync_webhook_ingest.service import confirmations_for, normalize
from paysync_webhook_ingest.settings import WebhookIngestSettings

log = structlog.get_logger()


def normalizer_router(settings: WebhookIngestSettings) -> KafkaRouter:
    """The normalizer's subscriber on the raw topic; offsets commit after observations are acknowledged."""
    router = KafkaRouter()
    observations_out = TopicPublisher(router, topics.PAYMENT_OBSERVATIONS)
    confirmations_out = TopicPublisher(router, topics.RECONCILE_REQUESTS, "M-Pesa callbacks to confirm")
    dead_letters_out = TopicPublisher(router, topics.WEBHOOKS_RAW.dlq)
    phone_key = settings.common.phone_hash_key.get_secret_value()

    async def observations_of(record: ConsumerRecord) -> list[PaymentObservation]:
        raw = RawWebhook.from_bytes(record.value)
        parsed = normalize(raw, partition=record.partition, offset=record.offset, phone_key=phone_key)
        NORMALIZED.labels(raw.provider.value, "unmapped" if parsed.unmapped else "mapped").inc()
        return list(parsed.observations)

    # Reads bytes: the hot batch path parses each record itself, so one that does not parse is dead-lettered.
    @router.subscriber(
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
                    send_dead_letter=dead_letters_out.forward,
                    service="webhook-ingest.normalizer",
                    max_attempts=settings.normalizer_max_attempts,
                )
            except DeadLettered:
                NORMALIZED.labels("unknown", "dead_lettered").inc()
        confirmations = confirmations_for(observations)
        # Every record acknowledged before the batch's offsets are committed.
        await asyncio.gather(
            *(observations_out.publish(o) for o in observations),
            *(confirmations_out.publish(r) for r in confirmations),
        )
        CONFIRMATIONS.inc(len(confirmations))

    return router
