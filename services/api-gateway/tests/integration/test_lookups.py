"""Finding payments the way apps know them: by time range (with status), and by the M-Pesa payer's
phone number, which is matched on a keyed hash and found nowhere in clear afterwards."""

from __future__ import annotations

import random
import subprocess
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from paysync_core.contracts import PaymentObservation
from paysync_core.db.notify import asyncpg_dsn
from paysync_core.domain.status import UnifiedStatus
from paysync_core.phones import phone_hash
from paysync_dev.fixtures import create_tenant, stripe_registration
from paysync_dev.service_fixtures import publish_observation, wait_until

pytestmark = pytest.mark.integration


def _mpesa_registration(phone: str | None, **overrides: object) -> dict[str, object]:
    body = {
        "provider": "mpesa",
        "provider_ref": f"ws_CO_{uuid.uuid4().hex}",
        "domain": "referrals",
        "entity_id": f"ref-{uuid.uuid4().hex[:6]}",
        "amount_minor": 10000,
        "currency": "KES",
    }
    return body | ({"phone": phone} if phone else {}) | overrides


def _dump(database_url: str) -> str:
    """Everything the database holds, as text (`pg_dump --data-only` of the test database)."""
    return subprocess.run(
        ["pg_dump", "--data-only", "--dbname", asyncpg_dsn(database_url)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout


async def test_payments_are_found_by_time_range_and_status(client, tenant) -> None:
    created = await client.post("/v1/payments", json=stripe_registration(), headers=tenant.auth)
    payment = created.json()
    at = datetime.fromisoformat(payment["created_at"])

    async def ids(**params: str) -> list[str]:
        answer = await client.get("/v1/payments", params=params, headers=tenant.auth)
        assert answer.status_code == 200, answer.text
        return [p["id"] for p in answer.json()["items"]]

    just_after = (at + timedelta(microseconds=1)).isoformat()
    assert await ids(created_since=at.isoformat()) == [payment["id"]]
    assert await ids(created_since=just_after) == []
    assert await ids(created_until=at.isoformat()) == []
    assert await ids(created_since=at.isoformat(), created_until=just_after) == [payment["id"]]
    assert await ids(status="pending", created_since=at.isoformat()) == [payment["id"]]
    assert await ids(status="succeeded", created_since=at.isoformat()) == []
    assert await ids(updated_since=payment["updated_at"]) == [payment["id"]]
    updated = datetime.fromisoformat(payment["updated_at"])
    assert await ids(updated_since=(updated + timedelta(microseconds=1)).isoformat()) == []

    for params, field in [
        ({"created_since": "2026-01-01T00:00:00"}, "created_since"),  # no zone
        ({"updated_since": "yesterday"}, "updated_since"),
        ({"created_since": just_after, "created_until": at.isoformat()}, "created_until"),
    ]:
        refused = await client.get("/v1/payments", params=params, headers=tenant.auth)
        assert refused.status_code == 422, (params, refused.text)
        body = refused.json()
        assert body["error"] == "invalid_request" and [p["field"] for p in body["problems"]] == [field]


async def test_an_mpesa_payment_is_found_by_the_payers_phone_which_is_stored_and_logged_nowhere(
    open_api, migrated_database, credentials_keys, monkeypatch, capfd
) -> None:
    monkeypatch.setenv("PAYSYNC_PHONE_HASH_KEY", uuid.uuid4().hex)
    shop, other = (create_tenant(migrated_database, credentials_keys) for _ in range(2))
    subscriber = f"7{random.randrange(10**8):08d}"  # the 9 digits after 254: a number no other test uses
    async with open_api() as client:
        body = _mpesa_registration(f"+254{subscriber}")
        created = await client.post("/v1/payments", json=body, headers=shop.auth)
        assert created.status_code == 201, created.text
        assert subscriber not in created.text
        theirs = await client.post(
            "/v1/payments", json=_mpesa_registration(f"0{subscriber}"), headers=other.auth
        )
        assert theirs.status_code == 201, theirs.text

        for written in (f"+254{subscriber}", f"254{subscriber}", f"0{subscriber}", f"+254 {subscriber}"):
            found = await client.get("/v1/payments", params={"phone": written}, headers=shop.auth)
            assert found.status_code == 200, found.text
            assert [p["id"] for p in found.json()["items"]] == [created.json()["id"]], written
        someone_else = "7" + str((int(subscriber[1:]) + 1) % 10**8).zfill(8)
        nobody = await client.get("/v1/payments", params={"phone": f"254{someone_else}"}, headers=shop.auth)
        assert nobody.json()["items"] == []

        # Refused, naming the field, never echoing the number; nothing registered.
        not_a_phone = await client.get("/v1/payments", params={"phone": "12345"}, headers=shop.auth)
        assert not_a_phone.status_code == 422 and not_a_phone.json()["problems"][0]["field"] == "phone"
        stripe = await client.post(
            "/v1/payments", json=stripe_registration(phone=f"254{subscriber}"), headers=shop.auth
        )
        assert stripe.status_code == 422 and stripe.json()["problems"][0]["field"] == "phone"
        for metadata in ({"customer_phone": "x"}, {"note": {"who": f"+254{subscriber}"}}):
            clear = _mpesa_registration(None, metadata=metadata)
            refused = await client.post("/v1/payments", json=clear, headers=shop.auth)
            assert refused.status_code == 422, refused.text
            assert refused.json()["problems"][0]["field"].startswith("metadata.")
            assert subscriber not in refused.text
            listed = await client.get(
                "/v1/payments", params={"provider_ref": clear["provider_ref"]}, headers=shop.auth
            )
            assert listed.json()["items"] == []

    assert subscriber not in _dump(migrated_database)
    logs = capfd.readouterr()
    assert subscriber not in logs.out + logs.err


async def test_without_a_phone_hash_key_phones_are_refused_not_stored(open_api, tenant, monkeypatch) -> None:
    monkeypatch.delenv("PAYSYNC_PHONE_HASH_KEY", raising=False)
    body = _mpesa_registration("+254712345678")
    async with open_api() as client:
        refused = await client.post("/v1/payments", json=body, headers=tenant.auth)
        assert refused.status_code == 503 and refused.json()["error"] == "phone_lookup_disabled"
        lookup = await client.get("/v1/payments", params={"phone": "+254712345678"}, headers=tenant.auth)
        assert lookup.status_code == 503
        listed = await client.get(
            "/v1/payments", params={"provider_ref": body["provider_ref"]}, headers=tenant.auth
        )
        assert listed.json()["items"] == []


async def test_a_payment_is_found_by_the_phone_its_mpesa_callback_carried(
    projector, open_api, migrated_database, credentials_keys, kafka_topics, monkeypatch
) -> None:
    key = uuid.uuid4().hex
    monkeypatch.setenv("PAYSYNC_PHONE_HASH_KEY", key)
    shop = create_tenant(migrated_database, credentials_keys)
    subscriber = f"7{random.randrange(10**8):08d}"
    async with open_api() as client:
        body = _mpesa_registration(None)  # the app did not know the number
        created = await client.post("/v1/payments", json=body, headers=shop.auth)
        assert created.status_code == 201, created.text
        # The callback's observation, as the normalizer publishes it: the number only as its hash.
        now = datetime.now(UTC)
        callback = PaymentObservation(
            observation_id=f"mpesa:{uuid.uuid4().hex}",
            tenant=shop.id,
            provider="mpesa",
            provider_ref=body["provider_ref"],
            status=UnifiedStatus.SUCCEEDED,
            amount_minor=10000,
            currency="KES",
            provider_time=now,
            source="webhook",
            verified=False,
            observed_at=now,
            phone_hash=phone_hash(key, shop.id, f"254{subscriber}"),
        )
        await publish_observation(kafka_topics, callback)

        async def found() -> bool:
            answer = await client.get("/v1/payments", params={"phone": f"0{subscriber}"}, headers=shop.auth)
            return [p["id"] for p in answer.json()["items"]] == [created.json()["id"]]

        await wait_until(found, 60, "the payment found by the callback's phone")
    assert subscriber not in _dump(migrated_database)
    assert subscriber not in projector.process.log_path.read_text()
