"""pytest plugin: services as OS processes for integration tests (status-projector, reconciler), and waits.

Register with `-p paysync_dev.service_fixtures`. A test that starts the reconciler points its tenants
at the gateway simulator (`paysync_dev.fixtures.create_gateway_tenant` with `gateway_sim`).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiokafka.admin import AIOKafkaAdminClient
from sqlalchemy.ext.asyncio import AsyncEngine

from paysync_core import topics
from paysync_core.contracts import PaymentObservation
from paysync_core.db.engine import make_engine
from paysync_core.domain.status import UnifiedStatus
from paysync_core.kafka import DurableProducer
from paysync_dev.stack import SERVICES, ServiceProcess, free_port
from paysync_dev.topic_reader import commit_group_at_end


def unique(prefix: str) -> str:
    """An id nothing else in this session uses."""
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


async def fetch(engine: AsyncEngine, statement: Any) -> list[Any]:
    """Rows of a query."""
    async with engine.connect() as conn:
        return list(await conn.execute(statement))


async def wait_until(
    check: Callable[[], Awaitable[bool]], timeout: float, what: str, every: float = 0.25
) -> None:
    """Poll until `check()` holds; fail with `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(every)


async def wait_for_groups(bootstrap: str, groups: dict[str, int], timeout: float = 90.0) -> None:
    """Wait until each consumer group is stable with at least the given number of members.

    Generous: on a loaded host a join, and the rebalance each further replica's join causes, can
    take 10-30 s.
    """
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        deadline = time.monotonic() + timeout
        while True:
            ready = True
            for group, members in groups.items():
                for response in await admin.describe_consumer_groups([group]):
                    for described in response.groups:
                        state, found = described[2], described[5]
                        ready &= state == "Stable" and len(found) >= members
            if ready:
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"consumer groups not stable after {timeout}s: {groups}")
            await asyncio.sleep(0.2)
    finally:
        await admin.close()


@dataclass
class Service:
    """A service process and a reader of its Prometheus metrics."""

    process: ServiceProcess
    group_id: str

    def metric(self, name: str, **labels: str) -> float:
        """The sum of a metric's samples whose labels include `labels`."""
        return metric(self.process.url, name, **labels)

    async def wait_for_metric(
        self, name: str, value: float, what: str, timeout: float = 60.0, **labels: str
    ) -> None:
        """Wait until the metric's sum is `value`: services count after they store what they count, so a
        read right after seeing the work's effect can come before the count."""

        async def reached() -> bool:
            return self.metric(name, **labels) == value

        await wait_until(reached, timeout, what)


def metric(url: str, name: str, **labels: str) -> float:
    """The sum of the samples of metric `name` whose labels include `labels`, read from `url`/metrics."""
    return metric_in(httpx.get(f"{url}/metrics", timeout=5).text, name, **labels)


def metric_in(exposition: str, name: str, **labels: str) -> float:
    """The sum of the samples of metric `name` whose labels include `labels`, in a `/metrics` text."""
    total = 0.0
    for line in exposition.splitlines():
        if not line.startswith(name) or line.startswith("#"):
            continue
        head, _, value = line.rpartition(" ")
        if all(f'{k}="{v}"' in head for k, v in labels.items()) and head.split("{")[0] == name:
            total += float(value)
    return total


async def publish(bootstrap: str, topic: str, key: bytes, value: bytes) -> None:
    """Publish one record and wait for the broker's acknowledgement."""
    producer = DurableProducer(bootstrap, client_id="paysync-tests")
    await producer.start()
    try:
        await producer.send(topic, key, value)
    finally:
        await producer.stop()


async def publish_observation(bootstrap: str, obs: PaymentObservation) -> None:
    """Put an observation on the observations topic, as the normalizer would."""
    spec = topics.PAYMENT_OBSERVATIONS
    await publish(bootstrap, spec.name, spec.key_for(obs), obs.to_bytes())


def stripe_paid(
    tenant: str, ref: str, amount_minor: int = 12500, mode: str | None = None
) -> PaymentObservation:
    """A verified Stripe "paid" in USD, seen now (in `mode`, if given), as the normalizer would publish it."""
    now = datetime.now(UTC)
    return PaymentObservation(
        observation_id=f"evt_{uuid.uuid4().hex}",
        tenant=tenant,
        provider="stripe",
        provider_ref=ref,
        status=UnifiedStatus.SUCCEEDED,
        amount_minor=amount_minor,
        currency="USD",
        provider_time=now,
        source="webhook",
        verified=True,
        observed_at=now,
        mode=mode,
    )


def service_env(kafka_bootstrap: str, database_url: str, credentials_keys: str) -> dict[str, str]:
    """The settings every service of a test session shares."""
    return {
        "PAYSYNC_KAFKA_BOOTSTRAP": kafka_bootstrap,
        "PAYSYNC_DATABASE_URL": database_url,
        "PAYSYNC_CREDENTIALS_KEYS": credentials_keys,
        "PAYSYNC_LOG_LEVEL": "INFO",
    }


def consumer_env(service: str, group: str, shared: dict[str, str], **settings: object) -> dict[str, str]:
    """`shared` plus one service's own consumer group, read from now on, and its `settings` as env.

    Give the group its offsets first (`start_groups_at_end`): "latest" alone is looked up only once
    the group is assigned, which can come after a record the test has already published.
    """
    prefix = SERVICES[service][1]
    own = {"group_id": group, "auto_offset_reset": "latest", **settings}
    return {**shared, **{f"{prefix}{name.upper()}": str(value) for name, value in own.items()}}


async def start_groups_at_end(bootstrap: str, groups: dict[str, str]) -> None:
    """Commit each new consumer group (group → its topic) at the topic's current end, before it joins.

    A group with no offsets finds "latest" only after it joined and was assigned its partitions (and
    again for a partition that moves to another replica before a commit): on a loaded host that can
    come after the test published, and the record is never read. Committed offsets leave no such gap.
    """
    for group, topic in groups.items():
        await commit_group_at_end(bootstrap, group, topic)


def reconciler_groups(group: str) -> dict[str, str]:
    """The reconciler's two consumer groups (ticks, requests) named after `group`, with their topics."""
    return {group: topics.RECONCILE_TICKS.name, f"{group}-requests": topics.RECONCILE_REQUESTS.name}


@contextmanager
def running(name: str, env: dict[str, str], log: Path) -> Iterator[ServiceProcess]:
    """A service as its own process on a free port, ready when entered and stopped on exit."""
    process = ServiceProcess(name, free_port(), env, log)
    process.start()
    try:
        process.wait_ready()
        yield process
    finally:
        process.stop()


@pytest.fixture(scope="session")
async def engine(migrated_database: str) -> AsyncIterator[AsyncEngine]:
    """An engine on the session's migrated database."""
    eng = make_engine(migrated_database, pool_size=4)
    yield eng
    await eng.dispose()


@pytest.fixture(scope="module")
def projector(
    kafka_topics: str, migrated_database: str, credentials_keys: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Service]:
    """The status-projector, its own process and consumer group, for this module's tests."""
    group = unique("projector-for-tests")
    asyncio.run(start_groups_at_end(kafka_topics, {group: topics.PAYMENT_OBSERVATIONS.name}))
    shared = service_env(kafka_topics, migrated_database, credentials_keys)
    env = consumer_env("status-projector", group, shared, unpark_poll_seconds=0.5, drift_check_seconds=3600)
    log = tmp_path_factory.mktemp("projector") / "status-projector.log"
    with running("status-projector", env, log) as process:
        asyncio.run(wait_for_groups(kafka_topics, {group: 1}))
        yield Service(process, group)


#: Server limits short enough that tests of idle and slow connections finish quickly.
QUICK_SERVER_LIMITS = {"PAYSYNC_HTTP_HEADER_TIMEOUT_SECONDS": "1", "PAYSYNC_HTTP_KEEP_ALIVE_SECONDS": "1"}


@pytest.fixture(scope="module")
def webhook_ingest(
    kafka_topics: str, migrated_database: str, credentials_keys: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServiceProcess]:
    """webhook-ingest as its own process (no normalizer), with quick server limits and quarantine expiry.

    Its metrics are on a port of their own (`PAYSYNC_HTTP_METRICS_PORT`, in `process.env`), as in compose.
    """
    env = {
        **service_env(kafka_topics, migrated_database, credentials_keys),
        **QUICK_SERVER_LIMITS,
        "PAYSYNC_HTTP_METRICS_PORT": str(free_port()),
        "PAYSYNC_WEBHOOK_INGEST_RUN_NORMALIZER": "false",
        "PAYSYNC_WEBHOOK_INGEST_QUARANTINE_EXPIRY_EVERY_SECONDS": "0.5",
        "PAYSYNC_WEBHOOK_INGEST_QUARANTINE_EXPIRY_BATCH": "2",
    }
    with running(
        "webhook-ingest", env, tmp_path_factory.mktemp("webhook-ingest") / "webhook-ingest.log"
    ) as process:
        yield process


@pytest.fixture
def start_reconciler(
    kafka_topics: str, migrated_database: str, credentials_keys: str, tmp_path: Path
) -> Iterator[Callable[..., Awaitable[list[Service]]]]:
    """Start N reconciler replicas (one consumer group of this test's own) with settings given as env.

    Keep its scheduler to the test's own tenants (`scheduler_tenants=…`) or off
    (`scheduler_enabled="false"`): the session's database holds other tests' tenants too.
    """
    started: list[ServiceProcess] = []

    async def start(count: int = 1, **settings: object) -> list[Service]:
        group = unique("reconciler")
        await start_groups_at_end(kafka_topics, reconciler_groups(group))
        shared = service_env(kafka_topics, migrated_database, credentials_keys)
        env = consumer_env("reconciler", group, shared, **{"base_delay": 0.02, "max_delay": 0.2, **settings})
        services = []
        for n in range(count):
            process = ServiceProcess(
                "reconciler",
                free_port(),
                {**env, "PAYSYNC_RECONCILER_INSTANCE_ID": f"{group}-{n}"},
                tmp_path / f"reconciler-{n}.log",
            )
            process.start()
            started.append(process)
            services.append(Service(process, group))
        for service in services:
            await asyncio.to_thread(service.process.wait_ready)
        await wait_for_groups(kafka_topics, dict.fromkeys(reconciler_groups(group), count))
        return services

    yield start
    for process in started:
        process.stop()
