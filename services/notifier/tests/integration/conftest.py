"""Fixtures the notifier's integration tests share."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from paysync_core.kafka import DurableProducer


@pytest.fixture
async def producer(kafka_topics: str) -> AsyncIterator[DurableProducer]:
    """A producer of status changes, as the projector's relay."""
    producer = DurableProducer(kafka_topics, client_id="paysync-tests")
    await producer.start()
    yield producer
    await producer.stop()
