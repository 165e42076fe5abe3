"""The reconciler's subscribers: schedule ticks and targeted check requests. Thin: decode, hand over."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from functools import partial

from aiokafka.structs import ConsumerRecord
from faststream import AckPolicy
from faststream.kafka import KafkaMessage, KafkaRouter

from paysync_core import topics, tracing
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
    # In batches of up to 100 (one offset commit each, not one per M-Pesa confirmation), each taken on
    # in turn in its own trace; an outage has the batch redelivered, whose requests taken on already
    # are then found busy (their checks run) or answered (their replies replayed).
    @router.subscriber(
        topics.RECONCILE_REQUESTS.name,
        group_id=f"{settings.group_id}-requests",
        batch=True,
        max_records=100,
        batch_timeout_ms=20,
        auto_offset_reset=settings.auto_offset_reset,
        ack_policy=AckPolicy.NACK_ON_ERROR,
    )
    async def take_requests(_: list[bytes], message: KafkaMessage) -> None:
        """Start targeted checks with the gateways (or replay the replies of ones already answered)."""

        async def take(record: ConsumerRecord) -> None:
            work = partial(_take_request, deps, checks, record)
            await guarded(record, topics.RECONCILE_REQUESTS.name, work)

        await _each_in_its_trace(message.raw_message, take)

    return router


async def _take_request(deps: Deps, checks: TaskRunner, record: ConsumerRecord) -> str:
    request = ReconcileRequest.from_bytes(record.value or b"")
    outcome = await service.handle_request(deps, checks, request)
    metrics.REQUESTS.labels(request.kind, outcome).inc()
    return outcome


async def _each_in_its_trace(
    records: Sequence[ConsumerRecord], take: Callable[[ConsumerRecord], Awaitable[None]]
) -> None:
    """Take each request of a batch on in turn, within its record's span (`tracing.RecordSpans`)."""
    spans = tracing.RecordSpans(topics.RECONCILE_REQUESTS.name)
    try:
        for record in records:
            at = (record.partition, record.offset)
            spans.start(at, record)
            with spans.current(at):
                await take(record)
    except BaseException as exc:
        spans.end(exc)
        raise
    spans.end()
