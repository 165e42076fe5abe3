"""The normalizer: raw webhook records in, payment observations out."""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Sequence
from typing import Any

import structlog
from aiokafka.structs import ConsumerRecord
from faststream import AckPolicy
from faststream.kafka import KafkaMessage, KafkaRouter
from opentelemetry.context import Context

from paysync_core import topics, tracing
from paysync_core.contracts import PaymentObservation, RawWebhook, ReconcileRequest
from paysync_core.dead_letters import DeadLettered, with_retries
from paysync_core.kafka import DurableProducer
from paysync_core.publishers import TopicPublisher
from paysync_core.topics import TopicSpec
from paysync_webhook_ingest.metrics import CONFIRMATIONS, NORMALIZED
from paysync_webhook_ingest.service import confirmations_for, normalize
from paysync_webhook_ingest.settings import WebhookIngestSettings

log = structlog.get_logger()
_debug = logging.getLogger(__name__)  # the stdlib logger `log` writes through, for its level


def normalizer_router(settings: WebhookIngestSettings, producer: DurableProducer) -> KafkaRouter:
    """The normalizer's subscriber on the raw topic; offsets commit after observations are acknowledged.

    What it publishes goes through `producer` (started before the router's broker).
    """
    router = KafkaRouter()
    batches = RawWebhookBatches(router, settings, producer)

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
        await batches.normalize(message.raw_message)

    return router


class RawWebhookBatches:
    """Normalizes one batch of raw webhook records and publishes what they stand for."""

    def __init__(
        self, router: KafkaRouter, settings: WebhookIngestSettings, producer: DurableProducer
    ) -> None:
        # Declared on the router for the AsyncAPI document; published through `producer`: a FastStream
        # publish per observation (and a task for each) cost more than normalizing the record.
        TopicPublisher(router, topics.PAYMENT_OBSERVATIONS)
        TopicPublisher(router, topics.RECONCILE_REQUESTS, "M-Pesa callbacks to confirm")
        self._producer = producer
        self._dead_letters = TopicPublisher(router, topics.WEBHOOKS_RAW.dlq)
        self._phone_key = settings.common.phone_hash_key.get_secret_value()
        self._max_attempts = settings.normalizer_max_attempts

    async def normalize(self, records: Sequence[ConsumerRecord]) -> None:
        """Publish the observations (and M-Pesa confirmation requests) of every record; return once
        all are acknowledged, so that the batch's offsets are committed only then.

        With tracing on, each record is a span of its webhook's trace and what it causes is published
        in that span (`tracing.RecordSpans`); off, `spans` does nothing.
        """
        spans = tracing.RecordSpans(topics.WEBHOOKS_RAW.name)
        caused: list[tuple[Context | None, list[PaymentObservation], list[ReconcileRequest]]] = []
        acknowledgements: list[Awaitable[object]] = []
        try:
            for record in records:
                at = (record.partition, record.offset)
                spans.start(at, record)
                with spans.current(at):
                    observations = await self._normalized(record)
                caused.append((spans.context(at), observations, confirmations_for(observations)))
            # Handed over only once all are normalized: the producer's linger would otherwise expire
            # while the batch is being normalized, and send it in several requests.
            for context, observations, requests in caused:
                with tracing.attached(context):
                    await self._hand_over(topics.PAYMENT_OBSERVATIONS, observations, acknowledgements)
                    await self._hand_over(topics.RECONCILE_REQUESTS, requests, acknowledgements)
            await asyncio.gather(*acknowledgements)
        except BaseException as exc:
            spans.end(exc)
            raise
        spans.end()
        CONFIRMATIONS.inc(sum(len(requests) for _, _, requests in caused))

    async def _hand_over(
        self, spec: TopicSpec[Any], messages: Sequence[Any], acknowledgements: list[Awaitable[object]]
    ) -> None:
        """Hand `messages` to the producer in order (a payment's keep their order on its partition),
        each with the active trace context; their acknowledgements go to `acknowledgements`."""
        for message in messages:
            key, value = spec.key_for(message), message.to_bytes()
            if tracing.enabled():
                with tracing.producing(spec.name, key) as headers:
                    acknowledgements.append(await self._producer.submit(spec.name, key, value, headers))
            else:
                acknowledgements.append(await self._producer.submit(spec.name, key, value))

    async def _normalized(self, record: ConsumerRecord) -> list[PaymentObservation]:
        try:
            return await with_retries(
                record,
                functools.partial(self._observations_of, record),
                send_dead_letter=self._dead_letters.forward,
                service="webhook-ingest.normalizer",
                max_attempts=self._max_attempts,
            )
        except DeadLettered:
            NORMALIZED.labels("unknown", "dead_lettered").inc()
            return []

    async def _observations_of(self, record: ConsumerRecord) -> list[PaymentObservation]:
        raw = RawWebhook.from_bytes(record.value)
        parsed = normalize(raw, partition=record.partition, offset=record.offset, phone_key=self._phone_key)
        NORMALIZED.labels(raw.provider.value, "unmapped" if parsed.unmapped else "mapped").inc()
        if _debug.isEnabledFor(logging.DEBUG):  # at INFO, not even the refs sorted per record
            log.debug(
                "webhook.normalized",
                tenant=raw.tenant,
                provider=raw.provider.value,
                ingest_id=raw.ingest_id,
                refs=sorted({o.provider_ref for o in parsed.observations}),
            )
        return list(parsed.observations)
