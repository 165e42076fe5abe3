"""The shared pytest plugin: a real Apache Kafka broker and a real PostgreSQL for every package.

Each server comes from, in order: an environment variable, a Docker engine (testcontainers),
or a local process started by paysync-dev. A test that needs a server and gets none fails.
"""

from __future__ import annotations

import functools
import logging
import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest

from paysync_dev import kafka, paths, postgres
from paysync_dev.http_receiver import http_receiver
from paysync_dev.smtp_sink import SmtpSink

__all__ = ["http_receiver"]  # a fixture: registered with this plugin

log = logging.getLogger(__name__)

KAFKA_BOOTSTRAP_ENV = kafka.BOOTSTRAP_ENV
# testcontainers' KafkaContainer drives Confluent's images only; 7.9.0 ships Apache Kafka 3.9.0.
KAFKA_IMAGE = "confluentinc/cp-kafka:7.9.0"
POSTGRES_IMAGE = "postgres:15"

T = TypeVar("T")

_used: dict[str, str] = {}


@functools.cache
def docker_available() -> bool:
    """Tell whether a Docker engine answers `docker info` quickly."""
    docker = shutil.which("docker")
    if docker is None:
        return False
    try:
        result = subprocess.run([docker, "info"], capture_output=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return result.returncode == 0


def _local_postgres_version() -> str | None:
    """Return `postgres --version` of the newest installed Debian server, if any."""
    versions = postgres.installed_versions()
    if not versions:
        return None
    binary = Path("/usr/lib/postgresql") / versions[-1] / "bin" / "postgres"
    result = subprocess.run([str(binary), "--version"], capture_output=True, text=True, check=False)
    return result.stdout.strip() or f"PostgreSQL {versions[-1]}"


def _kafka_header() -> str:
    """Describe, without starting anything, which Kafka the session will use."""
    if os.environ.get(KAFKA_BOOTSTRAP_ENV):
        return f"kafka: external broker ${KAFKA_BOOTSTRAP_ENV}={os.environ[KAFKA_BOOTSTRAP_ENV]}"
    if docker_available():
        return f"kafka: Docker container {KAFKA_IMAGE}, started on demand"
    jars = "" if paths.kafka_libs_dir().is_dir() else " (jars fetched on demand)"
    return (
        f"kafka: Apache Kafka {kafka.version()}{jars}, local KRaft broker on "
        "127.0.0.1 (a port of this checkout's own), started on demand"
    )


def _postgres_header() -> str:
    """Describe, without starting anything, which PostgreSQL the session will use."""
    if os.environ.get(postgres.DATABASE_URL_ENV):
        url = postgres.redact(os.environ[postgres.DATABASE_URL_ENV])
        return f"postgres: external ${postgres.DATABASE_URL_ENV}={url}"
    if docker_available():
        return f"postgres: Docker container {POSTGRES_IMAGE}, started on demand"
    installed = _local_postgres_version()
    if installed is None:
        return "postgres: local Debian package, installed with apt-get on demand"
    return f"postgres: local cluster, {installed}, started on demand"


def pytest_report_header(config: pytest.Config) -> list[str]:
    """Show which Kafka and PostgreSQL this session uses."""
    return [_kafka_header(), _postgres_header()]


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Show the servers the session actually used, with their versions."""
    for name in ("kafka", "postgres"):
        if name in _used:
            terminalreporter.write_line(f"{name}: {_used[name]}")


def _obtain(what: str, get: Callable[[], T]) -> T:
    """Return get(), or fail the requesting test (never skip) if the server cannot be had."""
    try:
        return get()
    except Exception as exc:  # noqa: BLE001 - any failure is reported by name and skips or fails the tests that need it
        failure = f"{what} is not available: {type(exc).__name__}: {exc}"
    pytest.fail(failure, pytrace=False)


def _external_kafka(bootstrap: str) -> str:
    """Check that the broker named by the environment answers."""
    if kafka.probe(bootstrap, timeout=10.0) is None:
        raise kafka.KafkaError(f"${KAFKA_BOOTSTRAP_ENV}={bootstrap} does not answer a Kafka admin call")
    _used["kafka"] = f"external broker at {bootstrap} (version not reported by the protocol)"
    return bootstrap


def _container_kafka() -> Iterator[str]:
    """Run Kafka in a Docker container for the session."""
    from testcontainers.community.kafka import KafkaContainer

    with KafkaContainer(KAFKA_IMAGE).with_kraft() as container:
        bootstrap = container.get_bootstrap_server()
        _used["kafka"] = f"{KAFKA_IMAGE} container at {bootstrap}"
        yield bootstrap


def _live_leases(leases: Path) -> list[Path]:
    """Return the lease files of test sessions that are still running, removing stale ones."""
    live = []
    for lease in leases.glob("*"):
        if lease.name.isdigit() and Path(f"/proc/{lease.name}").exists():
            live.append(lease)
        else:
            lease.unlink(missing_ok=True)
    return live


def _local_kafka() -> Iterator[str]:
    """Share the local test broker among concurrent sessions; the last one out stops it."""
    broker = kafka.test_broker()
    leases, lock = broker.base_dir / "sessions", broker.base_dir / ".sessions.lock"
    leases.mkdir(parents=True, exist_ok=True)
    with kafka.file_lock(lock):
        if not _live_leases(leases) and broker.pid() is None and not broker.answers():
            shutil.rmtree(broker.data_dir, ignore_errors=True)  # a new session, an empty broker
        (leases / str(os.getpid())).touch()
    try:
        began = time.monotonic()
        bootstrap = broker.start()
        took = time.monotonic() - began
        how = f"started by this session in {took:.1f} s" if broker.started_here else "shared"
        running = broker.running_version() or kafka.version()
        _used["kafka"] = f"Apache Kafka {running} at {bootstrap} (local KRaft broker, {how})"
        log.info("kafka: %s", _used["kafka"])
        yield bootstrap
    finally:
        with kafka.file_lock(lock):
            (leases / str(os.getpid())).unlink(missing_ok=True)
            if not _live_leases(leases):
                broker.stop()


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    """Bootstrap servers of a real Kafka broker for the whole session."""
    source = os.environ.get(KAFKA_BOOTSTRAP_ENV)
    if source:
        yield _obtain("Kafka", lambda: _external_kafka(source))
        return
    servers = _container_kafka() if docker_available() else _local_kafka()
    yield _obtain("Kafka", lambda: next(servers))
    next(servers, None)


def _container_postgres() -> Iterator[str]:
    """Run PostgreSQL in a Docker container for the session."""
    from testcontainers.community.postgres import PostgresContainer

    container = PostgresContainer(
        POSTGRES_IMAGE,
        username=postgres.ROLE,
        password=postgres.PASSWORD,
        dbname=postgres.DATABASE,
        driver="asyncpg",
    )
    with container:
        yield container.get_connection_url()


def _local_postgres() -> Iterator[str]:
    """Use the local packaged cluster, installing and starting it if needed."""
    yield postgres.ensure_postgres()


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    """SQLAlchemy URL (postgresql+asyncpg) of a real PostgreSQL database for the session."""
    source = os.environ.get(postgres.DATABASE_URL_ENV)
    if source:
        servers: Iterator[str] = iter([source])
    elif docker_available():
        servers = _container_postgres()
    else:
        servers = _local_postgres()
    url = _obtain("PostgreSQL", lambda: next(servers))
    version = _obtain("PostgreSQL", lambda: postgres.server_version(url))
    _used["postgres"] = f"{version.split(' on ')[0]} at {postgres.redact(url)}"
    log.info("postgres: %s", _used["postgres"])
    yield url
    next(servers, None)


@pytest.fixture
def fresh_database(database_url: str) -> Iterator[str]:
    """URL of a new, empty, uniquely named database on the session's server, dropped afterwards."""
    name = f"test_{uuid.uuid4().hex[:16]}"
    url = _obtain("a fresh database", lambda: postgres.create_database(name, database_url))
    yield url
    postgres.drop_database(name, database_url)


@pytest.fixture
def smtp_sink() -> Iterator[SmtpSink]:
    """A real SMTP server (aiosmtpd) on a free port that keeps every message it receives."""
    sink = SmtpSink()
    sink.start()
    yield sink
    sink.stop()
