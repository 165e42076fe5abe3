"""api-gateway's subscriber: replies to the on-demand checks it asked for."""

from __future__ import annotations

import uuid

from faststream import AckPolicy
from faststream.kafka import KafkaBroker

from paysync_api_gateway.refresh import RefreshCoordinator
from paysync_core import topics
from paysync_core.contracts import ReconcileReply


def register_reply_listener(broker: KafkaBroker, coordinator: RefreshCoordinator) -> None:
    """Every instance reads every reply (own group, from now on) and keeps those it waits for."""

    @broker.subscriber(
        topics.RECONCILE_REPLIES.name,
        group_id=f"paysync-api-gateway-{uuid.uuid4().hex[:12]}",
        auto_offset_reset="latest",
        ack_policy=AckPolicy.ACK_FIRST,  # a reply nobody waits for any more needs no redelivery
    )
    async def receive_reply(reply: ReconcileReply) -> None:
        """Hand a reconcile reply to the request waiting for it."""
        coordinator.deliver(reply)
