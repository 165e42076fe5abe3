"""The reconciler's subscribers: schedule ticks and targeted check requests. Thin: decode, hand over."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiokafka.structs import ConsumerRecord
from faststream import AckPolicy
from faststream.kafka import KafkaMessage, KafkaRouter

from paysync_core import topics
from paysync_core.contracts import ReconcileRequest
from paysync_core.dead_letters import DeadLettered, with_retries
from paysync_core.publishers import TopicPublisher
from paysync_reconciler import metrics, service
from paysync_reconciler.models import ReconcileTick
from paysync_reconciler.runner import TaskRunner
from paysync_reconciler.service import Deps


def reconciler_router(deps: Deps, sweeps: TaskRunner, checks: TaskRunner) -> KafkaRouter:
    """Ticks and requests each in their own consumer group, so each is handled by one replica."""
    settings = deps.settings
    router = KafkaRouter()

    dead_letters = {
        t.name: TopicPublisher(router, t.dlq) for t in (topics.RECONCILE_TICKS, topics.RECONCILE_REQUESTS)
    }

    async def guarded(record: ConsumerRecord, topic: str, work: Callable[[], Awaitable[str]]) -> str:
        try:
            return await with_retries(
                record,
                work,
                send_dead_letter=dead_letters[topic].forward,
                service="reconciler",
                max_attempts=3,
            )
        except DeadLettered:
            return "dead_lettered"

    # Reads bytes: a tick that does not parse is dead-lettered (with_retries), not redelivered forever.
    @router.subscriber(
        topics.RECONCILE_TICKS.name,
        group_id=settings.group_id,
        auto_offset_reset=settings.auto_offset_reset,
        ack_policy=AckPolicy.NACK_ON_ERROR,
    )
    async def take_tick(_: bytes, message: KafkaMessage) -> None:
        """Take a schedule tick on (once, however many replicas and schedulers) and start its sweep."""
        record: ConsumerRecord = message.raw_message

        async def work() -> str:
            return await service.handle_tick(deps, sweeps, ReconcileTick.from_bytes(record.value or b""))

        metrics.TICKS.labels(await guarded(record, topics.RECONCILE_TICKS.name, work)).inc()

    # Reads bytes: a request that does not parse is dead-lettered (with_retries), not redelivered forever.
    @router.subscriber(
        topics.RECONCILE_REQUESTS.name,
        group_id=f"{settings.group_id}-requests",
        auto_offset_reset=settings.auto_offset_reset,
        ack_policy=AckPolicy.NACK_ON_ERROR,
    )
    async def take_request(_: bytes, message: KafkaMessage) -> None:
        """Start a targeted check with the gateways (or replay the reply of one already answered)."""
        record: ConsumerRecord = message.raw_message

        async def work() -> str:
            request = ReconcileRequest.from_bytes(record.value or b"")
            outcome = await service.handle_request(deps, checks, request)
            metrics.REQUESTS.labels(request.kind, outcome).inc()
            return outcome

        await guarded(record, topics.RECONCILE_REQUESTS.name, work)

    return router
