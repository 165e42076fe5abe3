"""The subscriber that feeds app webhooks: status changes into delivery rows, in one shared group."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Literal, TypeVar

from aiokafka.structs import ConsumerRecord
from faststream import AckPolicy
from faststream.kafka import KafkaMessage, KafkaRouter

from paysync_core import topics, tracing
from paysync_core.contracts import PaymentStatusChanged
from paysync_core.dead_letters import DeadLettered, is_outage, with_retries
from paysync_core.publishers import TopicPublisher
from paysync_notifier.hooks import AppWebhooks

T = TypeVar("T")


def app_webhooks_router(
    hooks: AppWebhooks, group_id: str, offset_reset: Literal["earliest", "latest"]
) -> KafkaRouter:
    """Status changes to delivery rows; a batch is acknowledged only after its rows are committed."""
    router = KafkaRouter()
    intake = ChangeIntake(hooks, TopicPublisher(router, topics.PAYMENT_STATUS.dlq))

    # One group for every replica (unlike the live stream): each change is taken in once, by one of them.
    # In batches: one read of the endpoints, one insert and one offset commit for up to 500 changes,
    # where a record at a time cost each change a statement and a commit to the broker.
    # Reads bytes: a change that does not parse is dead-lettered, not redelivered forever.
    # The broker answers a fetch once it holds 64 KiB or 100 ms have passed, not at the first record:
    # an app's backend can wait 100 ms, and each fetch answered (and batch committed) costs the broker
    # and this process about as much whether it carries one change or a hundred.
    @router.subscriber(
        topics.PAYMENT_STATUS.name,
        group_id=f"{group_id}-app-webhooks",
        batch=True,
        max_records=500,
        batch_timeout_ms=50,
        fetch_min_bytes=64 * 1024,
        fetch_max_wait_ms=100,
        auto_offset_reset=offset_reset,
        ack_policy=AckPolicy.NACK_ON_ERROR,
    )
    async def queue_app_webhooks(_: list[bytes], message: KafkaMessage) -> None:
        """Queue each status change for each endpoint of its tenant that wants it (idempotent)."""
        await intake.take_in(message.raw_message)

    return router


class ChangeIntake:
    """Takes in a batch of status-change records: all at once, or one by one when one of them fails."""

    def __init__(self, hooks: AppWebhooks, dead_letters: TopicPublisher) -> None:
        self._hooks = hooks
        self._dead_letters = dead_letters

    async def take_in(self, records: Sequence[ConsumerRecord]) -> None:
        """Record the deliveries of every record's change; a record that does not parse is dead-lettered.

        If the batch's statements fail for a reason of their own (not an outage, which propagates and has
        the batch redelivered), each change is taken in on its own with bounded retries, so only the one
        at fault is dead-lettered; the others were added once (a change taken in again adds nothing).
        """
        spans = tracing.RecordSpans(topics.PAYMENT_STATUS.name)  # each change's span in its own trace
        for record in records:
            spans.start((record.partition, record.offset), record)
        try:
            await self._take_in_all(records)
        except BaseException as exc:
            spans.end(exc)
            raise
        spans.end()

    async def _take_in_all(self, records: Sequence[ConsumerRecord]) -> None:
        parsed: list[tuple[ConsumerRecord, PaymentStatusChanged]] = []
        for record in records:
            change = await self._parsed(record)
            if change is not None:
                parsed.append((record, change))
        try:
            await self._hooks.take_in([change for _, change in parsed])
        except Exception as exc:
            if is_outage(exc):
                raise
            for record, change in parsed:
                await self._one(record, change)

    async def _parsed(self, record: ConsumerRecord) -> PaymentStatusChanged | None:
        async def parse() -> PaymentStatusChanged:
            return PaymentStatusChanged.from_bytes(record.value or b"")

        try:
            return await self._retried(record, parse)
        except DeadLettered:
            return None

    async def _one(self, record: ConsumerRecord, change: PaymentStatusChanged) -> None:
        async def work() -> None:
            await self._hooks.take_in([change])

        try:
            await self._retried(record, work)
        except DeadLettered:
            return

    async def _retried(self, record: ConsumerRecord, work: Callable[[], Awaitable[T]]) -> T:
        return await with_retries(
            record, work, send_dead_letter=self._dead_letters.forward, service="notifier", max_attempts=3
        )
