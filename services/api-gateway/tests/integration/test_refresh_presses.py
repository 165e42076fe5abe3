""" "Check payment status" pressed again and again: one check answers every press made while it runs,
and a key that starts too many checks of one entity is told to wait.

The test plays the reconciler: it answers the check request on the replies topic, once both presses
are known (from `/metrics`) to wait for it, so nothing depends on how fast anything runs.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from paysync_core import topics
from paysync_core.contracts import ReconcileReply
from paysync_core.db.schema import reconcile_requests
from paysync_dev.fixtures import stripe_registration
from paysync_dev.service_fixtures import fetch, metric_in, publish, wait_until

pytestmark = pytest.mark.integration
ADMIN_TOKEN = "admin-secret-for-press-tests"
PRESSES = "paysync_api_gateway_refresh_presses_total"


async def presses(client, outcome: str) -> float:
    """The api-gateway's count of presses with this outcome, read from its /metrics."""
    return metric_in((await client.get("/metrics")).text, PRESSES, outcome=outcome)


async def checks_of(engine, tenant: str) -> list[str]:
    rows = await fetch(
        engine, select(reconcile_requests.c.request_id).where(reconcile_requests.c.tenant == tenant)
    )
    return [row.request_id for row in rows]


async def answer(kafka_topics: str, tenant: str, request_id: str) -> None:
    """Reply to a check as the reconciler does once it has checked the entity."""
    reply = ReconcileReply(
        request_id=request_id, tenant=tenant, kind="entity", completed_at=datetime.now(UTC)
    )
    await publish(
        kafka_topics, topics.RECONCILE_REPLIES.name, tenant.encode(), reply.model_dump_json().encode()
    )


async def test_presses_while_a_check_runs_share_its_answer_and_a_key_past_its_rate_waits(
    open_api, tenant, engine, kafka_topics
) -> None:
    settings = {
        "admin_token": ADMIN_TOKEN,
        "refresh_timeout_seconds": 120,  # only the reply ends a press here
        "refresh_press_burst": 1,
        "refresh_press_rate": 0.001,
    }
    async with open_api(**settings) as client:
        await wait_until(lambda: _ready(client), 60, "the api-gateway listening for replies")
        issued = await client.post(
            f"/admin/v1/tenants/{tenant.id}/api-keys",
            json={"kind": "publishable"},
            headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
        )
        page = {"Authorization": f"Bearer {issued.json()['api_key']}"}
        job = stripe_registration()
        await client.post("/v1/payments", json=job, headers=tenant.auth)
        path = f"/v1/domains/jobs/{job['entity_id']}/payments/refresh"
        started, joined = await presses(client, "started"), await presses(client, "joined")

        first = asyncio.create_task(client.post(path, headers=page))
        await wait_until(
            lambda: _reached(client, "started", started + 1), 60, "the first press starting a check"
        )
        second = asyncio.create_task(client.post(path, headers=tenant.auth))
        await wait_until(lambda: _reached(client, "joined", joined + 1), 60, "the second press joining it")
        # A press is counted as it starts its check, which is recorded a moment later.
        await wait_until(lambda: _checks_recorded(engine, tenant.id, 1), 60, "the check recorded")
        [request_id] = await checks_of(engine, tenant.id)  # one check for both presses
        await answer(kafka_topics, tenant.id, request_id)
        one, two = await asyncio.wait_for(asyncio.gather(first, second), 60)
        assert one.status_code == two.status_code == 200, (one.text, two.text)
        assert one.json()["request_id"] == two.json()["request_id"] == request_id

        # The page's key started its one check of this entity: pressing again is refused, and
        # starts nothing.
        again = await client.post(path, headers=page)
        assert again.status_code == 429 and again.json()["error"] == "too_many_refreshes"
        assert int(again.headers["retry-after"]) >= 1
        assert await checks_of(engine, tenant.id) == [request_id]

        # The secret key only joined, so it still has its own check to start.
        third = asyncio.create_task(client.post(path, headers=tenant.auth))
        await wait_until(lambda: _checks_recorded(engine, tenant.id, 2), 60, "a second check recorded")
        [newer] = [r for r in await checks_of(engine, tenant.id) if r != request_id]
        await answer(kafka_topics, tenant.id, newer)
        done = await asyncio.wait_for(third, 60)
        assert done.status_code == 200 and done.json()["request_id"] == newer


async def _ready(client) -> bool:
    return (await client.get("/readyz")).status_code == 200


async def _reached(client, outcome: str, count: float) -> bool:
    return await presses(client, outcome) >= count


async def _checks_recorded(engine, tenant: str, count: int) -> bool:
    return len(await checks_of(engine, tenant)) >= count
