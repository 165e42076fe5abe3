"""Test and live kept apart, process to process: a tenant that switched to live keys can never mark one
of its test payments paid with a live event, and the refusal is there to see."""

from __future__ import annotations

import asyncio
import time
import uuid

import httpx
import pytest
from pydantic import SecretStr

from paysync_core.crypto import CredentialsCipher
from paysync_core.db.engine import make_engine
from paysync_core.db.tenants import load_credentials, set_credentials
from paysync_core.testing.builders.stripe import checkout_session, stripe_event

from .test_stripe_payment_end_to_end import deliver, register, wait_for_status

pytestmark = pytest.mark.e2e


def switch_to_live_stripe_keys(url: str, keys: str, tenant_id: str) -> None:
    """What an operator does when a tenant goes live: its Stripe secret key becomes a live key."""

    async def run() -> None:
        engine = make_engine(url, pool_size=1)
        try:
            async with engine.begin() as conn:
                cipher = CredentialsCipher(keys)
                credentials = await load_credentials(conn, tenant_id, cipher)
                assert credentials.stripe is not None
                live_key = SecretStr(f"sk_live_{uuid.uuid4().hex}")
                stripe = credentials.stripe.model_copy(update={"secret_key": live_key})
                live = credentials.model_copy(update={"stripe": stripe})
                await set_credentials(conn, tenant_id, live, cipher)
        finally:
            await engine.dispose()

    asyncio.run(run())


def deliver_until_accepted(stack, tenant, event: dict, timeout: float = 15.0) -> httpx.Response:
    """webhook-ingest drops its cached keys when they change; until it has, a live event is refused."""
    deadline = time.monotonic() + timeout
    while (response := deliver(stack, tenant, event)).status_code != 200 and time.monotonic() < deadline:
        time.sleep(0.1)
    return response


def mode_mismatch_listed(stack, tenant, payment_id: str, timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        issues = httpx.get(
            f"{stack['api-gateway'].url}/v1/sync-issues",
            params={"kind": "mode_mismatch"},
            headers={"Authorization": f"Bearer {tenant.api_key}"},
        ).json()["items"]
        if any(i["payment_id"] == payment_id for i in issues):
            return True
        time.sleep(0.1)
    return False


def test_a_live_event_after_going_live_never_pays_a_test_payment(
    stack, tenant, migrated_database, credentials_keys
) -> None:
    test_session, live_session = f"cs_test_{uuid.uuid4().hex}", f"cs_live_{uuid.uuid4().hex}"
    test_payment = register(stack, tenant, test_session, f"job-{uuid.uuid4().hex[:8]}")
    assert test_payment["mode"] == "test"
    switch_to_live_stripe_keys(migrated_database, credentials_keys, tenant.id)
    live_payment = register(stack, tenant, live_session, f"job-{uuid.uuid4().hex[:8]}")
    assert live_payment["mode"] == "live"

    for session in (test_session, live_session):  # correctly signed live events for both
        event = stripe_event(
            "checkout.session.completed",
            checkout_session(id=session, payment_status="paid", amount_total=12500, currency="usd"),
            livemode=True,
        )
        assert deliver_until_accepted(stack, tenant, event).status_code == 200

    assert wait_for_status(stack, tenant, live_payment["id"], "succeeded")["status"] == "succeeded"
    assert mode_mismatch_listed(stack, tenant, test_payment["id"])
    test_now = wait_for_status(stack, tenant, test_payment["id"], "pending", timeout=0)
    assert (test_now["status"], test_now["mode"], test_now["paid_at"]) == ("pending", "test", None)
