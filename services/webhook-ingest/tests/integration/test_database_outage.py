"""A webhook for a tenant whose credentials are not cached, while PostgreSQL restarts or is unreachable,
is answered 503 with `Retry-After` (the gateway sends it again), never a 500 or a 404, and is taken once
the database is back."""

from __future__ import annotations

import httpx
import pytest

from paysync_core.settings import CommonSettings
from paysync_dev.fixtures import TestTenant
from paysync_dev.pg_proxy import PostgresProxy
from paysync_webhook_ingest.app import create_app
from paysync_webhook_ingest.settings import WebhookIngestSettings

from .conftest import raw_records_mentioning, stripe_body, stripe_headers

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("outage", ["starting_up", "down"])
async def test_a_webhook_while_the_database_is_away_answers_503_then_is_taken(
    database_proxy: PostgresProxy, kafka_topics: str, credentials_keys: str, tenant: TestTenant, outage: str
) -> None:
    common = CommonSettings(
        database_url=database_proxy.url, kafka_bootstrap=kafka_topics, credentials_keys=credentials_keys
    )
    app = create_app(WebhookIngestSettings(common=common, run_normalizer=False))
    body, marker = stripe_body()
    url = f"/webhooks/{tenant.id}/stripe"
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://ingest") as client:
            if outage == "down":
                await database_proxy.down()  # connections refused
            else:
                database_proxy.restarting()  # "the database system is starting up"
            away = await client.post(
                url, content=body, headers=stripe_headers(body, tenant.stripe_webhook_secret)
            )
            assert away.status_code == 503, away.text
            assert away.json()["error"] == "database_unavailable"
            assert int(away.headers["retry-after"]) > 0

            await database_proxy.back()
            taken = await client.post(
                url, content=body, headers=stripe_headers(body, tenant.stripe_webhook_secret)
            )
            assert taken.status_code == 200, taken.text
    assert len(await raw_records_mentioning(kafka_topics, marker)) == 1
