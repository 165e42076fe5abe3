"""`GET /v1/sync-issues`: what the status-projector could not settle, as a front end's admin page reads it."""

from __future__ import annotations

import uuid

import pytest

from paysync_dev.fixtures import create_tenant
from paysync_dev.service_fixtures import publish_observation, stripe_paid, unique, wait_until

pytestmark = pytest.mark.integration


async def test_an_amount_mismatch_is_listed_for_its_tenant_only_with_filters_and_pages(
    projector, client, migrated_database, credentials_keys, kafka_topics
) -> None:
    shop, other = (create_tenant(migrated_database, credentials_keys) for _ in range(2))
    auth = {"Authorization": f"Bearer {shop.api_key}"}
    jobs = [unique("job") for _ in range(3)]
    refs = [f"cs_test_{uuid.uuid4().hex}" for _ in jobs]
    ids = []
    for job, ref in zip(jobs, refs, strict=True):
        registered = await client.post(
            "/v1/payments",
            headers=auth,
            json={
                "provider": "stripe",
                "provider_ref": ref,
                "domain": "jobs",
                "entity_id": job,
                "amount_minor": 12500,
                "currency": "USD",
            },
        )
        assert registered.status_code == 201, registered.text
        ids.append(registered.json()["id"])
    for ref in refs:  # the gateway says 100.00 was paid for a 125.00 job
        await publish_observation(kafka_topics, stripe_paid(shop.id, ref, 10000))

    async def all_three_listed() -> bool:
        listed = await client.get("/v1/sync-issues", headers=auth)
        return listed.status_code == 200 and len(listed.json()["items"]) == 3

    await wait_until(all_three_listed, 30, "three open sync issues")
    listed = (await client.get("/v1/sync-issues", headers=auth)).json()
    assert {(i["kind"], i["payment_id"], i["domain"], i["entity_id"]) for i in listed["items"]} == {
        ("amount_mismatch", pid, "jobs", job) for pid, job in zip(ids, jobs, strict=True)
    }
    assert listed["next_cursor"] is None
    assert all("100.00" in i["detail"] and "125.00" in i["detail"] for i in listed["items"])
    # Newest first, a page at a time, nothing twice.
    first = (await client.get("/v1/sync-issues", headers=auth, params={"limit": 2})).json()
    rest = (await client.get("/v1/sync-issues", headers=auth, params={"cursor": first["next_cursor"]})).json()
    assert [i["id"] for i in first["items"] + rest["items"]] == [i["id"] for i in listed["items"]]
    assert [i["opened_at"] for i in listed["items"]] == sorted(
        (i["opened_at"] for i in listed["items"]), reverse=True
    )
    # Filters, and nothing of another tenant's.
    one = (await client.get("/v1/sync-issues", headers=auth, params={"entity_id": jobs[0]})).json()
    assert [i["payment_id"] for i in one["items"]] == [ids[0]]
    none = await client.get("/v1/sync-issues", headers=auth, params={"kind": "stuck_payment"})
    assert none.json()["items"] == []
    theirs = await client.get("/v1/sync-issues", headers={"Authorization": f"Bearer {other.api_key}"})
    assert theirs.json() == {"items": [], "next_cursor": None}
    assert (await client.get("/v1/sync-issues", headers=auth, params={"kind": "nonsense"})).status_code == 422
    assert (
        await client.get("/v1/sync-issues", headers=auth, params={"cursor": "garbage"})
    ).status_code == 400
