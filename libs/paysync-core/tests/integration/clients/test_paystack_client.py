"""The Paystack client against the simulated Paystack API."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from paysync_core.contracts.common import ObservationSource
from paysync_core.domain.status import UnifiedStatus as S
from paysync_core.errors import GatewayError, RateLimited
from paysync_core.providers.clients import NotFoundAtGateway, RetryPolicy

pytestmark = pytest.mark.integration


def reference() -> str:
    """A Paystack reference (alphanumerics, `-`, `.`, `=`)."""
    return f"ps-{uuid.uuid4().hex[:16]}"


async def test_initialized_transaction_is_pending_until_paid(clients, sim, paystack_account):
    client = clients.paystack(paystack_account)
    ref = reference()
    started = await client.initialize_transaction(
        email="ada@example.com",
        amount_minor=250_000,
        currency="NGN",
        reference=ref,
        callback_url="https://shop.test/paystack/return",
        domain="bookings",
        entity_id="bk-4",
    )
    assert started.provider_ref == ref
    assert started.checkout_url and started.checkout_url.startswith("https://checkout.paystack.com/")
    assert started.details["access_code"] in started.checkout_url

    waiting = await client.observe(ref)
    assert waiting.status is S.PENDING  # Paystack says "abandoned" until the customer pays

    sim.client.pay(paystack_account.id, ref)
    paid = await client.observe(ref)
    assert paid.status is S.SUCCEEDED
    assert (paid.amount_minor, paid.currency) == (250_000, "NGN")
    assert paid.entity is not None and paid.entity.entity_id == "bk-4"
    assert paid.source is ObservationSource.RECONCILE and paid.verified
    assert paid.mode == "test"  # the transaction's domain: the projector applies it to test payments only
    assert (await client.observe(ref)).observation_id == paid.observation_id


async def test_listing_a_window_walks_every_page(clients, sim, paystack_account):
    client = clients.paystack(paystack_account)
    start = datetime.now(UTC) - timedelta(minutes=1)
    expected = {}
    for i, step in enumerate(["pay", "fail", "pay", "abandon", "pay"]):
        ref = sim.client.create_payment(
            paystack_account.id,
            kind="transaction",
            amount_minor=5000 + i,
            currency="NGN",
            reference=reference(),
        ).ref
        sim.client.act(paystack_account.id, ref, step)
        expected[ref] = {"pay": S.SUCCEEDED, "fail": S.FAILED, "abandon": S.PENDING}[step]
    before = sim.requests(paystack_account)

    end = datetime.now(UTC) + timedelta(minutes=1)
    listed = [t async for t in client.list_transactions(start=start, end=end, per_page=2)]
    assert sim.requests(paystack_account) - before == 3  # pages of 2, 2 and 1
    observed = [client.observation_for(t) for t in listed]
    assert {o.provider_ref: o.status for o in observed} == expected

    succeeded = [o async for o in client.observe_window(start=start, end=datetime.now(UTC), status="success")]
    assert {o.provider_ref for o in succeeded} == {r for r, s in expected.items() if s is S.SUCCEEDED}


async def test_429_waits_for_retry_after_then_succeeds(clients, sim, paystack_account):
    client = clients.paystack(paystack_account)
    ref = sim.client.create_payment(paystack_account.id, kind="transaction", reference=reference()).ref
    sim.client.burst(paystack_account.id, "rate_limit", 1)  # answered 429 with Retry-After: 1
    before = sim.client.account_stats(paystack_account.id).api

    started = time.monotonic()
    seen = await client.observe(ref)
    elapsed = time.monotonic() - started

    after = sim.client.account_stats(paystack_account.id).api
    assert seen.provider_ref == ref
    assert elapsed >= 1.0
    assert after.injected_rate_limit - before.injected_rate_limit == 1
    assert after.requests - before.requests == 2  # the simulator saw the retry


async def test_a_retry_after_beyond_the_policy_is_handed_back(clients, sim, paystack_account):
    client = clients.paystack(paystack_account, policy=RetryPolicy(max_retry_after=0.5))
    ref = sim.client.create_payment(paystack_account.id, kind="transaction", reference=reference()).ref
    sim.client.burst(paystack_account.id, "rate_limit", 1)
    started = time.monotonic()
    with pytest.raises(RateLimited) as caught:
        await client.observe(ref)
    assert caught.value.retryable and caught.value.retry_after == 1.0
    assert time.monotonic() - started < 0.5  # nothing slept: the caller reschedules


async def test_server_errors_are_retried_and_persistent_ones_are_retryable(clients, sim, paystack_account):
    client = clients.paystack(paystack_account)
    ref = sim.client.create_payment(paystack_account.id, kind="transaction", reference=reference()).ref

    sim.client.burst(paystack_account.id, "server_error", 3)
    before = sim.requests(paystack_account)
    assert (await client.observe(ref)).provider_ref == ref
    assert sim.requests(paystack_account) - before == 4

    sim.client.burst(paystack_account.id, "server_error", 4)
    before = sim.requests(paystack_account)
    with pytest.raises(GatewayError) as caught:
        await client.observe(ref)
    assert caught.value.retryable and caught.value.status_code == 500
    assert sim.requests(paystack_account) - before == 4


async def test_unknown_reference_is_not_found(clients, sim, paystack_account):
    client = clients.paystack(paystack_account)
    before = sim.requests(paystack_account)
    with pytest.raises(NotFoundAtGateway) as caught:
        await client.observe("never-initialized")
    assert not caught.value.retryable and caught.value.reference == "never-initialized"
    assert sim.requests(paystack_account) - before == 1


async def test_metadata_sent_as_a_json_string_comes_back_a_string_and_still_names_the_entity(
    clients, sim, paystack_account, http
):
    """Paystack takes metadata as a JSON string and gives the string back; the client parses it."""
    ref = reference()
    sent = await http.post(
        f"{sim.client.paystack_base}/transaction/initialize",
        headers={"Authorization": f"Bearer {paystack_account.secret_key}"},
        json={
            "email": "ada@example.com",
            "amount": 5000,
            "reference": ref,
            "metadata": '{"paysync_domain": "bookings", "paysync_entity_id": "bk-9"}',
        },
    )
    assert sent.status_code == 200, sent.text
    sim.client.pay(paystack_account.id, ref)
    verified = await http.get(
        f"{sim.client.paystack_base}/transaction/verify/{ref}",
        headers={"Authorization": f"Bearer {paystack_account.secret_key}"},
    )
    assert isinstance(verified.json()["data"]["metadata"], str)

    seen = await clients.paystack(paystack_account).observe(ref)
    assert seen.status is S.SUCCEEDED
    assert seen.entity is not None and (seen.entity.domain, seen.entity.entity_id) == ("bookings", "bk-9")
