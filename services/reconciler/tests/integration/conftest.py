"""The reconciler tests' helpers (services as processes, tenants at the simulator: paysync-dev)."""

from __future__ import annotations

import asyncio
import time
from types import SimpleNamespace
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from paysync_core import topics
from paysync_core.contracts import Alert, ReconcileReply, ReconcileRequest
from paysync_dev.fixtures import TestTenant, create_gateway_tenant
from paysync_dev.service_fixtures import (
    fetch,
    publish,
    publish_observation,
    register_payment,
    unique,
    wait_until,
)
from paysync_dev.topic_reader import read_topic
from paysync_gateway_sim import SimulatorClient

#: Every webhook dropped: the case the reconciler exists for.
LOST = {"webhooks": {"drop_ratio": 1.0}}


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


@pytest.fixture
def sim(gateway_sim: SimulatorClient) -> SimulatorClient:
    """The session's gateway simulator (each test makes its own accounts)."""
    return gateway_sim


@pytest.fixture
def lost_webhooks_tenant(engine: AsyncEngine, credentials_keys: str, sim: SimulatorClient):
    """`await lost_webhooks_tenant(providers, faults=…, rate_limits=…)`: a tenant at the simulator whose
    gateways never deliver a webhook (`faults` given for a provider replace that)."""

    async def make(
        providers: tuple[str, ...] = ("stripe", "paystack", "mpesa"),
        *,
        faults: dict[str, Any] | None = None,
        rate_limits: dict[str, float] | None = None,
    ) -> TestTenant:
        return await create_gateway_tenant(
            engine,
            credentials_keys,
            sim,
            providers,
            faults={p: LOST for p in providers} | (faults or {}),
            rate_limits=rate_limits,
        )

    return make


@pytest.fixture(scope="session")
def kit() -> SimpleNamespace:
    """This module's helpers, for tests (a conftest is not importable under importlib mode)."""
    return SimpleNamespace(
        create_gateway_tenant=create_gateway_tenant,
        register=register_payment,
        fetch=fetch,
        wait_until=wait_until,
        publish=publish,
        publish_observation=publish_observation,
        ask=ask,
        alerts_of=alerts_of,
        unique=unique,
        select=select,
    )
