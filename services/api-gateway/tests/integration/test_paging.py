"""Cursor pages never skip or repeat a row, also when rows share a timestamp."""

from __future__ import annotations

import base64
import uuid

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from paysync_core.db.schema import payments, sync_issues
from paysync_core.domain.ids import payment_id_for
from paysync_dev.service_fixtures import unique

pytestmark = pytest.mark.integration


async def insert_payments_at_one_instant(
    engine: AsyncEngine, tenant: str, entity_id: str, count: int
) -> set[str]:
    """Payments written in one transaction: `now()` is the same for all, so they share `created_at`."""
    refs = [f"cs_test_{uuid.uuid4().hex}" for _ in range(count)]
    rows = [
        {
            "id": payment_id_for(tenant, "stripe", ref),
            "tenant_id": tenant,
            "provider": "stripe",
            "provider_ref": ref,
            "domain": "jobs",
            "entity_id": entity_id,
            "amount_minor": 100,
            "currency": "USD",
        }
        for ref in refs
    ]
    async with engine.begin() as conn:
        await conn.execute(payments.insert(), rows)
    return {str(r["id"]) for r in rows}


async def insert_issues_at_one_instant(engine: AsyncEngine, tenant: str, count: int) -> set[int]:
    """Sync issues opened in one transaction, as the projector opens several for one batch."""
    rows = [
        {
            "alert_id": unique("alert"),
            "tenant_id": tenant,
            "kind": "amount_mismatch",
            "subject": unique("subject"),
            "domain": "jobs",
            "entity_id": unique("job"),
            "detail": "paid 100.00 for 125.00",
        }
        for _ in range(count)
    ]
    async with engine.begin() as conn:
        result = await conn.execute(sync_issues.insert().returning(sync_issues.c.id), rows)
        return {row.id for row in result}


async def every_page(client: httpx.AsyncClient, path: str, headers: dict[str, str], **params: object) -> list:
    """The ids of every item over every page of `path`, following `next_cursor`."""
    seen, cursor = [], None
    while True:
        paging = {"cursor": cursor} if cursor else {}
        response = await client.get(path, params=params | paging, headers=headers)
        assert response.status_code == 200, response.text
        page = response.json()
        seen += [item["id"] for item in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            return seen


async def test_payments_sharing_a_timestamp_are_each_listed_once(client, tenant, engine) -> None:
    entity = unique("job")
    made = await insert_payments_at_one_instant(engine, tenant.id, entity, 5)
    auth = {"Authorization": f"Bearer {tenant.api_key}"}
    seen = await every_page(client, "/v1/payments", auth, entity_id=entity, limit=2)
    assert sorted(seen) == sorted(made)


async def test_an_entitys_payments_page_with_cursor_and_limit(client, tenant, engine) -> None:
    entity = unique("job")
    made = await insert_payments_at_one_instant(engine, tenant.id, entity, 5)
    auth = {"Authorization": f"Bearer {tenant.api_key}"}
    path = f"/v1/domains/jobs/{entity}/payments"
    first = (await client.get(path, params={"limit": 2}, headers=auth)).json()
    assert len(first["items"]) == 2 and first["next_cursor"]
    seen = await every_page(client, path, auth, limit=2)
    assert sorted(seen) == sorted(made)


async def test_sync_issues_opened_together_are_each_listed_once(client, tenant, engine) -> None:
    opened = await insert_issues_at_one_instant(engine, tenant.id, 3)
    auth = {"Authorization": f"Bearer {tenant.api_key}"}
    seen = await every_page(client, "/v1/sync-issues", auth, limit=2)
    assert sorted(seen) == sorted(opened)


@pytest.mark.parametrize(
    ("path", "decoded"),
    [
        ("/v1/sync-issues", "2026-01-01T00:00:00+00:00|99999999999999999999"),
        ("/v1/sync-issues", "2026-01-01T00:00:00|1"),
        ("/v1/payments", "2026-01-01T00:00:00|6f6e6c79-2d70-6179-7379-6e632d706179"),
        ("/v1/payments", "9999-12-31T23:59:59-23:59|6f6e6c79-2d70-6179-7379-6e632d706179"),
    ],
    ids=["id-past-bigint", "naive-time", "naive-time-payments", "time-past-year-9999"],
)
async def test_a_cursor_this_api_did_not_hand_out_is_a_400(client, tenant, path, decoded) -> None:
    cursor = base64.urlsafe_b64encode(decoded.encode()).decode()
    auth = {"Authorization": f"Bearer {tenant.api_key}"}
    response = await client.get(path, params={"cursor": cursor}, headers=auth)
    assert response.status_code == 400, response.text
    assert response.json()["error"] == "bad_cursor"
