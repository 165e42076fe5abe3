"""The notifier's subscribers."""

from __future__ import annotations

import contextlib
import uuid

from aiokafka.structs import ConsumerRecord
from faststream import AckPolicy
from faststream.kafka import KafkaMessage, KafkaRouter
from prometheus_client import Counter

from paysync_core import topics
from paysync_core.contracts import Alert, PaymentStatusChanged
from paysync_core.dead_letters import DeadLettered, with_retries
from paysync_core.publishers import TopicPublisher
from paysync_notifier.delivery import AlertDelivery
from paysync_notifier.service import LiveStream
from paysync_notifier.settings import NotifierSettings

RECEIVED = Counter("paysync_notifier_events_total", "Events received by the notifier", ["topic"])


def notifier_router(stream: LiveStream, settings: NotifierSettings, alerts: AlertDelivery) -> KafkaRouter:
    """The notifier's subscribers: status changes (for the live stream) and alerts."""
    router = KafkaRouter()

    @router.subscriber(
        topics.PAYMENT_STATUS.name,
        # Every replica needs every change for the clients connected to it: a group of its own.
        group_id=f"{settings.group_id}-live-{uuid.uuid4().hex[:12]}",
        auto_offset_reset="latest",
        ack_policy=AckPolicy.ACK_FIRST,
    )
    async def push_status_change(change: PaymentStatusChanged) -> None:
        """Send a payment's status change to the live stream."""
        RECEIVED.labels(topics.PAYMENT_STATUS.name).inc()
        stream.publish(change)

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
