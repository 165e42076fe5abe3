"""Status overrides (admin API and `paysync payments override`) and the evidence behind a status
(`GET /v1/payments/{id}/history`, `paysync payments show`), against the real projector and broker."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from paysync_core.contracts import Evidence, PaymentObservation
from paysync_core.domain.status import UnifiedStatus
from paysync_dev.fixtures import create_tenant, stripe_registration
from paysync_dev.operator import paysync
from paysync_dev.service_fixtures import publish_observation, stripe_paid, wait_until

pytestmark = pytest.mark.integration
ADMIN_TOKEN = "admin-secret-for-override-tests"
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def seen(
    tenant: str, ref: str, status: UnifiedStatus, at: datetime, **evidence: object
) -> PaymentObservation:
    """A verified Stripe webhook saying `status` at provider time `at`."""
    return stripe_paid(tenant, ref).model_copy(
        update={"status": status, "provider_time": at, "evidence": Evidence(**evidence)}
    )


async def history_of(client, tenant, payment_id: str, **params: object) -> dict:
    response = await client.get(f"/v1/payments/{payment_id}/history", headers=tenant.auth, params=params)
    assert response.status_code == 200, response.text
    return response.json()


async def wait_for_history(client, tenant, payment_id: str, count: int) -> list[dict]:
    """The history once it holds `count` entries (the projector applied that many observations)."""

    async def complete() -> bool:
        return len((await history_of(client, tenant, payment_id, limit=500))["items"]) >= count

    await wait_until(complete, 30, f"{count} history entries of {payment_id}")
    return (await history_of(client, tenant, payment_id, limit=500))["items"]


async def open_issues(client, tenant, kind: str) -> list[dict]:
    listed = await client.get("/v1/sync-issues", headers=tenant.auth, params={"kind": kind})
    return listed.json()["items"]


async def register(client, tenant) -> tuple[str, str]:
    body = stripe_registration(amount_minor=12500)
    registered = await client.post("/v1/payments", json=body, headers=tenant.auth)
    assert registered.status_code == 201, registered.text
    return registered.json()["id"], body["provider_ref"]


async def test_an_override_shows_in_history_survives_older_facts_and_a_newer_contradiction_opens_an_issue(
    projector, open_api, tenant, kafka_topics
) -> None:
    async with open_api(admin_token=ADMIN_TOKEN) as client:
        payment_id, ref = await register(client, tenant)
        start = datetime.now(UTC)
        failed = seen(tenant.id, ref, UnifiedStatus.FAILED, start - timedelta(minutes=10))
        await publish_observation(kafka_topics, failed)
        await wait_for_history(client, tenant, payment_id, 1)

        body = {"status": "succeeded", "reason": "paid by bank transfer, receipt 4471", "by": "ops-amina"}
        overridden = await client.post(f"/admin/v1/payments/{payment_id}/override", json=body, headers=ADMIN)
        assert overridden.status_code == 200, overridden.text
        assert overridden.json() | {"observation_id": None} == {
            "payment_id": payment_id,
            "observation_id": None,
            "status_before": "failed",
            "status": "succeeded",
            "applied": True,
        }
        shown = (await client.get(f"/v1/payments/{payment_id}", headers=tenant.auth)).json()
        assert shown["status"] == "succeeded"

        # An older gateway fact arriving afterwards does not undo it, and raises nothing.
        older = seen(tenant.id, ref, UnifiedStatus.PROCESSING, start - timedelta(minutes=5))
        await publish_observation(kafka_topics, older)
        items = await wait_for_history(client, tenant, payment_id, 3)
        assert [(i["source"], i["status"], i["status_after"]) for i in items] == [
            ("webhook", "failed", "failed"),
            ("override", "succeeded", "succeeded"),
            ("webhook", "processing", "succeeded"),
        ]
        assert items[1]["override"] == {"by": "ops-amina", "reason": "paid by bank transfer, receipt 4471"}
        assert await open_issues(client, tenant, "override_contradicted") == []

        # A newer gateway truth that disagrees opens a sync issue; the status stays as overridden.
        newer = seen(tenant.id, ref, UnifiedStatus.EXPIRED, datetime.now(UTC) + timedelta(minutes=1))
        await publish_observation(kafka_topics, newer)
        await wait_for_history(client, tenant, payment_id, 4)
        issues = await open_issues(client, tenant, "override_contradicted")
        assert [(i["payment_id"], i["facts"]["gateway_status"]) for i in issues] == [(payment_id, "expired")]
        shown = (await client.get(f"/v1/payments/{payment_id}", headers=tenant.auth)).json()
        assert shown["status"] == "succeeded"


async def test_bad_overrides_are_refused_in_the_error_shape_and_change_nothing(
    projector, open_api, tenant, kafka_topics
) -> None:
    async with open_api(admin_token=ADMIN_TOKEN) as client:
        payment_id, ref = await register(client, tenant)
        url = f"/admin/v1/payments/{payment_id}/override"
        good = {"status": "succeeded", "reason": "checked by phone", "by": "ops"}
        cases = [
            (good | {"reason": ""}, ADMIN, 422, "reason"),
            (good | {"status": "paid"}, ADMIN, 422, "status"),
            ({k: v for k, v in good.items() if k != "by"}, ADMIN, 422, "by"),
            (good, {"Authorization": "Bearer wrong"}, 401, None),
        ]
        for body, headers, status, field in cases:
            refused = await client.post(url, json=body, headers=headers)
            assert refused.status_code == status, refused.text
            assert set(refused.json()) == {"error", "message", "problems"}
            assert [p["field"] for p in refused.json()["problems"]] == ([field] if field else [])
        unknown = await client.post(
            "/admin/v1/payments/00000000-0000-0000-0000-000000000000/override", json=good, headers=ADMIN
        )
        assert unknown.status_code == 404 and unknown.json()["error"] == "not_found"
        # A later observation goes through, so the refused overrides would be in history by now if sent.
        await publish_observation(
            kafka_topics, seen(tenant.id, ref, UnifiedStatus.PROCESSING, datetime.now(UTC))
        )
        items = await wait_for_history(client, tenant, payment_id, 1)
        assert [i["source"] for i in items] == ["webhook"]


async def test_history_is_the_tenants_own_in_order_with_raw_positions_and_pages(
    projector, client, tenant, kafka_topics, migrated_database, credentials_keys
) -> None:
    payment_id, ref = await register(client, tenant)
    start = datetime.now(UTC) - timedelta(minutes=30)
    steps = [UnifiedStatus.REQUIRES_ACTION, UnifiedStatus.PROCESSING, UnifiedStatus.SUCCEEDED]
    for n, status in enumerate(steps):
        at = start + timedelta(minutes=n)
        obs = seen(
            tenant.id, ref, status, at, provider_event_id=f"evt_{n}", raw_partition=3, raw_offset=40 + n
        )
        await publish_observation(kafka_topics, obs)
        await wait_for_history(client, tenant, payment_id, n + 1)  # one at a time: applied in this order

    pages, cursor = [], None
    while True:
        page = await history_of(client, tenant, payment_id, limit=2, **({"cursor": cursor} if cursor else {}))
        pages.append(page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert [len(p) for p in pages] == [2, 1]
    items = [i for p in pages for i in p]
    assert [(i["provider_event_id"], i["status"], i["status_after"], i["kind"]) for i in items] == [
        ("evt_0", "requires_action", "requires_action", "verified"),
        ("evt_1", "processing", "processing", "verified"),
        ("evt_2", "succeeded", "succeeded", "verified"),
    ]
    assert items[2]["raw_record"] == {"topic": "paysync.webhooks.raw.v1", "partition": 3, "offset": 42}

    other = create_tenant(migrated_database, credentials_keys)
    hidden = await client.get(f"/v1/payments/{payment_id}/history", headers=other.auth)
    assert hidden.status_code == 404 and set(hidden.json()) == {"error", "message", "problems"}
    bad = await client.get(f"/v1/payments/{payment_id}/history", headers=tenant.auth, params={"cursor": "x"})
    assert bad.status_code == 400 and bad.json()["error"] == "bad_cursor"


async def test_an_operator_overrides_and_reads_the_evidence_with_the_paysync_command(
    projector, client, tenant, kafka_topics, migrated_database
) -> None:
    payment_id, ref = await register(client, tenant)
    hint = seen(tenant.id, ref, UnifiedStatus.SUCCEEDED, datetime.now(UTC), provider_event_id="evt_hint")
    await publish_observation(kafka_topics, hint.model_copy(update={"verified": False}))
    await wait_for_history(client, tenant, payment_id, 1)

    run = {"kafka_bootstrap": kafka_topics}
    done = await paysync(
        migrated_database,
        *("payments", "override", payment_id, "--status", "canceled", "--reason", "customer called"),
        *("--by", "ops-juma", "--json"),
        **run,
    )
    assert done.returncode == 0, done.stderr
    assert done.json() | {"observation_id": None} == {
        "payment_id": payment_id,
        "observation_id": None,
        "status_before": "pending",
        "status": "canceled",
        "by": "ops-juma",
        "reason": "customer called",
        "applied": True,
    }
    shown = await paysync(migrated_database, "payments", "show", payment_id, "--json", **run)
    assert shown.returncode == 0, shown.stderr
    evidence = shown.json()
    assert evidence["payment"]["status"] == "canceled"
    assert [
        (h["source"], h["kind"], h["provider_event_id"], h["status_after"]) for h in evidence["history"]
    ] == [
        ("webhook", "hint", "evt_hint", "pending"),
        ("override", "verified", None, "canceled"),
    ]
    assert evidence["history"][1]["override"] == {"by": "ops-juma", "reason": "customer called"}
    table = await paysync(migrated_database, "payments", "show", payment_id, **run)
    assert "ops-juma: customer called" in table.stdout

    wrong = await paysync(
        migrated_database, "payments", "override", payment_id, "--status", "paid", "--reason", "x"
    )
    unknown = await paysync(
        migrated_database,
        *("payments", "override", "00000000-0000-0000-0000-000000000000", "--status", "failed"),
        *("--reason", "x"),
        **run,
    )
    assert (wrong.returncode, unknown.returncode) == (2, 1)
    assert "no payment" in unknown.stderr
    again = await paysync(migrated_database, "payments", "show", payment_id, "--json", **run)
    assert len(again.json()["history"]) == 2
