"""The reconciler and the status-projector as OS processes, the gateway simulator, a tenant pointing at it."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from aiokafka.admin import AIOKafkaAdminClient
from sqlalchemy import select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncEngine

from paysync_core import topics
from paysync_core.contracts import Alert, PaymentObservation, ReconcileReply, ReconcileRequest, payment_key
from paysync_core.credentials import (
    GatewayCredentials,
    MpesaCredentials,
    PaystackCredentials,
    StripeCredentials,
)
from paysync_core.crypto import CredentialsCipher
from paysync_core.db import REGISTERED_CHANNEL
from paysync_core.db import tenants as tenant_repo
from paysync_core.db.engine import make_engine
from paysync_core.db.schema import payment_refs, payments
from paysync_core.kafka import DurableProducer
from paysync_dev.stack import ServiceProcess, free_port
from paysync_dev.topic_reader import read_topic
from paysync_gateway_sim import SimulatorClient
from paysync_gateway_sim.contracts import Account

#: The namespace api-gateway derives payment ids in (paysync_api_gateway.repository.payment_id_for).
_PAYMENT_NAMESPACE = uuid.UUID("6f6e6c79-2d70-6179-7379-6e632d706179")


def unique(prefix: str) -> str:
    """An id nothing else in this session uses."""
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


@dataclass
class GatewayTenant:
    """A paysync tenant whose gateway credentials point at simulator accounts."""

    id: str
    accounts: dict[str, Account] = field(default_factory=dict)

    def account(self, provider: str) -> Account:
        """The simulator account of one gateway."""
        return self.accounts[provider]


async def create_gateway_tenant(
    engine: AsyncEngine,
    keys: str,
    sim: SimulatorClient,
    providers: tuple[str, ...] = ("stripe", "paystack", "mpesa"),
    *,
    rate_limits: dict[str, float | None] | None = None,
    faults: dict[str, dict[str, Any]] | None = None,
) -> GatewayTenant:
    """Simulator accounts (webhooks go nowhere: every one is lost) and a tenant configured for them."""
    tenant = GatewayTenant(f"t-{uuid.uuid4().hex[:12]}")
    limits = rate_limits or {}
    for provider in providers:
        spec: dict[str, Any] = {"id": unique(provider)}
        if provider in limits:
            spec["rate_limit"] = limits[provider]
        account = sim.create_account(provider, **spec)
        if faults and provider in faults:
            account = sim.set_faults(account.id, **faults[provider])
        tenant.accounts[provider] = account
    creds = GatewayCredentials(
        stripe=StripeCredentials(
            secret_key=tenant.accounts["stripe"].secret_key or "",
            webhook_secrets=("whsec_unused",),
            api_base=sim.stripe_base,
        )
        if "stripe" in providers
        else None,
        paystack=PaystackCredentials(
            secret_key=tenant.accounts["paystack"].secret_key or "", api_base=sim.paystack_base
        )
        if "paystack" in providers
        else None,
        mpesa=MpesaCredentials(
            consumer_key=tenant.accounts["mpesa"].consumer_key or "",
            consumer_secret=tenant.accounts["mpesa"].consumer_secret or "",
            shortcode=tenant.accounts["mpesa"].shortcode or "",
            passkey=tenant.accounts["mpesa"].passkey or "",
            callback_token=uuid.uuid4().hex,
            api_base=sim.daraja_base,
        )
        if "mpesa" in providers
        else None,
    )
    async with engine.begin() as conn:
        await tenant_repo.create_tenant(conn, tenant.id, "reconciler test")
        await tenant_repo.set_credentials(conn, tenant.id, creds, CredentialsCipher(keys))
    return tenant


async def register(
    engine: AsyncEngine,
    tenant: str,
    provider: str,
    ref: str,
    *,
    domain: str | None = None,
    entity_id: str | None = None,
    amount_minor: int | None = 2000,
    currency: str | None = "USD",
) -> uuid.UUID:
    """Insert payments + payment_refs and NOTIFY paysync_registered, as api-gateway's registration does."""
    payment_id = uuid.uuid5(_PAYMENT_NAMESPACE, f"{tenant}:{provider}:{ref}")
    async with engine.begin() as conn:
        await conn.execute(
            insert(payments)
            .values(
                id=payment_id,
                tenant_id=tenant,
                provider=provider,
                provider_ref=ref,
                domain=domain,
                entity_id=entity_id,
                amount_minor=amount_minor,
                currency=currency,
                metadata={},
            )
            .on_conflict_do_nothing()
        )
        await conn.execute(
            insert(payment_refs)
            .values(tenant_id=tenant, provider=provider, ref=ref, payment_id=payment_id)
            .on_conflict_do_nothing()
        )
        await conn.execute(text(f"NOTIFY {REGISTERED_CHANNEL}"))
    return payment_id


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


async def wait_for_groups(bootstrap: str, groups: dict[str, int], timeout: float = 30.0) -> None:
    """Wait until each consumer group is stable with at least the given number of members."""
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


async def publish(bootstrap: str, topic: str, key: bytes, value: bytes) -> None:
    """Publish one record and wait for the broker's acknowledgement."""
    producer = DurableProducer(bootstrap, client_id="reconciler-tests")
    await producer.start()
    try:
        await producer.send(topic, key, value)
    finally:
        await producer.stop()


async def publish_observation(bootstrap: str, obs: PaymentObservation) -> None:
    """Put an observation on the observations topic, as the normalizer would."""
    await publish(
        bootstrap,
        topics.PAYMENT_OBSERVATIONS.name,
        payment_key(obs.tenant, obs.provider, obs.provider_ref).encode(),
        obs.to_bytes(),
    )


async def ask(
    bootstrap: str, request: ReconcileRequest, timeout: float = 20.0
) -> tuple[ReconcileReply, float]:
    """Publish a request and wait for its reply on the replies topic; the reply and the seconds it took."""
    started = time.monotonic()
    await publish(bootstrap, topics.RECONCILE_REQUESTS.name, request.tenant.encode(), request.to_bytes())
    deadline = started + timeout
    while time.monotonic() < deadline:
        for record in await read_topic(bootstrap, topics.RECONCILE_REPLIES.name):
            if request.request_id.encode() in (record.value or b""):
                reply = ReconcileReply.from_bytes(record.value)
                if reply.request_id == request.request_id:
                    return reply, time.monotonic() - started
        await asyncio.sleep(0.1)
    raise AssertionError(f"no reply to {request.request_id} within {timeout}s")


async def alerts_of(bootstrap: str, tenant: str) -> list[Alert]:
    """Every alert on the alerts topic about one tenant."""
    records = await read_topic(bootstrap, topics.ALERTS.name)
    return [Alert.from_bytes(r.value) for r in records if r.key == tenant.encode()]


@dataclass
class Service:
    """A service process and a reader of its Prometheus metrics."""

    process: ServiceProcess
    group_id: str

    def metric(self, name: str, **labels: str) -> float:
        """The sum of a metric's samples whose labels include `labels`."""
        total = 0.0
        for line in httpx.get(f"{self.process.url}/metrics", timeout=5).text.splitlines():
            if not line.startswith(name) or line.startswith("#"):
                continue
            head, _, value = line.rpartition(" ")
            if all(f'{k}="{v}"' in head for k, v in labels.items()) and head.split("{")[0] == name:
                total += float(value)
        return total


@pytest.fixture(scope="session")
async def engine(migrated_database: str) -> AsyncIterator[AsyncEngine]:
    """An engine on the session's migrated database."""
    eng = make_engine(migrated_database, pool_size=4)
    yield eng
    await eng.dispose()


def _env(kafka_topics: str, migrated_database: str, credentials_keys: str) -> dict[str, str]:
    return {
        "PAYSYNC_KAFKA_BOOTSTRAP": kafka_topics,
        "PAYSYNC_DATABASE_URL": migrated_database,
        "PAYSYNC_CREDENTIALS_KEYS": credentials_keys,
        "PAYSYNC_LOG_LEVEL": "INFO",
    }


@pytest.fixture(scope="module")
def projector(
    kafka_topics: str, migrated_database: str, credentials_keys: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Service]:
    """The status-projector, its own process and consumer group, for this module's tests."""
    group = unique("projector-for-reconciler")
    env = {
        **_env(kafka_topics, migrated_database, credentials_keys),
        "PAYSYNC_STATUS_PROJECTOR_GROUP_ID": group,
        "PAYSYNC_STATUS_PROJECTOR_AUTO_OFFSET_RESET": "latest",
        "PAYSYNC_STATUS_PROJECTOR_UNPARK_POLL_SECONDS": "0.5",
        "PAYSYNC_STATUS_PROJECTOR_DRIFT_CHECK_SECONDS": "3600",
    }
    process = ServiceProcess(
        "status-projector", free_port(), env, tmp_path_factory.mktemp("projector") / "status-projector.log"
    )
    process.start()
    try:
        process.wait_ready()
        asyncio.run(wait_for_groups(kafka_topics, {group: 1}))
        yield Service(process, group)
    finally:
        process.stop()


@pytest.fixture
def start_reconciler(
    kafka_topics: str, migrated_database: str, credentials_keys: str, tmp_path: Path
) -> Iterator[Callable[..., Awaitable[list[Service]]]]:
    """Start N reconciler replicas (one consumer group of this test's own) with settings given as env."""
    started: list[ServiceProcess] = []

    async def start(count: int = 1, **settings: object) -> list[Service]:
        group = unique("reconciler")
        env = {
            **_env(kafka_topics, migrated_database, credentials_keys),
            "PAYSYNC_RECONCILER_GROUP_ID": group,
            "PAYSYNC_RECONCILER_AUTO_OFFSET_RESET": "latest",
            "PAYSYNC_RECONCILER_BASE_DELAY": "0.02",
            "PAYSYNC_RECONCILER_MAX_DELAY": "0.2",
            **{f"PAYSYNC_RECONCILER_{k.upper()}": str(v) for k, v in settings.items()},
        }
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
        await wait_for_groups(kafka_topics, {group: count, f"{group}-requests": count})
        return services

    yield start
    for process in started:
        process.stop()


@pytest.fixture
def sim(gateway_sim: SimulatorClient) -> SimulatorClient:
    """The session's gateway simulator (each test makes its own accounts)."""
    return gateway_sim


@pytest.fixture(scope="session")
def kit() -> SimpleNamespace:
    """This module's helpers, for tests (a conftest is not importable under importlib mode)."""
    return SimpleNamespace(
        create_gateway_tenant=create_gateway_tenant,
        register=register,
        fetch=fetch,
        wait_until=wait_until,
        publish=publish,
        publish_observation=publish_observation,
        ask=ask,
        alerts_of=alerts_of,
        unique=unique,
        select=select,
    )
