"""`/v1/sync-issues/{id}`: acknowledge, resolve with a note, reopen; audited, one tenant's only."""

from __future__ import annotations

import httpx
import pytest

from paysync_dev.fixtures import TestTenant, create_tenant, stripe_registration
from paysync_dev.service_fixtures import publish_observation, stripe_paid, wait_until

pytestmark = pytest.mark.integration


async def _an_open_issue(client: httpx.AsyncClient, shop: TestTenant, kafka_topics: str) -> int:
    """An amount mismatch the projector raised about a new payment of `shop`: its issue id."""
    body = stripe_registration(amount_minor=12500)
    assert (await client.post("/v1/payments", json=body, headers=shop.auth)).status_code == 201
    await publish_observation(kafka_topics, stripe_paid(shop.id, body["provider_ref"], 10000))

    async def raised() -> bool:
        return len((await client.get("/v1/sync-issues", headers=shop.auth)).json()["items"]) == 1

    await wait_until(raised, 60, "the amount-mismatch issue")
    return (await client.get("/v1/sync-issues", headers=shop.auth)).json()["items"][0]["id"]


async def _ids(client: httpx.AsyncClient, shop: TestTenant, **params: str) -> list[int]:
    listed = await client.get("/v1/sync-issues", params=params, headers=shop.auth)
    assert listed.status_code == 200, listed.text
    return [i["id"] for i in listed.json()["items"]]


async def test_an_issue_is_acknowledged_resolved_with_a_note_and_reopened_each_audited(
    projector, client, migrated_database, credentials_keys, kafka_topics
) -> None:
    shop = create_tenant(migrated_database, credentials_keys)
    issue = await _an_open_issue(client, shop, kafka_topics)
    url = f"/v1/sync-issues/{issue}"
    shown = (await client.get(url, headers=shop.auth)).json()
    assert (shown["state"], shown["kind"], shown["actions"]) == ("open", "amount_mismatch", [])

    acknowledged = await client.post(f"{url}/acknowledge", headers=shop.auth)
    assert acknowledged.status_code == 200, acknowledged.text
    assert acknowledged.json()["state"] == "acknowledged" and acknowledged.json()["acknowledged_at"]
    assert (await client.post(f"{url}/acknowledge", headers=shop.auth)).status_code == 409
    assert await _ids(client, shop) == [issue]  # still unresolved
    assert await _ids(client, shop, state="acknowledged") == [issue]
    assert await _ids(client, shop, state="open") == []

    for body in ({}, {"note": ""}, {"note": "x", "by": "me"}):
        refused = await client.post(f"{url}/resolve", json=body, headers=shop.auth)
        assert refused.status_code == 422, (body, refused.text)
    resolved = await client.post(
        f"{url}/resolve", json={"note": "refunded the 25.00 by hand"}, headers=shop.auth
    )
    assert resolved.status_code == 200, resolved.text
    assert resolved.json()["state"] == "resolved" and resolved.json()["resolved_at"]
    again = await client.post(f"{url}/resolve", json={"note": "twice"}, headers=shop.auth)
    assert again.status_code == 409 and again.json()["error"] == "conflict"
    assert (await client.post(f"{url}/acknowledge", headers=shop.auth)).status_code == 409
    assert await _ids(client, shop) == []
    assert await _ids(client, shop, state="resolved") == [issue]

    reopened = await client.post(
        f"{url}/reopen", json={"note": "customer says not refunded"}, headers=shop.auth
    )
    assert reopened.status_code == 200, reopened.text
    shown = (await client.get(url, headers=shop.auth)).json()
    assert (shown["state"], shown["acknowledged_at"], shown["resolved_at"]) == ("open", None, None)
    assert [(a["action"], a["note"]) for a in shown["actions"]] == [
        ("acknowledge", None),
        ("resolve", "refunded the 25.00 by hand"),
        ("reopen", "customer says not refunded"),
    ]
    for action in shown["actions"]:  # who: the key's id and prefix, never the key
        assert action["api_key_id"] is not None and shop.api_key.startswith(action["api_key_prefix"])
        assert action["api_key_prefix"] != shop.api_key
    assert (await client.post(f"{url}/reopen", headers=shop.auth)).status_code == 409
    assert await _ids(client, shop, state="open") == [issue]


async def test_another_tenants_issue_is_not_found_and_stays_as_it_was(
    projector, client, migrated_database, credentials_keys, kafka_topics
) -> None:
    shop, other = (create_tenant(migrated_database, credentials_keys) for _ in range(2))
    issue = await _an_open_issue(client, shop, kafka_topics)
    url = f"/v1/sync-issues/{issue}"
    assert (await client.get(url, headers=other.auth)).status_code == 404
    for action, body in [("acknowledge", None), ("resolve", {"note": "not mine"}), ("reopen", None)]:
        answer = await client.post(f"{url}/{action}", json=body, headers=other.auth)
        assert answer.status_code == 404 and answer.json()["error"] == "not_found", action
    for unknown in ("999999999999", "abc", "1" * 30):
        assert (await client.get(f"/v1/sync-issues/{unknown}", headers=shop.auth)).status_code == 404
    shown = (await client.get(url, headers=shop.auth)).json()
    assert (shown["state"], shown["actions"]) == ("open", [])
