"""Payments started through `POST /v1/payments/checkout` at the gateway simulator, paid there, and
followed to `succeeded` by the normal path (signed webhooks / M-Pesa callbacks into webhook-ingest,
the projector); a crash between the gateway call and the registration; M-Pesa retries."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from paysync_core.db.engine import make_engine
from paysync_core.db.schema import checkouts, reconcile_checks, referrals
from paysync_dev.fixtures import TestTenant, create_tenant, new_migrated_database
from paysync_dev.service_fixtures import fetch, service_env, wait_until
from paysync_dev.stack import ServiceProcess, free_port, start_stack, stop_stack
from paysync_gateway_sim import SimulatorClient

pytestmark = pytest.mark.e2e

PHONE = "0708374149"
MAX_SENDS = 2


@pytest.fixture(scope="module")
def checkout_database(database_url: str) -> Iterator[str]:
    """A database of this module's own: its reconciler checks pushes every second, and in the session's
    database it would check every other test's tenants as often (thousands of failing checks a minute)."""
    with new_migrated_database(database_url) as url:
        yield url


@pytest.fixture
def tenant(checkout_database: str, credentials_keys: str, gateway_sim: SimulatorClient) -> TestTenant:
    """A fresh tenant in the module's database, with all three gateways at the simulator."""
    return create_tenant(checkout_database, credentials_keys, sim=gateway_sim)


@pytest.fixture(scope="module")
async def engine(checkout_database: str) -> AsyncIterator[AsyncEngine]:
    """An engine on the module's database."""
    eng = make_engine(checkout_database, pool_size=2)
    yield eng
    await eng.dispose()


@pytest.fixture(scope="module")
def stack(
    no_shared_stack: None,
    kafka_topics: str,
    checkout_database: str,
    credentials_keys: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[dict[str, ServiceProcess]]:
    """The five services, with M-Pesa payments allowed two pushes (so the limit is reached here),
    checkouts left initiating settled by the reconciler after 5 s, and pushes checked seconds after they
    are sent (not a minute: a lost callback is found in the test's time)."""
    env = {**service_env(kafka_topics, checkout_database, credentials_keys)}
    env["PAYSYNC_API_GATEWAY_MPESA_MAX_SENDS"] = str(MAX_SENDS)
    # Checkouts left initiating by a crash are looked for often, after a short while.
    env |= {
        "PAYSYNC_RECONCILER_CHECKOUT_GRACE_SECONDS": "5",
        "PAYSYNC_RECONCILER_CHECKOUT_SWEEP_SECONDS": "0.5",
        "PAYSYNC_RECONCILER_MPESA_SCHEDULE": "2,5,30",
        "PAYSYNC_RECONCILER_MPESA_CADENCE_SECONDS": "1",
    }
    procs = start_stack(env, tmp_path_factory.mktemp("service-logs"))
    yield procs
    stop_stack(procs)


@pytest.fixture
def shop(stack: dict[str, ServiceProcess], tenant: TestTenant, gateway_sim: SimulatorClient) -> TestTenant:
    """A tenant whose simulator accounts send their webhooks to this stack's webhook-ingest."""
    hooks = f"{stack['webhook-ingest'].url}/webhooks/{tenant.id}"
    gateway_sim.update_account(tenant.account("stripe").id, webhook_url=f"{hooks}/stripe")
    gateway_sim.update_account(tenant.account("paystack").id, webhook_url=f"{hooks}/paystack")
    return tenant


def start(api: str, tenant: TestTenant, body: dict, key: str | None = None) -> httpx.Response:
    headers = {**tenant.auth, **({"Idempotency-Key": key} if key else {})}
    return httpx.post(f"{api}/v1/payments/checkout", json=body, headers=headers, timeout=60)


def stripe_body(**more: object) -> dict:
    return {
        "provider": "stripe",
        "domain": "jobs",
        "entity_id": f"job-{uuid.uuid4().hex[:6]}",
        "amount_minor": 12500,
        "currency": "USD",
        "success_url": "https://shop.example/paid",
        "cancel_url": "https://shop.example/cart",
    } | more


def paystack_body() -> dict:
    return {
        "provider": "paystack",
        "domain": "bookings",
        "entity_id": f"bk-{uuid.uuid4().hex[:6]}",
        "amount_minor": 500000,
        "currency": "NGN",
        "email": "ada@example.com",
    }


def mpesa_body() -> dict:
    return {
        "provider": "mpesa",
        "domain": "referrals",
        "entity_id": f"ref-{uuid.uuid4().hex[:6]}",
        "amount_minor": 10000,
        "currency": "KES",
        "phone": PHONE,
        "account_reference": "REF42",
    }


async def status_becomes(
    api: str, tenant: TestTenant, payment_id: str, status: str, timeout: float = 60
) -> dict:
    seen: dict = {}

    async def reached() -> bool:
        async with httpx.AsyncClient() as http:
            seen.update((await http.get(f"{api}/v1/payments/{payment_id}", headers=tenant.auth)).json())
        return seen["status"] == status

    await wait_until(reached, timeout, f"payment {payment_id} {status}")
    return seen


async def push_again(api: str, tenant: TestTenant, payment_id: str) -> httpx.Response:
    """`POST /v1/payments/{id}/retry` with the customer's phone."""
    async with httpx.AsyncClient(timeout=60) as http:
        return await http.post(
            f"{api}/v1/payments/{payment_id}/retry", json={"phone": PHONE}, headers=tenant.auth
        )


def registered_as(api: str, tenant: TestTenant, ref: str) -> list[str]:
    """The ids of the payments a gateway reference (or alias) is registered to."""
    page = httpx.get(f"{api}/v1/payments", params={"provider_ref": ref}, headers=tenant.auth).json()
    return [p["id"] for p in page["items"]]


async def test_stripe_checkout_paid_at_the_gateway_ends_succeeded(stack, shop, gateway_sim) -> None:
    api, key, body = stack["api-gateway"].url, uuid.uuid4().hex, stripe_body()
    first = start(api, shop, body, key)
    assert first.status_code == 201, first.text
    started = first.json()
    assert started["session_id"].startswith("cs_") and started["provider_ref"] == started["session_id"]
    assert started["checkout_url"].startswith("http") and started["status"] == "pending"
    again = start(api, shop, body, key)
    assert again.status_code == 200 and again.json()["payment_id"] == started["payment_id"]
    assert again.json()["session_id"] == started["session_id"]
    assert len(gateway_sim.payments(shop.account("stripe").id)) == 1

    gateway_sim.pay(shop.account("stripe").id, started["session_id"])
    paid = await status_becomes(api, shop, started["payment_id"], "succeeded")
    assert paid["provider_ref"] == started["session_id"] and paid["entity_id"] == body["entity_id"]


async def test_paystack_checkout_paid_at_the_gateway_ends_succeeded(stack, shop, gateway_sim) -> None:
    api = stack["api-gateway"].url
    answer = start(api, shop, paystack_body(), uuid.uuid4().hex)
    assert answer.status_code == 201, answer.text
    started = answer.json()
    assert started["reference"] == started["provider_ref"] == started["payment_id"]
    assert started["access_code"] and started["checkout_url"].endswith(started["access_code"])

    gateway_sim.pay(shop.account("paystack").id, started["reference"])
    await status_becomes(api, shop, started["payment_id"], "succeeded")


async def test_mpesa_retry_after_a_cancel_succeeds_and_counts_two_sends(
    stack, shop, gateway_sim, engine
) -> None:
    api, account, body = stack["api-gateway"].url, shop.account("mpesa").id, mpesa_body()
    answer = start(api, shop, body, uuid.uuid4().hex)
    assert answer.status_code == 201, answer.text
    first = answer.json()
    assert first["checkout_request_id"].startswith("ws_CO_") and first["customer_message"]
    in_flight = await push_again(api, shop, first["payment_id"])
    assert in_flight.status_code == 409 and in_flight.json()["error"] == "attempt_in_flight"

    gateway_sim.cancel(account, first["checkout_request_id"])
    await status_becomes(api, shop, first["payment_id"], "canceled")
    resent = await push_again(api, shop, first["payment_id"])
    assert resent.status_code == 200, resent.text
    second = resent.json()
    assert second["sends"] == 2 and second["payment_id"] == first["payment_id"]
    assert second["checkout_request_id"] not in (None, first["checkout_request_id"])
    assert registered_as(api, shop, second["checkout_request_id"]) == [first["payment_id"]]

    gateway_sim.pay(account, second["checkout_request_id"])
    await status_becomes(api, shop, first["payment_id"], "succeeded")

    async def referral_counts_two() -> bool:
        rows = await fetch(
            engine,
            select(referrals).where(
                referrals.c.tenant_id == shop.id, referrals.c.referral_id == body["entity_id"]
            ),
        )
        return bool(rows) and rows[0].stk_pushes_sent == 2 and rows[0].status == "paid"

    await wait_until(referral_counts_two, 60, "the referral paid with two pushes sent")
    paid_already = await push_again(api, shop, first["payment_id"])
    assert paid_already.status_code == 409 and paid_already.json()["error"] == "already_paid"


async def test_mpesa_retry_refused_past_the_most_sends(stack, shop, gateway_sim) -> None:
    api, account = stack["api-gateway"].url, shop.account("mpesa").id
    first = start(api, shop, mpesa_body(), uuid.uuid4().hex).json()
    gateway_sim.cancel(account, first["checkout_request_id"])
    await status_becomes(api, shop, first["payment_id"], "canceled")
    second = (await push_again(api, shop, first["payment_id"])).json()
    assert second["sends"] == MAX_SENDS
    gateway_sim.fail(account, second["checkout_request_id"])
    await status_becomes(api, shop, first["payment_id"], "failed")

    refused = await push_again(api, shop, first["payment_id"])
    assert refused.status_code == 409 and refused.json()["error"] == "too_many_attempts"
    assert len(gateway_sim.payments(account)) == MAX_SENDS


def crash_mid_checkout(stack, shop: TestTenant, body: dict, key: str, log_dir: Path) -> None:
    """Send the checkout to an api-gateway that dies between the gateway's answer and the registration."""
    env = {**stack["api-gateway"].env, "PAYSYNC_API_GATEWAY_CHECKOUT_FAULT": "crash_after_gateway_call"}
    doomed = ServiceProcess("api-gateway", free_port(), env, log_dir / "crashing-api-gateway.log")
    doomed.start()
    try:
        doomed.wait_ready()
        with pytest.raises(httpx.TransportError):  # the process died before it could answer
            start(doomed.url, shop, body, key)
        assert doomed.process is not None and doomed.process.wait(30) != 0
    finally:
        doomed.stop()


async def test_a_retried_push_whose_callback_is_lost_is_found_paid_by_the_reconciler(
    stack, shop, gateway_sim, engine
) -> None:
    api, account = stack["api-gateway"].url, shop.account("mpesa").id
    first = (await asyncio.to_thread(start, api, shop, mpesa_body(), uuid.uuid4().hex)).json()
    gateway_sim.cancel(account, first["checkout_request_id"])
    await status_becomes(api, shop, first["payment_id"], "canceled")

    async def checks_ended() -> bool:
        rows = await fetch(
            engine,
            select(reconcile_checks.c.done_at).where(
                reconcile_checks.c.payment_id == uuid.UUID(first["payment_id"])
            ),
        )
        return bool(rows) and rows[0].done_at is not None

    await wait_until(checks_ended, 60, "the reconciler's checks of the cancelled push to end")
    gateway_sim.set_faults(account, webhooks={"drop_ratio": 1.0})  # the new push's callback is lost
    second = (await push_again(api, shop, first["payment_id"])).json()
    gateway_sim.pay(account, second["checkout_request_id"])
    # found by the reconciler's checks of the new push (seconds after it: a generous bound)
    paid = await status_becomes(api, shop, first["payment_id"], "succeeded", timeout=180)
    assert paid["provider_ref"] == second["checkout_request_id"]
    assert paid["aliases"] == [first["checkout_request_id"]]


@pytest.mark.parametrize("provider", ["stripe", "paystack"])
def test_a_crash_between_the_gateway_and_the_registration_leaves_no_unregistered_payment(
    stack, shop, gateway_sim, tmp_path: Path, provider: str
) -> None:
    api, account = stack["api-gateway"].url, shop.account(provider).id
    key, body = uuid.uuid4().hex, stripe_body() if provider == "stripe" else paystack_body()
    crash_mid_checkout(stack, shop, body, key, tmp_path)
    made = gateway_sim.payments(account)
    assert len(made) == 1  # the gateway did start it

    finished = start(api, shop, body, key)  # the app retries the same request
    assert finished.status_code in (200, 201), finished.text  # 200: the reconciler finished it first
    payment_id = finished.json()["payment_id"]
    at_gateway = [p.ref for p in gateway_sim.payments(account)]
    if provider == "stripe":
        assert at_gateway == [made[0].ref] == [finished.json()["session_id"]]
    for ref in at_gateway:
        assert registered_as(api, shop, ref) == [payment_id]


async def test_a_stripe_checkout_left_by_a_crash_is_registered_by_the_reconciler(
    stack, shop, gateway_sim, tmp_path: Path
) -> None:
    api, account, key, body = (
        stack["api-gateway"].url,
        shop.account("stripe").id,
        uuid.uuid4().hex,
        stripe_body(),
    )
    await asyncio.to_thread(crash_mid_checkout, stack, shop, body, key, tmp_path)
    (made,) = gateway_sim.payments(account)

    async def registered() -> bool:  # nobody retries: the reconciler finds the checkout and finishes it
        return bool(await asyncio.to_thread(registered_as, api, shop, made.ref))

    await wait_until(registered, 60, "the reconciler to register the crashed checkout's session")
    gateway_sim.pay(account, made.ref)
    (payment_id,) = registered_as(api, shop, made.ref)
    await status_becomes(api, shop, payment_id, "succeeded")
    answer = await asyncio.to_thread(start, api, shop, body, key)  # a late retry gets the same payment
    assert answer.status_code == 200 and answer.json()["session_id"] == made.ref
    assert [p.ref for p in gateway_sim.payments(account)] == [made.ref]


def test_bad_requests_get_clear_errors_and_start_nothing(stack, shop, gateway_sim) -> None:
    api = stack["api-gateway"].url
    no_key = start(api, shop, stripe_body())
    assert no_key.status_code == 422 and no_key.json()["problems"][0]["field"] == "Idempotency-Key"
    lacking = start(api, shop, stripe_body(success_url=None), uuid.uuid4().hex)
    assert lacking.status_code == 422
    assert {"field": "success_url", "problem": "required for stripe"} in lacking.json()["problems"]
    bad_phone = start(api, shop, mpesa_body() | {"phone": "0123456789012"}, uuid.uuid4().hex)
    assert bad_phone.status_code == 422 and "0123456789012" not in bad_phone.text
    assert bad_phone.json()["problems"][0]["field"] == "phone"
    key = uuid.uuid4().hex
    assert start(api, shop, paystack_body(), key).status_code == 201
    reused = start(api, shop, paystack_body(), key)  # another entity under the same key
    assert reused.status_code == 409 and reused.json()["error"] == "idempotency_key_reused"
    assert not gateway_sim.payments(shop.account("stripe").id)
    assert not gateway_sim.payments(shop.account("mpesa").id)
    assert len(gateway_sim.payments(shop.account("paystack").id)) == 1


def test_a_gateway_that_keeps_refusing_is_a_503_with_no_secret(stack, shop, gateway_sim) -> None:
    account = shop.account("stripe")
    gateway_sim.burst(account.id, "rate_limit", 10)
    refused = start(stack["api-gateway"].url, shop, stripe_body(), uuid.uuid4().hex)
    assert refused.status_code == 503, refused.text
    assert refused.json()["error"] == "rate_limited" and "Retry-After" in refused.headers
    assert account.secret_key and account.secret_key not in refused.text


def run_tool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", *args], capture_output=True, text=True, timeout=300, check=False
    )


@pytest.mark.parametrize(
    ("gateway", "outcome", "shown"), [("paystack", "pay", "succeeded"), ("stripe", "refund", "refunded")]
)
def test_make_try_starts_through_the_api_and_shows_the_outcome(
    stack, shop, gateway_sim, gateway: str, outcome: str, shown: str
) -> None:
    api = stack["api-gateway"].url
    done = run_tool(
        "paysync_dev.demo", "try", "--gateway", gateway, "--outcome", outcome, "--api", api,
        "--api-key", shop.api_key, "--sim", gateway_sim.base_url, "--account", shop.account(gateway).id,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "started through POST /v1/payments/checkout" in done.stdout
    assert f"the API shows {shown}" in done.stdout
    (payment,) = httpx.get(f"{api}/v1/payments", params={"provider": gateway}, headers=shop.auth).json()[
        "items"
    ]
    assert payment["status"] == shown and payment["provider_ref"] in done.stdout


async def test_a_scenario_for_the_demo_tenant_registers_its_payment(stack, shop, gateway_sim) -> None:
    api = stack["api-gateway"].url
    done = await asyncio.to_thread(
        run_tool,
        "paysync_gateway_sim", "scenario", "pay", "mpesa", "--account", shop.account("mpesa").id,
        "--through-paysync", "--api", api, "--api-key", shop.api_key, "--url", gateway_sim.base_url,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    (made,) = gateway_sim.payments(shop.account("mpesa").id)
    (payment_id,) = registered_as(api, shop, made.ref)
    await status_becomes(api, shop, payment_id, "succeeded")


async def test_no_full_phone_number_in_the_logs_or_the_checkouts(stack, shop, gateway_sim, engine) -> None:
    """Runs after the M-Pesa tests of this module: what they sent is in the services' logs by now."""
    api, account = stack["api-gateway"].url, shop.account("mpesa").id
    first = (await asyncio.to_thread(start, api, shop, mpesa_body(), uuid.uuid4().hex)).json()
    gateway_sim.cancel(account, first["checkout_request_id"])
    await status_becomes(api, shop, first["payment_id"], "canceled")
    assert (await push_again(api, shop, first["payment_id"])).status_code == 200
    subscriber = PHONE[1:]  # 708374149: in 07…, 2547… and +2547… alike
    for name, service in stack.items():
        assert subscriber not in service.log_path.read_text(errors="replace"), name
    stored = await fetch(
        engine, select(checkouts.c.request, checkouts.c.answer).where(checkouts.c.tenant_id == shop.id)
    )
    assert stored and all(subscriber not in repr(tuple(row)) for row in stored)
