"""The reconciler tests' fixtures; their helpers are plain functions in `paysync_dev.reconcile` and
`paysync_dev.service_fixtures`, imported where used."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncEngine

from paysync_core.db.schema import payments
from paysync_dev.fixtures import TestTenant, create_gateway_tenant
from paysync_dev.reconcile import LOST
from paysync_gateway_sim import SimulatorClient


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


@pytest.fixture
async def leave_no_open_payments(engine: AsyncEngine):
    """The tenants whose payments are closed after the test. Its bulk checks stay on the requests topic,
    and a reconciler started later in the session in a consumer group of its own reads that topic from
    the start: with the payments open it would spend a minute of its checks (at this test's low limit)
    on them, and another test's callback confirmation would wait behind them."""
    tenants: list[str] = []
    yield tenants
    async with engine.begin() as conn:
        closing = update(payments).where(payments.c.tenant_id.in_(tenants)).values(status="canceled")
        await conn.execute(closing)
