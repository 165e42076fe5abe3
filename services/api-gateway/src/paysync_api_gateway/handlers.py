"""api-gateway's subscriber: replies to the on-demand checks it asked for."""

from __future__ import annotations

import uuid

from aiokafka.abc import ConsumerRebalanceListener
from faststream import AckPolicy
from faststream.kafka import KafkaRouter

from paysync_api_gateway.refresh import RefreshCoordinator
from paysync_core import topics
from paysync_core.contracts import ReconcileReply


class _Listening(ConsumerRebalanceListener):
    """Tells the coordinator once replies can be received."""

    def __init__(self, coordinator: RefreshCoordinator) -> None:
        self._coordinator = coordinator

    async def on_partitions_revoked(self, revoked: object) -> None:
        """Nothing to hand back: replies are not committed work."""

    async def on_partitions_assigned(self, assigned: object) -> None:
        """From now on a reply reaches this process."""
        self._coordinator.listening.set()


def replies_router(coordinator: RefreshCoordinator) -> KafkaRouter:
    """Every instance reads every reply (own group, from now on) and keeps those it waits for."""
    router = KafkaRouter()

    @router.subscriber(
        topics.RECONCILE_REPLIES.name,
        group_id=f"paysync-api-gateway-{uuid.uuid4().hex[:12]}",
        auto_offset_reset="latest",
        ack_policy=AckPolicy.ACK_FIRST,  # a reply nobody waits for any more needs no redelivery
        listener=_Listening(coordinator),
    )
    async def receive_reply(reply: ReconcileReply) -> None:
        """Hand a reconcile reply to the request waiting for it."""
        coordinator.deliver(reply)

    return router
