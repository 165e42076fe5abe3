"""The notifier's subscribers."""

from __future__ import annotations

import uuid

from faststream import AckPolicy
from faststream.kafka import KafkaRouter
from prometheus_client import Counter

from paysync_core import topics
from paysync_core.contracts import Alert, PaymentStatusChanged
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

    @router.subscriber(
        topics.ALERTS.name,
        group_id=f"{settings.group_id}-alerts",
        auto_offset_reset="earliest",
        ack_policy=AckPolicy.ACK,
    )
    async def receive_alert(alert: Alert) -> None:
        """Enter a sync alert in the delivery log, for its tenant's admins (email, chat)."""
        RECEIVED.labels(topics.ALERTS.name).inc()
        await alerts.record(alert)

    return router
