"""The notifier's subscribers."""

from __future__ import annotations

import structlog
from faststream import AckPolicy
from faststream.kafka import KafkaRouter
from prometheus_client import Counter

from paysync_core import topics
from paysync_core.contracts import Alert
from paysync_notifier.settings import NotifierSettings

log = structlog.get_logger()
RECEIVED = Counter("paysync_notifier_events_total", "Events received by the notifier", ["topic"])


def notifier_router(settings: NotifierSettings) -> KafkaRouter:
    """The notifier's subscribers: alerts (status changes reach the live stream through `StatusFeed`)."""
    router = KafkaRouter()

    @router.subscriber(
        topics.ALERTS.name,
        group_id=f"{settings.group_id}-alerts",
        auto_offset_reset="earliest",
        ack_policy=AckPolicy.ACK,
    )
    async def receive_alert(alert: Alert) -> None:
        """Record a sync alert (delivery by email and chat comes with the alerting rules)."""
        RECEIVED.labels(topics.ALERTS.name).inc()
        log.info("alert.received", kind=alert.kind.value, tenant=alert.tenant)

    return router
