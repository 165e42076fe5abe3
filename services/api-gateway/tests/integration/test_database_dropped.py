"""A database connection dropped under api-gateway (a restart, a failover) costs at most one request a
503 with `Retry-After`, never a 500, and the same request made again is answered. (Reads and new
registrations run on the driver pool, which makes a new connection for one it found dropped, so they
are often answered at once.) While the server is still starting up, every request is a 503 too."""

from __future__ import annotations

from collections.abc import Awaitable

import httpx
import pytest
from sqlalchemy import text

from paysync_api_gateway.app import create_app
from paysync_api_gateway.settings import ApiGatewaySettings
from paysync_core.db.engine import make_engine, no_transaction
from paysync_core.settings import CommonSettings
from paysync_dev.fixtures import create_tenant, stripe_registration
from paysync_dev.pg_proxy import PostgresProxy
from paysync_dev.service_fixtures import wait_until

from .conftest import client_of

pytestmark = pytest.mark.integration


async def _drop_connections_since(url: str, since: object) -> None:
    """End every api-gateway connection to this database opened at or after `since`, and wait until gone."""
    mine = (
        "FROM pg_stat_activity WHERE application_name = 'paysync-api-gateway'"
        " AND datname = current_database() AND backend_start >= :since"
    )
    admin = make_engine(url, pool_size=1, application_name="test-admin")
    try:
        async with no_transaction(admin) as conn:
            ended = await conn.scalar(
                text(f"SELECT count(pg_terminate_backend(pid)) {mine}"), {"since": since}
            )
            assert ended

            async def gone() -> bool:
                return not await conn.scalar(text(f"SELECT count(*) {mine}"), {"since": since})

            await wait_until(gone, 30, "the dropped connections to end", every=0.05)
    finally:
        await admin.dispose()


async def _now(url: str) -> object:
    admin = make_engine(url, pool_size=1, application_name="test-admin")
    try:
        async with no_transaction(admin) as conn:
            return await conn.scalar(text("SELECT now()"))
    finally:
        await admin.dispose()


@pytest.mark.parametrize("request_kind", ["read", "registration"])
async def test_a_dropped_database_connection_answers_503_once_then_the_request_works(
    open_api, migrated_database, credentials_keys, monkeypatch, request_kind
) -> None:
    # Trust every pooled connection (no ping before use), as within a second of its last use.
    monkeypatch.setenv("PAYSYNC_DATABASE_PING_AFTER_IDLE_SECONDS", "3600")
    started = await _now(migrated_database)
    shop = create_tenant(migrated_database, credentials_keys)
    auth = {"Authorization": f"Bearer {shop.api_key}"}
    async with open_api() as client:
        created = await client.post("/v1/payments", json=stripe_registration(), headers=auth)
        assert created.status_code == 201, created.text
        path = f"/v1/payments/{created.json()['id']}"
        assert (await client.get(path, headers=auth)).status_code == 200
        new = stripe_registration()

        def request() -> Awaitable[httpx.Response]:
            if request_kind == "read":
                return client.get(path, headers=auth)
            return client.post("/v1/payments", json=new, headers=auth)

        await _drop_connections_since(migrated_database, started)

        # The connections each request takes may each be the first to find out: at most one 503 in all.
        answers = [await request() for _ in range(3)]
        statuses = [answer.status_code for answer in answers]
        assert statuses.count(503) <= 1 and statuses[-1] == 200, statuses
        assert set(statuses) <= {503, 200, 201}, statuses  # never a 500
        for lost in (answer for answer in answers if answer.status_code == 503):
            assert lost.json()["error"] == "database_unavailable"
            assert lost.headers["retry-after"]
        again = answers[-1]
        if request_kind == "registration":
            assert statuses.count(201) == 1, statuses
        if request_kind == "read":
            assert again.json()["id"] == created.json()["id"]


@pytest.mark.parametrize("outage", ["starting_up", "down"])
async def test_requests_while_the_database_restarts_answer_503_then_work_again(
    database_proxy: PostgresProxy, migrated_database, kafka_topics, credentials_keys, outage
) -> None:
    shop = create_tenant(migrated_database, credentials_keys)
    auth = {"Authorization": f"Bearer {shop.api_key}"}
    common = CommonSettings(
        database_url=database_proxy.url, kafka_bootstrap=kafka_topics, credentials_keys=credentials_keys
    )
    app = create_app(ApiGatewaySettings(common=common))
    async with app.router.lifespan_context(app), client_of(app) as client:
        created = await client.post("/v1/payments", json=stripe_registration(), headers=auth)
        assert created.status_code == 201, created.text
        path = f"/v1/payments/{created.json()['id']}"

        if outage == "down":
            await database_proxy.down()  # sessions cut, the port closed: connections refused
        else:
            database_proxy.restarting()  # sessions cut, new ones told "the database system is starting up"
        answers = [
            *[await client.get(path, headers=auth) for _ in range(2)],  # the first meets its session cut
            await client.post("/v1/payments", json=stripe_registration(), headers=auth),
        ]
        assert [a.status_code for a in answers] == [503, 503, 503], [a.text for a in answers]
        for unavailable in answers:
            assert unavailable.json()["error"] == "database_unavailable"
            assert unavailable.headers["retry-after"]

        await database_proxy.back()
        assert (await client.get(path, headers=auth)).status_code == 200
