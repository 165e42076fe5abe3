"""The notifier's subscribers."""

from __future__ import annotations

import uuid

import structlog
from faststream import AckPolicy
from faststream.kafka import KafkaBroker
from prometheus_client import Counter

from paysync_core import topics
from paysync_core.contracts import PaymentStatusChanged
from paysync_notifier.service import LiveStream
from paysync_notifier.settings import NotifierSettings

log = structlog.get_logger()
RECEIVED = Counter("paysync_notifier_events_total", "Events received by the notifier", ["topic"])


def register_handlers(broker: KafkaBroker, stream: LiveStream, settings: NotifierSettings) -> None:
    """Subscribe to status changes (for the live stream) and alerts."""

    @broker.subscriber(
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

    @broker.subscriber(
        topics.ALERTS.name,
        group_id=f"{settings.group_id}-alerts",
        auto_offset_reset="earliest",
        ack_policy=AckPolicy.ACK,
    )
    async def receive_alert(alert: dict) -> None:
        """Record a sync alert (delivery by email and chat comes with the alerting rules)."""
        RECEIVED.labels(topics.ALERTS.name).inc()
        log.info("alert.received", kind=alert.get("kind"), tenant=alert.get("tenant"))
