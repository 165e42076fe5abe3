"""Every kind of bad request gets its documented answer, publishes nothing, and is quarantined."""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest

from paysync_core.testing.builders import to_body
from paysync_core.testing.builders.mpesa import checkout_request_id, stk_callback
from paysync_core.testing.builders.paystack import paystack_charge_success
from paysync_dev.fixtures import create_tenant

from .conftest import (
    paystack_headers,
    quarantined,
    raw_records_mentioning,
    stripe_body,
    stripe_headers,
)

pytestmark = pytest.mark.integration


async def test_forged_stale_malformed_oversized_and_misaddressed_requests(
    ingest, tenant, kafka_topics, migrated_database, credentials_keys
) -> None:
    stripe_only = create_tenant(migrated_database, credentials_keys, gateways=("stripe",))
    body, marker = stripe_body()
    url = f"/webhooks/{tenant.id}/stripe"
    big, _ = stripe_body(marker + "x" * 5000)
    cases = [
        ("forged", url, body, stripe_headers(body, "whsec_not_the_secret"), 401, "bad_signature"),
        (
            "stale",
            url,
            body,
            stripe_headers(body, tenant.stripe_webhook_secret, int(time.time()) - 301),
            401,
            "timestamp_outside_tolerance",
        ),
        ("unsigned", url, body, {"Content-Type": "application/json"}, 401, "missing_signature"),
        (
            "garbled header",
            url,
            body,
            {"Stripe-Signature": "t=abc,v1", "Content-Type": "application/json"},
            401,
            "malformed_signature_header",
        ),
        (
            "not json",
            url,
            b"{" + marker.encode(),
            stripe_headers(b"{" + marker.encode(), tenant.stripe_webhook_secret),
            400,
            "malformed_payload",
        ),
        (
            "wrong content type",
            url,
            body,
            {**stripe_headers(body, tenant.stripe_webhook_secret), "Content-Type": "text/plain"},
            400,
            "malformed_payload",
        ),
        ("oversized", url, big, stripe_headers(big, tenant.stripe_webhook_secret), 413, "payload_too_large"),
        (
            "wrong gateway",
            f"/webhooks/{stripe_only.id}/paystack",
            body,
            paystack_headers(body, "x"),
            404,
            "not_found",
        ),
    ]
    for name, path, content, headers, status, reason in cases:
        response = await ingest.post(path, content=content, headers=headers)
        assert response.status_code == status, (name, response.text)
        assert response.json()["error"] == reason.split(":")[0] or reason in response.text, name

    unknown = await ingest.post(
        "/webhooks/no-such-tenant/stripe",
        content=body,
        headers=stripe_headers(body, tenant.stripe_webhook_secret),
    )
    assert unknown.status_code == 404 and unknown.json()["error"] == "not_found"

    assert await raw_records_mentioning(kafka_topics, marker) == []
    rows = await quarantined(migrated_database, tenant.id, want=7)
    assert [(r.http_status, r.reason) for r in rows] == [
        (401, "authenticity_failed:bad_signature"),
        (401, "authenticity_failed:timestamp_outside_tolerance"),
        (401, "authenticity_failed:missing_signature"),
        (401, "authenticity_failed:malformed_signature_header"),
        (400, "malformed_payload:body is not JSON"),
        (400, "malformed_payload:content type must be application/json"),
        (413, "payload_too_large"),
    ]
    assert all(r.remote_addr == "203.0.113.7" for r in rows)
    assert rows[0].body_sha256 is not None and rows[0].body_bytes == len(body)
    assert "stripe-signature" not in rows[0].headers  # what was refused is described, not kept
    assert [r.reason for r in await quarantined(migrated_database, stripe_only.id, want=1)] == [
        "provider_not_configured"
    ]
    assert len(await quarantined(migrated_database, "no-such-tenant", want=1)) == 1


async def test_a_flood_of_forgeries_is_throttled_but_genuine_webhooks_still_pass(
    ingest, tenant, kafka_topics
) -> None:
    async def forgery() -> int:
        body, _ = stripe_body()
        headers = stripe_headers(body, "whsec_forger")
        return (await ingest.post(f"/webhooks/{tenant.id}/stripe", content=body, headers=headers)).status_code

    # All ten at once: sent one after another, a busy host (this app's normalizer reads the session's
    # raw topic in the same event loop) could take the 2 s the budget needs to earn another forgery.
    answers = sorted(await asyncio.gather(*(forgery() for _ in range(10))))
    assert answers[:5] == [401] * 5 and set(answers[6:]) == {429}
    body, marker = stripe_body()
    genuine = await ingest.post(
        f"/webhooks/{tenant.id}/stripe",
        content=body,
        headers=stripe_headers(body, tenant.stripe_webhook_secret),
    )
    assert genuine.status_code == 200
    assert [r.verdict.value for r in await raw_records_mentioning(kafka_topics, marker)] == ["verified"]


async def test_paystack_and_mpesa_webhooks_are_accepted_with_their_gateways_answers(
    ingest, tenant, kafka_topics
) -> None:
    reference = f"ref_{uuid.uuid4().hex}"
    body = to_body(paystack_charge_success(reference=reference, amount=250_000))
    ok = await ingest.post(
        f"/webhooks/{tenant.id}/paystack",
        content=body,
        headers=paystack_headers(body, tenant.paystack_secret_key),
    )
    assert ok.status_code == 200 and ok.json()["received"] is True
    forged = await ingest.post(
        f"/webhooks/{tenant.id}/paystack", content=body, headers=paystack_headers(body, "sk_test_other")
    )
    assert forged.status_code == 401

    request_id = checkout_request_id()
    callback = to_body(stk_callback(checkout_request_id=request_id, result_code=0, amount=150))
    accepted = await ingest.post(
        f"/webhooks/{tenant.id}/mpesa/{tenant.mpesa_callback_token}",
        content=callback,
        headers={"Content-Type": "application/json"},
    )
    assert accepted.status_code == 200
    assert accepted.json() == {"ResultCode": 0, "ResultDesc": "Accepted"}
    wrong_token = await ingest.post(
        f"/webhooks/{tenant.id}/mpesa/not-the-token",
        content=callback,
        headers={"Content-Type": "application/json"},
    )
    assert wrong_token.status_code == 401

    verdicts = {
        r.provider.value: r.verdict.value
        for m in (reference, request_id)
        for r in await raw_records_mentioning(kafka_topics, m)
    }
    assert verdicts == {"paystack": "verified", "mpesa": "unverifiable"}
