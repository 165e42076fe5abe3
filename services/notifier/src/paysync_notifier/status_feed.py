"""The live stream's feed: every partition of `paysync.payment-status.v1`, read by this replica alone.

No consumer group and no committed offsets: each replica assigns itself every partition, so each
sees every change (its clients are its own), at the positions every other replica sees. On start
it reads back the retained window (`resume_window_seconds`, at most `resume_events_per_partition`
per partition), so a client resuming after a restart, or through another replica, is served
from where it was.

A broker that cannot be reached while the feed starts is tried again (`until_broker_answers`: a
warning each time, pauses growing to a few seconds) until it answers; meanwhile the stream is not
`ready` (the notifier's `/readyz` says `live_feed`), and the loop lives on. One that goes away once
the feed is reading is aiokafka's to reconnect to: the feed reads on from where it was.
"""

from __future__ import annotations

import asyncio
import time

import structlog
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.structs import ConsumerRecord
from pydantic import ValidationError

from paysync_core import topics, tracing
from paysync_core.contracts import PaymentStatusChanged
from paysync_core.kafka import until_broker_answers
from paysync_notifier.service import LiveStream, StreamEvent

log = structlog.get_logger()

#: How often the feed asks for the topic's partitions while the topic is not there yet (seconds).
_METADATA_RETRY_SECONDS = 1.0
#: What the feed logs, as a warning, each time the broker did not answer while it starts.
_WAITING = "stream.feed_waiting_for_broker"


class StatusFeed:
    """Reads the status-change topic from the start of the retained window into a `LiveStream`."""

    def __init__(
        self, bootstrap: str, stream: LiveStream, *, window_seconds: float, per_partition: int
    ) -> None:
        self._bootstrap, self._stream = bootstrap, stream
        self._window_seconds, self._per_partition = window_seconds, per_partition

    async def run(self) -> None:
        """Feed the stream until cancelled (a background loop of the service)."""
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self._bootstrap,
            client_id="paysync-notifier-live",
            group_id=None,
            enable_auto_commit=False,
        )
        try:
            await until_broker_answers(consumer.start, _WAITING)
            await until_broker_answers(lambda: self._seek_to_window(consumer), _WAITING)
            while True:
                batch = await consumer.getmany(timeout_ms=1000)
                for records in batch.values():
                    for record in records:
                        self._feed(record)
        finally:
            await consumer.stop()

    async def _seek_to_window(self, consumer: AIOKafkaConsumer) -> None:
        topic = topics.PAYMENT_STATUS.name
        while not (found := consumer.partitions_for_topic(topic)):
            await consumer._client.force_metadata_update()  # aiokafka has no public call for this
            if not consumer.partitions_for_topic(topic):
                await asyncio.sleep(_METADATA_RETRY_SECONDS)
        partitions = [TopicPartition(topic, p) for p in sorted(found)]
        consumer.assign(partitions)
        ends = await consumer.end_offsets(partitions)
        # Records before the log's start are gone (retention): the window cannot reach before it.
        firsts = await consumer.beginning_offsets(partitions)
        window_start_ms = int((time.time() - self._window_seconds) * 1000)
        by_time = await consumer.offsets_for_times({tp: window_start_ms for tp in partitions})
        starts = {}
        for tp in partitions:
            at_time = by_time[tp].offset if by_time[tp] is not None else ends[tp]
            starts[tp] = max(at_time, ends[tp] - self._per_partition, firsts[tp])
            consumer.seek(tp, starts[tp])
        self._stream.start_at(
            {tp.partition: o for tp, o in starts.items()}, {tp.partition: o for tp, o in ends.items()}
        )
        log.info("stream.feed_started", retained=sum(ends[tp] - starts[tp] for tp in partitions))

    def _feed(self, record: ConsumerRecord) -> None:
        try:
            change = PaymentStatusChanged.model_validate_json(record.value)
        except ValidationError:
            log.error("stream.unreadable_change", partition=record.partition, offset=record.offset)
            self._stream.skip(record.partition, record.offset)
            return
        # With tracing on, the fan-out is a span of the change's trace, and each client's send continues it.
        with tracing.consumed(record):
            log.debug("stream.event_fed", tenant=change.tenant, payment_id=change.payment_id)
            self._stream.publish(
                StreamEvent(
                    partition=record.partition,
                    offset=record.offset,
                    tenant=change.tenant,
                    domain=change.domain,
                    entity_id=change.entity_id,
                    changed_at=change.changed_at,
                    timestamp_ms=record.timestamp,
                    data=change.model_dump_json(exclude_none=True),
                    traceparent=tracing.traceparent(),
                )
            )
