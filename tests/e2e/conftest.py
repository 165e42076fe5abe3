"""End-to-end fixtures: the five services as separate processes against the real broker and database."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from paysync_dev.stack import ServiceProcess, start_stack, stop_stack


@pytest.fixture(scope="module")
def stack(
    kafka_topics: str, migrated_database: str, credentials_keys: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, ServiceProcess]]:
    """All five services, each its own OS process, ready; stopped after the module."""
    env = {
        "PAYSYNC_KAFKA_BOOTSTRAP": kafka_topics,
        "PAYSYNC_DATABASE_URL": migrated_database,
        "PAYSYNC_CREDENTIALS_KEYS": credentials_keys,
        "PAYSYNC_LOG_LEVEL": "INFO",
    }
    log_dir: Path = tmp_path_factory.mktemp("service-logs")
    procs = start_stack(env, log_dir)
    yield procs
    stop_stack(procs)
