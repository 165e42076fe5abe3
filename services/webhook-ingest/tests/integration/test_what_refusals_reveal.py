"""What a refused request tells its sender, and what the service's log keeps (webhook-ingest as a process)."""

from __future__ import annotations

import json
import time

import httpx
import pytest
from cryptography.fernet import Fernet

from paysync_core.logging import token_fingerprint
from paysync_core.testing.builders import to_body
from paysync_core.testing.builders.mpesa import checkout_request_id, stk_callback
from paysync_dev.fixtures import create_tenant

from .conftest import paystack_headers, quarantined, stripe_body, stripe_headers

pytestmark = pytest.mark.integration

JSON = {"Content-Type": "application/json"}


def log_lines(service, until: str, timeout: float = 10.0) -> list[dict]:
    """The service's JSON log lines, once one of them mentions `until`."""
    deadline = time.monotonic() + timeout
    while True:
        text = service.log_path.read_text(errors="replace")
        if until in text or time.monotonic() > deadline:
            return [json.loads(line) for line in text.splitlines() if line.startswith("{")]
        time.sleep(0.1)


async def test_unknown_tenants_and_unconfigured_gateways_get_one_answer_naming_neither(
    webhook_ingest, migrated_database, credentials_keys
) -> None:
    stripe_only = create_tenant(migrated_database, credentials_keys, gateways=("stripe",))
    unknown = f"{stripe_only.id}-x"
    body, _ = stripe_body()
    answers = []
    for tenant in (stripe_only.id, unknown):
        for path in ("paystack", f"mpesa/{checkout_request_id()}"):
            headers = paystack_headers(body, "sk_test_guess")
            url = f"{webhook_ingest.url}/webhooks/{tenant}/{path}"
            response = httpx.post(url, content=body, headers=headers)  # noqa: ASYNC210 - requests one at a time, as a gateway sends them
            answers.append((response.status_code, response.content))
            assert stripe_only.id not in response.text and "paystack" not in response.text
            assert "mpesa" not in response.text.lower()
    assert len(set(answers)) == 1 and answers[0][0] == 404
    assert json.loads(answers[0][1])["problems"] == []
    # Operators still tell them apart.
    assert {r.reason for r in await quarantined(migrated_database, stripe_only.id, want=2)} == {
        "provider_not_configured"
    }
    assert {r.reason for r in await quarantined(migrated_database, unknown, want=2)} == {"unknown_tenant"}


def test_the_content_type_is_parsed_not_searched_for_json(
    webhook_ingest, migrated_database, credentials_keys
) -> None:
    tenant = create_tenant(migrated_database, credentials_keys, gateways=("stripe",))
    url = f"{webhook_ingest.url}/webhooks/{tenant.id}/stripe"

    def post(content_type: str) -> httpx.Response:
        body, _ = stripe_body()
        headers = {**stripe_headers(body, tenant.stripe_webhook_secret), "Content-Type": content_type}
        return httpx.post(url, content=body, headers=headers)

    for refused in ("text/not-json", "application/jsonp", "text/plain; note=json", "application/+json"):
        response = post(refused)
        assert response.status_code == 400, refused
        assert response.json()["error"] == "malformed_payload"
    for accepted in ("application/json", "Application/JSON; charset=utf-8", "application/vnd.api+json"):
        assert post(accepted).status_code == 200, accepted


def test_callback_tokens_stay_out_of_the_log_and_failures_carry_stack_traces(
    webhook_ingest, migrated_database, credentials_keys
) -> None:
    tenant = create_tenant(migrated_database, credentials_keys, gateways=("mpesa",))
    token = tenant.mpesa_callback_token
    callback = to_body(stk_callback(checkout_request_id=checkout_request_id(), result_code=0, amount=10))
    base = f"{webhook_ingest.url}/webhooks/{tenant.id}/mpesa"
    assert httpx.post(f"{base}/{token}", content=b"{not json", headers=JSON).status_code == 400
    as_xml = {"Content-Type": "text/xml"}
    assert httpx.post(f"{base}/{token}", content=callback, headers=as_xml).status_code == 400
    near_miss = token[:-1] + ("0" if token[-1] != "0" else "1")  # what a mistyped or old token looks like
    assert httpx.post(f"{base}/{near_miss}", content=callback, headers=JSON).status_code == 401
    # Credentials no configured key opens (an operator's mistake): a 500, logged with its stack trace.
    locked = create_tenant(migrated_database, Fernet.generate_key().decode(), gateways=("mpesa",))
    failed = httpx.post(
        f"{webhook_ingest.url}/webhooks/{locked.id}/mpesa/{locked.mpesa_callback_token}",
        content=callback,
        headers=JSON,
    )
    assert failed.status_code == 500

    lines = log_lines(webhook_ingest, until=locked.id)
    text = webhook_ingest.log_path.read_text()
    for secret in (token, near_miss, locked.mpesa_callback_token):
        assert secret not in text
    refusals = [x for x in lines if x.get("event") == "webhook.refused" and tenant.id in x["path"]]
    assert [x["status"] for x in refusals] == [400, 400, 401]
    assert refusals[0]["path"] == f"/webhooks/{tenant.id}/mpesa/[{token_fingerprint(token)}]"
    [failure] = [x for x in lines if x.get("event") == "webhook.failed" and locked.id in x["path"]]
    assert failure["exception"].startswith("Traceback (most recent call last)")
    assert "CredentialsKeyError: no configured key decrypts these credentials" in failure["exception"]
    assert "<traceback object" not in text
