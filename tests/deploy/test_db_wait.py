"""`paysync db wait`, the initContainer of every Deployment in deploy/k8s, run as a process.

It must hold a pod back until the migration Job has migrated the schema and provisioned the topics,
and let it go as soon as both are done.
"""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from collections.abc import Iterator

import pytest

from paysync_core.db.engine import upgrade
from paysync_dev import postgres
from paysync_dev.operator import PAYSYNC
from paysync_dev.service_fixtures import service_env
from paysync_gateway_sim.process import free_port

pytestmark = pytest.mark.integration


@pytest.fixture
def empty_database(database_url: str) -> Iterator[str]:
    """A database of its own with no schema at all, as before the migration Job ran."""
    name = f"paysync_test_{uuid.uuid4().hex[:10]}"
    url = postgres.create_database(name, base_url=database_url)
    yield url
    postgres.drop_database(name, base_url=database_url)


def wait_command(*args: str) -> list[str]:
    return [str(PAYSYNC), "db", "wait", "--json", "--interval", "0.2", *args]


def look_once(env: dict[str, str]) -> tuple[int, dict]:
    """`paysync db wait --timeout 0`: its exit code and its JSON."""
    command = wait_command("--timeout", "0")
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    return done.returncode, json.loads(done.stdout)


def test_it_waits_for_the_migrations_and_returns_once_they_are_done(
    empty_database: str, kafka_topics: str, credentials_keys: str
) -> None:
    env = {**os.environ, **service_env(kafka_topics, empty_database, credentials_keys)}
    before = subprocess.run(
        wait_command("--timeout", "0"), env=env, capture_output=True, text=True, timeout=120
    )
    assert before.returncode == 1  # the topics are there, the schema is not: a pod is held back
    assert json.loads(before.stdout)["schema"] is None
    waiter = subprocess.Popen(
        wait_command("--timeout", "600"), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        upgrade(empty_database)  # what the Job's `paysync db upgrade` does
        out, err = waiter.communicate(timeout=120)
    finally:
        waiter.kill()
    assert waiter.returncode == 0, err
    outcome = json.loads(out)
    assert outcome["ready"] is True and outcome["schema"] == outcome["head"]
    assert outcome["missing_topics"] == []


def test_it_gives_up_naming_what_is_missing(empty_database: str, credentials_keys: str) -> None:
    nowhere = f"127.0.0.1:{free_port()}"  # a broker with no topics: none answers there
    env = {**os.environ, **service_env(nowhere, empty_database, credentials_keys)}
    done = subprocess.run(
        wait_command("--timeout", "0"), env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 1
    outcome = json.loads(done.stdout)
    assert outcome["ready"] is False and outcome["schema"] is None
    assert "paysync.webhooks.raw.v1" in outcome["missing_topics"]


def test_a_migrated_schema_without_its_topics_is_not_ready(
    migrated_database: str, credentials_keys: str
) -> None:
    nowhere = f"127.0.0.1:{free_port()}"
    env = {**os.environ, **service_env(nowhere, migrated_database, credentials_keys)}
    done = subprocess.run(
        wait_command("--timeout", "0"), env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 1, done.stderr
    outcome = json.loads(done.stdout)
    assert outcome["schema"] == outcome["head"] and outcome["missing_topics"]
