"""Fixtures of the projector's end-to-end tests; the fleet and stream helpers are plain functions in
`paysync_dev.projector_fleet`."""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from paysync_core import topics
from paysync_dev.projector_fleet import Fleet
from paysync_dev.topic_reader import commit_group_at_end


@pytest.fixture
def fleet(kafka_topics: str, migrated_database: str, tmp_path: Path) -> Iterator[Fleet]:
    """A consumer group of its own, starting at the current end of the observations topic."""
    group = f"projector-test-{uuid.uuid4().hex[:10]}"
    asyncio.run(commit_group_at_end(kafka_topics, group, topics.PAYMENT_OBSERVATIONS.name))
    env = {
        "PAYSYNC_KAFKA_BOOTSTRAP": kafka_topics,
        "PAYSYNC_DATABASE_URL": migrated_database,
        "PAYSYNC_LOG_LEVEL": "INFO",
        "PAYSYNC_STATUS_PROJECTOR_GROUP_ID": group,
        "PAYSYNC_STATUS_PROJECTOR_SESSION_TIMEOUT_MS": "6000",
        "PAYSYNC_STATUS_PROJECTOR_HEARTBEAT_INTERVAL_MS": "500",
        "PAYSYNC_STATUS_PROJECTOR_UNPARK_POLL_SECONDS": "1",
        "PAYSYNC_STATUS_PROJECTOR_DRIFT_CHECK_SECONDS": "3600",
    }
    fleet = Fleet(env, tmp_path)
    yield fleet
    fleet.stop_all()


@pytest.fixture
def seed() -> int:
    """A random seed, printed so a failure can be replayed."""
    value = random.randrange(1_000_000)
    print(f"seed={value}")
    return value
