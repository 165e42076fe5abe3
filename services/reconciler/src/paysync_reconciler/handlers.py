"""The reconciler's subscribers: schedule ticks and targeted check requests."""

from __future__ import annotations

import structlog
from faststream import AckPolicy
from faststream.kafka import KafkaBroker
from prometheus_client import Counter

from paysync_core import topics
from paysync_reconciler.settings import ReconcilerSettings

log = structlog.get_logger()
RECEIVED = Counter("paysync_reconciler_messages_total", "Ticks and requests received", ["topic"])


def register_handlers(broker: KafkaBroker, settings: ReconcilerSettings) -> None:
    """Consume ticks and requests in one consumer group, so each is handled by one replica."""

    @broker.subscriber(
        topics.RECONCILE_TICKS.name, topics.RECONCILE_REQUESTS.name, group_id=settings.group_id,
        auto_offset_reset="earliest", ack_policy=AckPolicy.ACK,
    )
    async def receive(message: dict) -> None:
        """Receive a tick or a check request (sweeps and gateway queries come with issue 6)."""
        RECEIVED.labels(message.get("kind", "unknown")).inc()
        log.info("reconcile.received", kind=message.get("kind"), tenant=message.get("tenant"))
