"""Every status read carries an ETag and `Cache-Control: no-store`; `If-None-Match` gives 304 until
the answer changes, then 200 with a new tag."""

from __future__ import annotations

import httpx
import pytest

from paysync_dev.fixtures import create_tenant, stripe_registration
from paysync_dev.service_fixtures import publish_observation, stripe_paid, wait_until

pytestmark = pytest.mark.integration


def _reads(payment_id: str, domain: str, entity_id: str) -> list[str]:
    """Every status read that shows this payment (or counts it)."""
    return [
        f"/v1/payments/{payment_id}",
        "/v1/payments",
        "/v1/payments?status=pending",
        f"/v1/domains/{domain}/{entity_id}/payments",
        f"/v1/payments/{payment_id}/history",
        "/v1/stats",
        "/v1/sync-issues",
    ]


async def _tags(client: httpx.AsyncClient, auth: dict[str, str], paths: list[str]) -> dict[str, str]:
    tags = {}
    for path in paths:
        answer = await client.get(path, headers=auth)
        assert answer.status_code == 200, (path, answer.text)
        assert answer.headers["cache-control"] == "no-store", path
        tags[path] = answer.headers["etag"]
    return tags


async def test_every_status_read_answers_304_while_unchanged_and_a_new_etag_after_a_change(
    projector, client, migrated_database, credentials_keys, kafka_topics
) -> None:
    shop = create_tenant(migrated_database, credentials_keys)
    auth = {"Authorization": f"Bearer {shop.api_key}"}
    body = stripe_registration(amount_minor=12500)
    created = await client.post("/v1/payments", json=body, headers=auth)
    assert created.status_code == 201, created.text
    paths = _reads(created.json()["id"], body["domain"], body["entity_id"])
    before = await _tags(client, auth, paths)

    for path, tag in before.items():
        again = await client.get(path, headers=auth | {"If-None-Match": tag})
        assert (again.status_code, again.content, again.headers["etag"]) == (304, b"", tag), path
        assert again.headers["cache-control"] == "no-store", path
        weak = await client.get(path, headers=auth | {"If-None-Match": f'"other", W/{tag}'})
        assert weak.status_code == 304, path

    # The gateway says 100.00 was paid for 125.00: the payment is flagged (its history grows) and a
    # sync issue opens; a second payment of the same job changes the lists and the totals.
    await publish_observation(kafka_topics, stripe_paid(shop.id, body["provider_ref"], 10000))
    second = stripe_registration(domain=body["domain"], entity_id=body["entity_id"])
    assert (await client.post("/v1/payments", json=second, headers=auth)).status_code == 201

    async def changed() -> bool:
        issues = (await client.get("/v1/sync-issues", headers=auth)).json()["items"]
        payment = (await client.get(paths[0], headers=auth)).json()
        return payment["flags"] == ["amount_mismatch"] and len(issues) == 1

    await wait_until(changed, 60, "the payment flagged with an amount mismatch")
    for path, tag in before.items():
        answer = await client.get(path, headers=auth | {"If-None-Match": tag})
        assert answer.status_code == 200, (path, answer.text)
        assert answer.headers["etag"] != tag and answer.json(), path
        assert answer.headers["cache-control"] == "no-store", path
