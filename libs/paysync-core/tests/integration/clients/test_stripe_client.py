"""The Stripe client (official SDK over paysync's transport) against the simulated Stripe API."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest

from paysync_core.contracts.common import ObservationSource
from paysync_core.credentials import StripeCredentials
from paysync_core.domain.status import UnifiedStatus as S
from paysync_core.errors import GatewayError
from paysync_core.providers.clients import (
    GatewayUnreachable,
    NotFoundAtGateway,
    RetryPolicy,
    StripeGatewayClient,
)
from paysync_gateway_sim.testing import free_port

pytestmark = pytest.mark.integration

NO_WAITING = RetryPolicy(max_attempts=3, base_delay=0.02, max_delay=0.1)


async def test_checkout_session_created_then_paid_is_observed_succeeded(clients, sim, stripe_account):
    client = clients.stripe(stripe_account)
    started = await client.create_checkout_session(
        amount_minor=4500,
        currency="KES",
        product_name="Brake pads",
        success_url="https://shop.test/ok",
        cancel_url="https://shop.test/cancel",
        domain="workshop_jobs",
        entity_id="job-17",
    )
    assert started.provider_ref.startswith("cs_")
    assert started.checkout_url and started.provider_ref in started.checkout_url

    before = await client.observe(started.provider_ref)
    assert before.status is S.PENDING

    sim.client.pay(stripe_account.id, started.provider_ref)
    seen = await client.observe(started.provider_ref)
    assert seen.status is S.SUCCEEDED
    assert (seen.amount_minor, seen.currency) == (4500, "KES")
    assert seen.entity is not None
    assert (seen.entity.domain, seen.entity.entity_id) == ("workshop_jobs", "job-17")
    assert seen.source is ObservationSource.RECONCILE and seen.verified
    assert seen.mode == "test"  # the session's livemode: the projector applies it to test payments only
    assert seen.aliases and seen.aliases[0].startswith("pi_")  # the session's PaymentIntent
    # Checking an unchanged session again gives the same observation id, so it dedupes.
    assert (await client.observe(started.provider_ref)).observation_id == seen.observation_id
    assert seen.observation_id != before.observation_id


async def test_payment_intent_and_invoice_map_through_the_status_tables(clients, sim, stripe_account):
    client = clients.stripe(stripe_account)
    declined = sim.client.create_payment(
        stripe_account.id, kind="payment_intent", amount_minor=1200, currency="usd"
    ).ref
    sim.client.fail(stripe_account.id, declined)
    tags = {"paysync_domain": "invoices", "paysync_entity_id": "INV-9"}
    invoice = sim.client.create_payment(
        stripe_account.id, kind="invoice", amount_minor=9900, currency="usd", metadata=tags
    ).ref

    failed = await client.observe(declined)
    assert failed.status is S.FAILED and failed.evidence.detail == "generic_decline"
    open_invoice = await client.observe(invoice)
    assert open_invoice.status is S.PENDING and open_invoice.amount_minor == 9900

    sim.client.pay(stripe_account.id, invoice)
    paid = await client.observe(invoice)
    assert paid.status is S.SUCCEEDED
    assert paid.entity is not None and paid.entity.entity_id == "INV-9"
    assert any(alias.startswith("pi_") for alias in paid.aliases)


async def test_events_are_listed_across_pages_and_parsed_like_webhooks(clients, sim, stripe_account):
    client = clients.stripe(stripe_account)
    since = datetime.now(UTC) - timedelta(minutes=1)
    outcomes = {}
    for i in range(5):
        ref = sim.client.create_payment(stripe_account.id, kind="payment_intent", amount_minor=1000 + i).ref
        if i % 2:
            sim.client.fail(stripe_account.id, ref)
            outcomes[ref] = S.FAILED
        else:
            sim.client.pay(stripe_account.id, ref)
            outcomes[ref] = S.SUCCEEDED
    requests_before = sim.requests(stripe_account)

    types = ["payment_intent.succeeded", "payment_intent.payment_failed"]
    events = [e async for e in client.list_events(created_gte=since, types=types, page_size=2)]
    assert sim.requests(stripe_account) - requests_before == 3  # 5 events, 2 a page

    observations = [client.observation_for_event(e) for e in events]
    assert {o.provider_ref: o.status for o in observations if o} == outcomes
    assert all(o and o.source is ObservationSource.RECONCILE and o.verified for o in observations)
    assert {o.observation_id for o in observations if o} == {e.id for e in events}  # the event ids

    everything = [o async for o in client.observe_events(created_gte=since)]
    assert {o.provider_ref for o in everything} >= set(outcomes)


async def test_rate_limited_requests_are_retried_until_served(clients, sim, stripe_account):
    client = clients.stripe(stripe_account)
    ref = sim.client.create_payment(stripe_account.id, kind="payment_intent").ref
    sim.client.burst(stripe_account.id, "rate_limit", 2)
    before = sim.client.account_stats(stripe_account.id).api

    seen = await client.observe(ref)

    after = sim.client.account_stats(stripe_account.id).api
    assert seen.provider_ref == ref
    assert after.injected_rate_limit - before.injected_rate_limit == 2
    assert after.requests - before.requests == 3  # two 429s, then the answer


async def test_server_error_burst_is_retried_then_served(clients, sim, stripe_account):
    client = clients.stripe(stripe_account)
    ref = sim.client.create_payment(stripe_account.id, kind="payment_intent").ref
    sim.client.burst(stripe_account.id, "server_error", 2)
    before = sim.requests(stripe_account)

    seen = await client.observe(ref)

    assert seen.status is S.PENDING
    assert sim.requests(stripe_account) - before == 3


async def test_persistent_server_errors_raise_a_retryable_gateway_error(clients, sim, stripe_account):
    client = clients.stripe(stripe_account)
    ref = sim.client.create_payment(stripe_account.id, kind="payment_intent").ref
    sim.client.burst(stripe_account.id, "server_error", 4)  # as many as the policy's attempts
    before = sim.requests(stripe_account)
    with pytest.raises(GatewayError) as caught:
        await client.observe(ref)
    assert caught.value.retryable and caught.value.status_code == 500
    assert caught.value.provider == "stripe"
    assert sim.requests(stripe_account) - before == 4  # the policy's max_attempts


async def test_unknown_session_is_not_found_and_not_retried(clients, sim, stripe_account):
    client = clients.stripe(stripe_account)
    before = sim.requests(stripe_account)
    with pytest.raises(NotFoundAtGateway) as caught:
        await client.observe("cs_test_doesnotexist")
    assert not caught.value.retryable and caught.value.status_code == 404
    assert sim.requests(stripe_account) - before == 1


async def test_a_wrong_secret_key_is_rejected_without_retries(clients, sim, stripe_account):
    wrong = stripe_account.model_copy(update={"secret_key": "sk_test_wrong"})
    client = clients.stripe(wrong)
    before = sim.unauthenticated("stripe")
    started = time.monotonic()
    with pytest.raises(GatewayError) as caught:
        await client.observe("pi_whatever")
    assert not caught.value.retryable and caught.value.status_code == 401
    assert sim.unauthenticated("stripe") - before == 1
    assert time.monotonic() - started < 1.0


async def test_an_unreachable_gateway_is_a_retryable_error_after_the_retries(clients):
    client_nowhere = StripeGatewayClient(
        clients.tenant,
        StripeCredentials(
            secret_key="sk_test_x",
            webhook_secrets=("whsec_x",),
            api_base=f"http://127.0.0.1:{free_port()}/stripe",
        ),
        clients.http,
        policy=NO_WAITING,
    )
    with pytest.raises(GatewayUnreachable) as caught:
        await client_nowhere.observe("pi_anything")
    assert caught.value.retryable and caught.value.request_sent is False


async def test_an_invoice_is_observed_at_the_time_stripe_says_it_was_paid(clients, sim, stripe_account):
    """The provider time of a paid invoice is its `status_transitions.paid_at`, not when we asked."""
    client = clients.stripe(stripe_account)
    invoice = sim.client.create_payment(stripe_account.id, kind="invoice").ref
    sim.client.advance(3600, account=stripe_account.id)  # the account's clock an hour ahead of ours
    sim.client.pay(stripe_account.id, invoice)
    paid_at = sim.client.payment(stripe_account.id, invoice).object["status_transitions"]["paid_at"]

    paid = await client.observe(invoice)

    assert paid.status is S.SUCCEEDED
    assert paid.provider_time == datetime.fromtimestamp(paid_at, UTC)
