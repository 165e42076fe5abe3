"""The notifier as its own process, a producer of status changes, and a way to start more replicas."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from paysync_core.kafka import DurableProducer
from paysync_dev.service_fixtures import Service, service_env, unique
from paysync_dev.smtp_sink import SmtpSink
from paysync_dev.stack import ServiceProcess, free_port

#: Small, so a client that stops reading fills its queue after a modest number of events.
QUEUE = 20


@dataclass
class Notifier:
    """A running notifier and the internal token it accepts."""

    service: Service
    token: str

    @property
    def url(self) -> str:
        return self.service.process.url

    def stream_url(self, tenant: str) -> str:
        return f"{self.url}/internal/stream/{tenant}"

    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


def notifier_env(
    kafka_topics: str, migrated_database: str, credentials_keys: str, token: str
) -> dict[str, str]:
    """A notifier's environment: the session's servers, an internal token, a small subscriber queue."""
    return {
        **service_env(kafka_topics, migrated_database, credentials_keys),
        "PAYSYNC_INTERNAL_TOKEN": token,
        "PAYSYNC_NOTIFIER_SUBSCRIBER_QUEUE": str(QUEUE),
        # Long, so that what cuts a stalled client off here is its full queue, not its blocked send.
        "PAYSYNC_NOTIFIER_SEND_TIMEOUT_SECONDS": "600",
    }


@pytest.fixture(scope="module")
def notifier_process(
    kafka_topics: str, migrated_database: str, credentials_keys: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Notifier]:
    """A notifier with an internal token and a small subscriber queue, ready."""
    token = secrets.token_urlsafe(32)
    env = notifier_env(kafka_topics, migrated_database, credentials_keys, token)
    log_path = tmp_path_factory.mktemp("notifier") / "notifier.log"
    process = ServiceProcess("notifier", free_port(), env, log_path)
    process.start()
    try:
        process.wait_ready()
        yield Notifier(Service(process, "paysync-notifier"), token)
    finally:
        process.stop()


@pytest.fixture
def launch_notifiers(
    kafka_topics: str, migrated_database: str, credentials_keys: str, tmp_path: Path
) -> Iterator[Callable[..., Awaitable[list[Service]]]]:
    """`await launch_notifiers(count, env=…, **settings)`: notifier processes, ready, stopped at the end.

    `settings` become `PAYSYNC_NOTIFIER_<NAME>` variables; `env` adds any other variable.
    """
    started: list[ServiceProcess] = []

    async def launch(
        count: int = 1, *, env: dict[str, str] | None = None, **settings: object
    ) -> list[Service]:
        full = {
            **service_env(kafka_topics, migrated_database, credentials_keys),
            **(env or {}),
            **{f"PAYSYNC_NOTIFIER_{name.upper()}": str(value) for name, value in settings.items()},
        }
        group = str(settings.get("group_id", "paysync-notifier"))
        services = []
        for _ in range(count):
            process = ServiceProcess("notifier", free_port(), full, tmp_path / f"notifier-{len(started)}.log")
            process.start()
            started.append(process)
            services.append(Service(process, group))
        await asyncio.gather(*(asyncio.to_thread(s.process.wait_ready) for s in services))
        return services

    yield launch
    for process in started:
        process.stop()


@pytest.fixture
def start_notifier(
    launch_notifiers: Callable[..., Awaitable[list[Service]]],
    kafka_topics: str,
    migrated_database: str,
    credentials_keys: str,
) -> Callable[..., Awaitable[Notifier]]:
    """`await start_notifier(token, **settings)`: another notifier replica (settings as env), ready."""

    async def start(token: str, **settings: object) -> Notifier:
        env = notifier_env(kafka_topics, migrated_database, credentials_keys, token)
        [service] = await launch_notifiers(env=env, **settings)
        return Notifier(service, token)

    return start


@pytest.fixture
async def producer(kafka_topics: str) -> AsyncIterator[DurableProducer]:
    """A producer of status changes, as the projector's relay."""
    producer = DurableProducer(kafka_topics, client_id="paysync-tests")
    await producer.start()
    yield producer
    await producer.stop()


@pytest.fixture
def start_notifiers(
    launch_notifiers: Callable[..., Awaitable[list[Service]]], smtp_sink: SmtpSink
) -> Callable[..., Awaitable[list[Service]]]:
    """Start N notifier replicas (one consumer group of this test's own) sending mail to the sink.

    The rules on status changes are off unless a test turns them on (`alert_rules_enabled=True`):
    they resolve the open issues of their kinds they do not find, which tests that open issues of
    every kind by hand would see as a race.
    """

    async def start(count: int = 1, **settings: object) -> list[Service]:
        own = {
            "group_id": unique("notifier"),
            "smtp_host": smtp_sink.host,
            "smtp_port": smtp_sink.port,
            "console_url": "https://console.example",
            "alerts_poll_seconds": 0.2,
            "alerts_digest_window_seconds": 0,
            "alerts_retry_base_seconds": 0.2,
            "alerts_retry_max_seconds": 1,
            "alert_rules_enabled": False,
        }
        return await launch_notifiers(count, **(own | settings))

    return start
