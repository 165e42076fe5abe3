"""The normalizer's lag gauge outlives a broker that is away, and shows no lag it cannot measure.

The broker is the test's own (it is stopped and started here); the watcher is `watch_normalizer_lag`,
the background loop webhook-ingest runs beside the normalizer.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from paysync_core import kafka, topics
from paysync_dev.fixtures import broker_of_its_own
from paysync_dev.kafka import KafkaProcess
from paysync_dev.logs import captured_logs
from paysync_dev.service_fixtures import wait_until
from paysync_webhook_ingest import lag
from paysync_webhook_ingest.lag import watch_normalizer_lag
from paysync_webhook_ingest.metrics import NORMALIZER_LAG

pytestmark = pytest.mark.integration

RAW = TopicPartition(topics.WEBHOOKS_RAW.name, 0)


@pytest.fixture
def raw_broker(tmp_path: Path) -> Iterator[KafkaProcess]:
    """A broker of this test's own with the raw topic."""
    with broker_of_its_own(tmp_path / "kafka", [topics.WEBHOOKS_RAW]) as broker:
        yield broker


async def behind_by(bootstrap: str, group: str, records: int) -> None:
    """`records` + 1 raw records on partition 0, of which `group` has committed the first."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        for n in range(records + 1):
            await producer.send_and_wait(RAW.topic, f"raw {n}".encode(), partition=RAW.partition)
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    await consumer.start()
    try:
        consumer.assign([RAW])
        await consumer.commit({RAW: 1})
    finally:
        await consumer.stop()


def shown_lag() -> dict[str, float]:
    """The gauge's series as /metrics shows them: partition -> records behind."""
    [family] = NORMALIZER_LAG.collect()
    return {sample.labels["partition"]: sample.value for sample in family.samples}


async def test_the_lag_is_shown_once_the_broker_answers_and_not_while_it_cannot(
    raw_broker: KafkaProcess,
) -> None:
    group = f"normalizer-{uuid.uuid4().hex[:8]}"
    await behind_by(raw_broker.bootstrap, group, 2)
    await asyncio.to_thread(raw_broker.stop)
    with captured_logs(kafka, lag) as logs:
        task = asyncio.create_task(watch_normalizer_lag(raw_broker.bootstrap, group, every=0.1))

        def alive() -> None:
            if task.done():
                raise AssertionError("the lag watcher ended") from task.exception()

        async def tried_twice() -> bool:
            alive()
            return sum(entry["event"] == "lag.waiting_for_broker" for entry in logs) >= 2

        async def lag_is(expected: dict[str, float]) -> bool:
            alive()
            return shown_lag() == expected

        try:
            await wait_until(tried_twice, 30, "the watcher trying the broker again")
            assert shown_lag() == {}, "no lag is shown before it could be measured"

            await asyncio.to_thread(raw_broker.start)
            await wait_until(lambda: lag_is({"0": 2}), 60, "the group's lag on partition 0")

            await asyncio.to_thread(raw_broker.stop)
            await wait_until(lambda: lag_is({}), 30, "no lag shown while the broker cannot answer")
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
    assert any(entry["event"] == "lag.unknown" and entry["log_level"] == "warning" for entry in logs)
