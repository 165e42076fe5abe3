"""The subscriber that feeds app webhooks: status changes into delivery rows, in one shared group."""

from __future__ import annotations

from typing import Literal

from aiokafka.structs import ConsumerRecord
from faststream import AckPolicy
from faststream.kafka import KafkaMessage, KafkaRouter

from paysync_core import topics
from paysync_core.contracts import PaymentStatusChanged
from paysync_core.dead_letters import DeadLettered, with_retries
from paysync_core.publishers import TopicPublisher
from paysync_notifier.hooks import AppWebhooks


def app_webhooks_router(
    hooks: AppWebhooks, group_id: str, offset_reset: Literal["earliest", "latest"]
) -> KafkaRouter:
    """Status changes to delivery rows; the record is acknowledged only after they are committed."""
    router = KafkaRouter()
    dead_letters = TopicPublisher(router, topics.PAYMENT_STATUS.dlq)

    # One group for every replica (unlike the live stream): each change is taken in once, by one of them.
    # Reads bytes: a change that does not parse is dead-lettered, not redelivered forever.
    @router.subscriber(
        topics.PAYMENT_STATUS.name,
        group_id=f"{group_id}-app-webhooks",
        auto_offset_reset=offset_reset,
        ack_policy=AckPolicy.NACK_ON_ERROR,
    )
    async def queue_app_webhooks(_: bytes, message: KafkaMessage) -> None:
        """Queue a status change for each endpoint of its tenant that wants it (idempotent per endpoint)."""
        record: ConsumerRecord = message.raw_message

        async def work() -> None:
            await hooks.take_in(PaymentStatusChanged.from_bytes(record.value or b""))

        try:
            await with_retries(
                record, work, send_dead_letter=dead_letters.forward, service="notifier", max_attempts=3
            )
        except DeadLettered:
            return

    return router
