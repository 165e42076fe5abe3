"""The notifier's subscribers."""

from __future__ import annotations

import contextlib

from aiokafka.structs import ConsumerRecord
from faststream import AckPolicy
from faststream.kafka import KafkaMessage, KafkaRouter
from prometheus_client import Counter

from paysync_core import topics
from paysync_core.contracts import Alert
from paysync_core.dead_letters import DeadLettered, with_retries
from paysync_core.publishers import TopicPublisher
from paysync_notifier.delivery import AlertDelivery
from paysync_notifier.settings import NotifierSettings

RECEIVED = Counter("paysync_notifier_events_total", "Events received by the notifier", ["topic"])


def notifier_router(settings: NotifierSettings, alerts: AlertDelivery) -> KafkaRouter:
    """The notifier's alerts subscriber (status changes reach the live stream through `StatusFeed`)."""
    router = KafkaRouter()
    dead_letters = TopicPublisher(router, topics.ALERTS.dlq)

    # Reads bytes: an alert that does not parse, or that fails for its own reason (its tenant's
    # settings unreadable), is dead-lettered after bounded retries, never dropped; an outage of the
    # database or broker propagates, and the nack has the record redelivered.
    @router.subscriber(
        topics.ALERTS.name,
        group_id=f"{settings.group_id}-alerts",
        auto_offset_reset="earliest",
        ack_policy=AckPolicy.NACK_ON_ERROR,
    )
    async def receive_alert(_: bytes, message: KafkaMessage) -> None:
        """Enter a sync alert in the delivery log, for its tenant's admins (email, chat)."""
        RECEIVED.labels(topics.ALERTS.name).inc()
        record: ConsumerRecord = message.raw_message

        async def work() -> None:
            await alerts.record(Alert.from_bytes(record.value or b""))

        with contextlib.suppress(DeadLettered):
            await with_retries(
                record, work, send_dead_letter=dead_letters.forward, service="notifier", max_attempts=3
            )

    return router
