"""The `paysync` command as an operator runs it: a process against the session's broker and database."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable
from typing import Any

import pytest

from paysync_dev.operator import PAYSYNC
from paysync_dev.service_fixtures import service_env


@pytest.fixture
def paysync(
    kafka_topics: str, migrated_database: str, credentials_keys: str, request: pytest.FixtureRequest
) -> Callable[..., subprocess.CompletedProcess[str]]:
    """Run `paysync …` as a process (`settings`: environment variables to add); its output and exit code.

    In a test with the `projector` fixture, a real replay waits on that projector's consumer group.
    """
    env = {**os.environ, **service_env(kafka_topics, migrated_database, credentials_keys)}
    if "projector" in request.fixturenames:
        env["PAYSYNC_REPLAY_PROJECTOR_GROUP_ID"] = request.getfixturevalue("projector").group_id

    def run(*args: str, settings: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        command = [str(PAYSYNC), *args]
        environment = {**env, **(settings or {})}
        return subprocess.run(command, env=environment, capture_output=True, text=True, timeout=300)

    return run


@pytest.fixture
def cli(paysync: Callable[..., subprocess.CompletedProcess[str]]) -> Callable[..., Any]:
    """Run `paysync … --json`; its JSON output, after asserting it exited 0."""

    def run(*args: str, settings: dict[str, str] | None = None) -> Any:
        done = paysync(*args, settings=settings)
        assert done.returncode == 0, f"paysync {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
        return json.loads(done.stdout)

    return run
