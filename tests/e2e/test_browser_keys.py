"""A web page on the tenant's own origin, holding only a publishable key, follows one entity live;
a page on any other origin is refused at every step (the five services as processes)."""

from __future__ import annotations

import httpx
import pytest

from paysync_core.db import tenants as tenant_repo
from paysync_core.kafka import DurableProducer
from paysync_dev.fixtures import TestTenant
from paysync_dev.live_stream import SseListener, publish_status_changes, status_change
from paysync_dev.service_fixtures import wait_until
from paysync_dev.stack import ServiceProcess

pytestmark = pytest.mark.e2e
SHOP = "https://shop.example"
ELSEWHERE = "https://evil.example"
#: api-gateway's default `PAYSYNC_API_GATEWAY_API_KEY_CACHE_SECONDS`, and a margin.
ORIGINS_APPLY_WITHIN = 5 + 25


async def test_a_page_with_a_publishable_key_follows_its_entity_live_only_from_its_own_origin(
    stack: dict[str, ServiceProcess], tenant: TestTenant, engine, kafka_topics: str
) -> None:
    async with engine.begin() as conn:  # as the operator does over /admin/v1 or the CLI
        publishable = await tenant_repo.issue_api_key(conn, tenant.id, kind="publishable")
        await tenant_repo.set_cors_origins(conn, tenant.id, [SHOP])
    api = stack["api-gateway"].url
    entity = {"domain": "jobs", "entity_id": "job-page-1"}
    producer = DurableProducer(kafka_topics, client_id="paysync-tests")
    await producer.start()
    async with httpx.AsyncClient(timeout=httpx.Timeout(10, read=None)) as client:
        key = {"Authorization": f"Bearer {publishable}"}

        async def preflight(origin: str) -> httpx.Response:
            return await client.options(
                f"{api}/v1/stream-tokens",
                headers={"Origin": origin, "Access-Control-Request-Method": "POST"},
            )

        async def shop_allowed() -> bool:
            return (await preflight(SHOP)).status_code == 204

        await wait_until(shop_allowed, ORIGINS_APPLY_WITHIN, "the shop's origin allowed")
        assert (await preflight(SHOP)).headers["access-control-allow-origin"] == SHOP
        assert (await preflight(ELSEWHERE)).status_code == 403

        issued = await client.post(f"{api}/v1/stream-tokens", json=entity, headers=key | {"Origin": SHOP})
        assert issued.status_code == 201 and issued.headers["access-control-allow-origin"] == SHOP
        token = issued.json()["token"]
        stolen = await client.post(
            f"{api}/v1/stream-tokens", json=entity, headers=key | {"Origin": ELSEWHERE}
        )
        assert stolen.status_code == 403 and "access-control-allow-origin" not in stolen.headers

        # `new EventSource(url)` from each page: the browser adds only `Origin`.
        page = SseListener(client, f"{api}/v1/stream?token={token}", {"Origin": SHOP}).start()
        copied = SseListener(client, f"{api}/v1/stream?token={token}", {"Origin": ELSEWHERE}).start()
        try:
            await page.opened.wait()
            await copied.opened.wait()
            assert page.status_code == 200, page.error
            assert page.response_headers is not None
            assert page.response_headers["access-control-allow-origin"] == SHOP
            assert copied.status_code == 403 and copied.error is not None
            assert copied.error["error"] == "origin_not_allowed"
            change = status_change(tenant.id, **entity)
            await publish_status_changes(producer, [change])

            async def arrived() -> bool:
                return change.payment_id in page.payment_ids()

            await wait_until(arrived, 30, "the entity's status change on the page")
        finally:
            await producer.stop()
            await page.stop()
            await copied.stop()
    assert publishable not in stack["api-gateway"].log_path.read_text(errors="replace")
