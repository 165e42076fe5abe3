"""The /v1 payments API against the real database: what a front end sees."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from paysync_core.db import REGISTERED_CHANNEL
from paysync_dev.fixtures import create_tenant, stripe_registration

pytestmark = pytest.mark.integration


async def test_registration_is_idempotent_on_the_reference(client, tenant) -> None:
    body = stripe_registration(aliases=["pi_abc123"])
    first = await client.post("/v1/payments", json=body, headers=tenant.auth)
    again = await client.post("/v1/payments", json=body, headers=tenant.auth)
    assert first.status_code == 201 and again.status_code == 200
    assert first.json()["id"] == again.json()["id"]
    assert first.json()["status"] == "pending"
    assert first.json()["aliases"] == ["pi_abc123"]
    assert first.headers["cache-control"] == "no-store"


async def test_registering_the_same_reference_with_another_amount_is_a_conflict(client, tenant) -> None:
    body = stripe_registration()
    await client.post("/v1/payments", json=body, headers=tenant.auth)
    clash = await client.post("/v1/payments", json=body | {"amount_minor": 9999}, headers=tenant.auth)
    assert clash.status_code == 409
    assert clash.json()["error"] == "conflict"
    assert "amount_minor" in clash.json()["message"]


async def test_an_alias_of_another_payment_is_a_conflict_and_changes_nothing(client, tenant) -> None:
    await client.post("/v1/payments", json=stripe_registration(aliases=["pi_shared1"]), headers=tenant.auth)
    body = stripe_registration(aliases=["pi_shared1"])
    clash = await client.post("/v1/payments", json=body, headers=tenant.auth)
    assert clash.status_code == 409
    listed = await client.get("/v1/payments", params={"entity_id": body["entity_id"]}, headers=tenant.auth)
    assert listed.json()["items"] == []


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"amount_minor": -1}, "amount_minor"),
        ({"currency": "dollars"}, "currency"),
        ({"provider": "paypal"}, "provider"),
        ({"domain": "Jobs; drop table"}, "domain"),
    ],
)
async def test_invalid_registrations_say_which_field_is_wrong(client, tenant, change, field) -> None:
    response = await client.post("/v1/payments", json=stripe_registration(**change), headers=tenant.auth)
    assert response.status_code == 422
    assert [p["field"] for p in response.json()["problems"]] == [field]


async def test_requests_without_a_valid_key_are_refused(client) -> None:
    assert (await client.get("/v1/payments")).status_code == 401
    wrong = await client.get("/v1/payments", headers={"Authorization": "Bearer psk_nope"})
    assert wrong.status_code == 401 and wrong.headers["www-authenticate"] == "Bearer"


async def test_a_tenant_cannot_read_another_tenants_payment(
    client, tenant, migrated_database, credentials_keys
) -> None:
    other = create_tenant(migrated_database, credentials_keys)
    created = (await client.post("/v1/payments", json=stripe_registration(), headers=tenant.auth)).json()
    assert (await client.get(f"/v1/payments/{created['id']}", headers=other.auth)).status_code == 404


async def test_etag_gives_304_while_unchanged(client, tenant) -> None:
    created = (await client.post("/v1/payments", json=stripe_registration(), headers=tenant.auth)).json()
    first = await client.get(f"/v1/payments/{created['id']}", headers=tenant.auth)
    etag = first.headers["etag"]
    unchanged = await client.get(
        f"/v1/payments/{created['id']}", headers=tenant.auth | {"If-None-Match": etag}
    )
    assert unchanged.status_code == 304
    assert unchanged.headers["cache-control"] == "no-store"


async def test_listing_pages_through_every_payment_once(client, tenant) -> None:
    entity = f"job-{uuid.uuid4().hex[:6]}"
    made = {
        (
            await client.post("/v1/payments", json=stripe_registration(entity_id=entity), headers=tenant.auth)
        ).json()["id"]
        for _ in range(5)
    }
    seen, cursor = [], None
    while True:
        params = {"entity_id": entity, "limit": 2} | ({"cursor": cursor} if cursor else {})
        page = (await client.get("/v1/payments", params=params, headers=tenant.auth)).json()
        seen += [p["id"] for p in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert sorted(seen) == sorted(made)
    by_entity = await client.get(f"/v1/domains/jobs/{entity}/payments", headers=tenant.auth)
    assert {p["id"] for p in by_entity.json()["items"]} == made


async def test_a_forged_cursor_is_a_clear_error(client, tenant) -> None:
    response = await client.get("/v1/payments", params={"cursor": "bm9wZQ"}, headers=tenant.auth)
    assert response.status_code == 400 and response.json()["error"] == "bad_cursor"


async def test_stats_count_by_status_and_currency(client, tenant) -> None:
    for amount, currency in [(100, "USD"), (250, "USD"), (5000, "KES")]:
        await client.post(
            "/v1/payments",
            json=stripe_registration(amount_minor=amount, currency=currency),
            headers=tenant.auth,
        )
    stats = (await client.get("/v1/stats", headers=tenant.auth)).json()
    assert stats["total"] == 3 and stats["by_status"] == {"pending": 3}
    assert stats["by_currency"]["USD"]["registered_minor"] == 350
    assert stats["by_currency"]["KES"]["registered_minor"] == 5000


async def test_a_payment_is_found_by_its_reference_or_any_alias(client, tenant) -> None:
    wanted = stripe_registration(aliases=[f"pi_{uuid.uuid4().hex}"])
    other = stripe_registration(entity_id=wanted["entity_id"])
    for body in (wanted, other):
        assert (await client.post("/v1/payments", json=body, headers=tenant.auth)).status_code == 201
    for ref in (wanted["provider_ref"], wanted["aliases"][0]):
        found = await client.get("/v1/payments", params={"provider_ref": ref}, headers=tenant.auth)
        assert [p["provider_ref"] for p in found.json()["items"]] == [wanted["provider_ref"]]
    unknown = {"provider_ref": "cs_test_unknown"}
    nothing = await client.get("/v1/payments", params=unknown, headers=tenant.auth)
    assert nothing.json()["items"] == []


async def test_registrations_at_once_wake_the_matcher_once_for_all_not_once_each(
    serve_api, client_from, tenant, engine
) -> None:
    """A burst of registrations costs PostgreSQL a few NOTIFYs, not one each (each takes the cluster's
    notification queue lock); every one of them is covered by a wake-up sent after it committed."""
    notified: list[str] = []
    ours_heard = asyncio.Event()

    def heard(*notification: object) -> None:
        notified.append(str(notification[3]))  # its payload: "" from api-gateway, "end" from the test
        if notified[-1] == "end":
            ours_heard.set()

    async with engine.connect() as conn:
        listener = (await conn.get_raw_connection()).driver_connection
        await listener.add_listener(REGISTERED_CHANNEL, heard)
        try:
            async with serve_api() as app, client_from(app) as client:
                bodies = [stripe_registration() for _ in range(20)]
                made = await asyncio.gather(
                    *(client.post("/v1/payments", json=b, headers=tenant.auth) for b in bodies)
                )
                assert [m.status_code for m in made] == [201] * 20
            # The app stopped: every wake-up it owed is sent. Ours comes after them, in commit order.
            await listener.execute(f"NOTIFY {REGISTERED_CHANNEL}, 'end'")
            await asyncio.wait_for(ours_heard.wait(), timeout=10)
        finally:
            await listener.remove_listener(REGISTERED_CHANNEL, heard)
    assert 1 <= notified.count("") < 20


async def test_a_new_registration_wakes_the_projectors_matcher(client, tenant, engine) -> None:
    woken = asyncio.Event()

    def wake(*_: object) -> None:
        woken.set()

    async with engine.connect() as conn:
        listener = (await conn.get_raw_connection()).driver_connection
        await listener.add_listener(REGISTERED_CHANNEL, wake)
        try:
            made = await client.post("/v1/payments", json=stripe_registration(), headers=tenant.auth)
            assert made.status_code == 201
            await asyncio.wait_for(woken.wait(), timeout=10)
        finally:
            await listener.remove_listener(REGISTERED_CHANNEL, wake)
