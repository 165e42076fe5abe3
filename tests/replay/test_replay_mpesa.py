"""`paysync replay` of M-Pesa callbacks: the payer stays findable by phone, and the number shows nowhere.

The callbacks reach webhook-ingest (its normalizer off: the raw topic has them, nothing normalized them);
the replay re-normalizes them with the services' `PAYSYNC_PHONE_HASH_KEY`, as the normalizer would.
"""

from __future__ import annotations

import json
import random
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import select

from paysync_core.db.schema import payments
from paysync_core.testing.builders import to_body
from paysync_core.testing.builders.mpesa import checkout_request_id, stk_callback
from paysync_dev.fixtures import TestTenant
from paysync_dev.reconcile import register
from paysync_dev.service_fixtures import fetch, running, service_env
from paysync_dev.stack import ServiceProcess

pytestmark = pytest.mark.integration

PHONE_HASH_KEY = uuid.uuid4().hex  # the key every service of this module and the replay share


@pytest.fixture(scope="module")
def api_gateway(
    kafka_topics: str, migrated_database: str, credentials_keys: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServiceProcess]:
    """The api-gateway as its own process, with the phone hash key: lookups by phone on."""
    env = {
        **service_env(kafka_topics, migrated_database, credentials_keys),
        "PAYSYNC_PHONE_HASH_KEY": PHONE_HASH_KEY,
    }
    with running("api-gateway", env, tmp_path_factory.mktemp("api-gateway") / "api-gateway.log") as process:
        yield process


def post_callback(ingest: ServiceProcess, tenant: TestTenant, request_id: str, phone: int) -> None:
    """A successful STK Push callback (150 KES, paid from `phone`) via webhook-ingest; 200 once durable."""
    body = to_body(stk_callback(checkout_request_id=request_id, result_code=0, amount=150, phone=phone))
    answer = httpx.post(
        f"{ingest.url}/webhooks/{tenant.id}/mpesa/{tenant.mpesa_callback_token}",
        content=body,
        headers={"Content-Type": "application/json"},
        timeout=30,
    )
    assert answer.status_code == 200, answer.text


def found_by_phone(api: ServiceProcess, tenant: TestTenant, phone: str) -> list[str]:
    """The ids of the tenant's payments `GET /v1/payments?phone=` finds."""
    answer = httpx.get(f"{api.url}/v1/payments", params={"phone": phone}, headers=tenant.auth, timeout=30)
    assert answer.status_code == 200, answer.text
    return [p["id"] for p in answer.json()["items"]]


async def test_replayed_mpesa_callbacks_keep_the_payer_findable_by_phone_and_never_show_the_number(
    webhook_ingest, projector, api_gateway, engine, tenant, paysync
):
    since = (datetime.now(UTC) - timedelta(seconds=1)).isoformat()
    subscriber = f"7{random.randrange(10**8):08d}"  # the 9 digits after 254: a number no other test uses
    request_id = checkout_request_id()
    payment = await register(engine, tenant.id, "mpesa", request_id, amount_minor=15000, currency="KES")
    post_callback(webhook_ingest, tenant, request_id, int(f"254{subscriber}"))
    assert found_by_phone(api_gateway, tenant, f"0{subscriber}") == []  # nothing normalized the callback

    args = ("replay", "--since", since, "--tenant", tenant.id, "--gateway", "mpesa", "--json")
    key = {"PAYSYNC_PHONE_HASH_KEY": PHONE_HASH_KEY}
    dry = paysync(*args, "--dry-run", settings=key)
    real = paysync(*args, settings=key)

    for run in (dry, real):
        assert run.returncode == 0, run.stderr
        assert json.loads(run.stdout)["counts"]["replayed"] == 1
        assert subscriber not in run.stdout + run.stderr
    # The real run returns once the projector applied the callback: the payer's phone finds the payment,
    # however the number is written.
    for written in (f"0{subscriber}", f"+254{subscriber}", f"254{subscriber}"):
        assert found_by_phone(api_gateway, tenant, written) == [str(payment)], written
    assert [json.loads(run.stdout)["counts"]["phones_unhashed"] for run in (dry, real)] == [0, 0]
    [row] = await fetch(engine, select(payments.c.phone_hash).where(payments.c.id == payment))
    assert row.phone_hash is not None and subscriber not in row.phone_hash
    for process in (projector.process, api_gateway, webhook_ingest):
        assert subscriber not in process.log_path.read_text(), process.name


async def test_a_replay_without_the_phone_hash_key_says_which_payers_it_cannot_make_findable(
    webhook_ingest, engine, tenant, paysync
):
    since = (datetime.now(UTC) - timedelta(seconds=1)).isoformat()
    subscriber = f"7{random.randrange(10**8):08d}"
    request_id = checkout_request_id()
    await register(engine, tenant.id, "mpesa", request_id, amount_minor=15000, currency="KES")
    post_callback(webhook_ingest, tenant, request_id, int(f"254{subscriber}"))

    args = ("replay", "--since", since, "--tenant", tenant.id, "--dry-run")
    no_key = {"PAYSYNC_PHONE_HASH_KEY": ""}
    dry = paysync(*args, "--json", settings=no_key)
    assert dry.returncode == 0, dry.stderr
    assert json.loads(dry.stdout)["counts"]["phones_unhashed"] == 1
    assert "1 M-Pesa callback(s) replayed without PAYSYNC_PHONE_HASH_KEY" in " ".join(dry.stderr.split())
    assert subscriber not in dry.stdout + dry.stderr
    with_key = paysync(*args, "--json", settings={"PAYSYNC_PHONE_HASH_KEY": PHONE_HASH_KEY})
    assert json.loads(with_key.stdout)["counts"]["phones_unhashed"] == 0
    assert "PAYSYNC_PHONE_HASH_KEY" not in with_key.stderr
