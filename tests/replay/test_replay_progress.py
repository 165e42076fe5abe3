"""A real replay's wait on the projector's committed offsets, on a broker of the test's own.

The broker is new: no consumer group has ever committed on it, so it has no `__consumer_offsets`
topic yet, and its first coordinator lookup answers "coordinator not available" while it creates one
(as on a new cluster, or while a coordinator moves after a broker restart). That is a reason to ask
again, not to fail the replay.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.structs import TopicPartition

from paysync_cli.replay_progress import ProjectorOffsets
from paysync_core import topics
from paysync_dev.fixtures import broker_of_its_own
from paysync_dev.kafka import KafkaProcess

pytestmark = pytest.mark.integration

GROUP = "paysync-status-projector"
TOPIC = topics.PAYMENT_OBSERVATIONS.name


@pytest.fixture
def new_broker(tmp_path: Path) -> Iterator[KafkaProcess]:
    """A broker of this test alone, with the observation topic and nothing else."""
    with broker_of_its_own(tmp_path / "kafka", [topics.PAYMENT_OBSERVATIONS]) as broker:
        yield broker


async def commit_as_the_projector(bootstrap: str, offsets: dict[int, int]) -> None:
    """Commit `offsets` (partition: next offset) for the projector's group, as it does after a batch."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=GROUP, enable_auto_commit=False)
    await consumer.start()
    try:
        consumer.assign([TopicPartition(TOPIC, p) for p in offsets])
        await consumer.commit({TopicPartition(TOPIC, p): offset for p, offset in offsets.items()})
    finally:
        await consumer.stop()


@pytest.fixture
async def progress(new_broker: KafkaProcess) -> AsyncIterator[ProjectorOffsets]:
    """What a real replay asks the broker about the projector's group, connected to the new broker."""
    offsets = ProjectorOffsets(new_broker.bootstrap, GROUP)
    await offsets.start()
    yield offsets
    await offsets.stop()


async def test_a_group_not_committed_yet_is_waited_for_on_a_new_broker(
    new_broker: KafkaProcess, progress: ProjectorOffsets
) -> None:
    assert not await progress.reached(TOPIC, {0: 3, 1: 2})

    await commit_as_the_projector(new_broker.bootstrap, {0: 3})
    assert not await progress.reached(TOPIC, {0: 3, 1: 2}), "partition 1 is not committed yet"

    await commit_as_the_projector(new_broker.bootstrap, {1: 2})
    assert await progress.reached(TOPIC, {0: 3, 1: 2})
    assert not await progress.reached(TOPIC, {0: 4})


async def test_a_broker_gone_away_is_waited_for_and_named(
    new_broker: KafkaProcess, progress: ProjectorOffsets
) -> None:
    await commit_as_the_projector(new_broker.bootstrap, {0: 1})
    assert await progress.reached(TOPIC, {0: 1})
    assert progress.unanswered is None

    new_broker.stop()
    assert not await progress.reached(TOPIC, {0: 1})
    assert progress.unanswered is not None, "the replay's stall message names the broker's answer"
