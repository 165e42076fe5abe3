"""The Daraja client (OAuth, STK Push, STK Push Query) against the simulated Daraja API."""

from __future__ import annotations

import pytest

from paysync_core.contracts.common import ObservationSource
from paysync_core.domain.status import UnifiedStatus as S
from paysync_core.errors import GatewayError
from paysync_core.providers.clients import GatewayRejected, NotFoundAtGateway, StillProcessing, StkQueryResult
from paysync_core.providers.clients import mpesa as daraja
from paysync_dev.logs import captured_logs

pytestmark = pytest.mark.integration

PHONE = "0708374149"  # a customer types it like this; Daraja wants 254708374149


async def test_push_is_still_processing_until_the_customer_answers(
    clients, sim, mpesa_account, tenant, webhook_receiver
):
    client = clients.daraja(mpesa_account, callback_token="cb-secret-77")
    with captured_logs(daraja) as logs:
        started = await client.stk_push(
            amount_minor=150_00,
            phone=PHONE,
            account_reference="JOB-17",
            description="Job payment",
            callback_base_url=webhook_receiver.url(""),
        )
    assert started.provider_ref.startswith("ws_CO_")
    assert started.customer_message and "accepted" in started.customer_message.lower()
    assert started.details["merchant_request_id"]
    text = repr(logs)
    assert "254***149" in text  # the push was logged, with the number masked
    assert "254708374149" not in text and "0708374149" not in text  # masked, never in full
    assert "cb-secret-77" not in text and mpesa_account.passkey not in text

    pending = await client.query_stk_push(started.provider_ref)
    assert isinstance(pending, StillProcessing)
    observed = client.observation_for(pending)
    assert observed.status is S.PENDING and observed.verified

    sim.client.pay(mpesa_account.id, started.provider_ref)
    done = await client.query_stk_push(started.provider_ref)
    assert isinstance(done, StkQueryResult) and done.result_code == 0
    paid = await client.observe(started.provider_ref)
    assert paid.status is S.SUCCEEDED and paid.currency == "KES"
    assert paid.source is ObservationSource.RECONCILE and paid.verified
    assert (await client.observe(started.provider_ref)).observation_id == paid.observation_id

    # The callback went to the tenant's M-Pesa webhook path, with its secret token.
    callbacks = webhook_receiver.wait_for(f"/webhooks/{tenant}/mpesa/cb-secret-77", 1)
    assert started.provider_ref.encode() in callbacks[0].body


async def test_cancelled_push_maps_through_the_result_code_table(clients, sim, mpesa_account):
    client = clients.daraja(mpesa_account)
    ref = sim.client.create_payment(mpesa_account.id, kind="stk_push", amount_minor=500_00).ref
    sim.client.cancel(mpesa_account.id, ref)
    seen = await client.observe(ref)
    assert seen.status is S.CANCELED and seen.evidence.detail


async def test_token_is_cached_across_calls(clients, sim, mpesa_account):
    client = clients.daraja(mpesa_account)
    ref = sim.client.create_payment(mpesa_account.id, kind="stk_push", amount_minor=100).ref
    before = sim.requests(mpesa_account)
    for _ in range(3):
        await client.query_stk_push(ref)
    assert client.tokens.fetches == 1
    assert sim.requests(mpesa_account) - before == 4  # one token, three queries


async def test_expired_token_is_refreshed_once_and_the_call_succeeds(clients, sim, mpesa_account):
    client = clients.daraja(mpesa_account)
    ref = sim.client.create_payment(mpesa_account.id, kind="stk_push", amount_minor=100).ref
    sim.client.pay(mpesa_account.id, ref)
    assert (await client.observe(ref)).status is S.SUCCEEDED
    assert sim.client.expire_tokens(mpesa_account.id) == 1
    refused_before = sim.unauthenticated("mpesa")

    seen = await client.observe(ref)

    assert seen.status is S.SUCCEEDED
    assert client.tokens.fetches == 2
    assert sim.unauthenticated("mpesa") - refused_before == 1  # the stale token, refused once


async def test_spike_arrest_and_quota_are_retried(clients, sim, mpesa_account):
    client = clients.daraja(mpesa_account)
    ref = sim.client.create_payment(mpesa_account.id, kind="stk_push", amount_minor=100).ref
    await client.query_stk_push(ref)  # the token first, so the bursts hit the query
    sim.client.burst(mpesa_account.id, "rate_limit", 1)  # 500.003.02 spike arrest
    sim.client.burst(mpesa_account.id, "quota", 1)  # 500.003.03 quota violation
    before = sim.client.account_stats(mpesa_account.id).api

    assert isinstance(await client.query_stk_push(ref), StillProcessing)

    after = sim.client.account_stats(mpesa_account.id).api
    assert after.injected_rate_limit - before.injected_rate_limit == 1
    assert after.injected_quota - before.injected_quota == 1
    assert after.requests - before.requests == 3


async def test_persistent_internal_errors_are_retryable(clients, sim, mpesa_account):
    client = clients.daraja(mpesa_account)
    ref = sim.client.create_payment(mpesa_account.id, kind="stk_push", amount_minor=100).ref
    await client.query_stk_push(ref)
    sim.client.burst(mpesa_account.id, "server_error", 4)
    with pytest.raises(GatewayError) as caught:
        await client.query_stk_push(ref)
    assert caught.value.retryable and caught.value.status_code == 500


async def test_a_locked_subscriber_refuses_a_second_push_retryably(clients, mpesa_account, webhook_receiver):
    client = clients.daraja(mpesa_account)
    first = await client.stk_push(
        amount_minor=100,
        phone=PHONE,
        account_reference="A1",
        description="x",
        callback_base_url=webhook_receiver.url(""),
    )
    with pytest.raises(GatewayError) as caught:
        await client.stk_push(
            amount_minor=100,
            phone=PHONE,
            account_reference="A2",
            description="x",
            callback_base_url=webhook_receiver.url(""),
        )
    assert caught.value.retryable and "lock subscriber" in str(caught.value)
    assert first.provider_ref


async def test_wrong_passkey_and_unknown_request_are_not_retried(clients, sim, mpesa_account):
    wrong = clients.daraja(mpesa_account.model_copy(update={"passkey": "not-the-passkey"}))
    ref = sim.client.create_payment(mpesa_account.id, kind="stk_push", amount_minor=100).ref
    with pytest.raises(GatewayRejected) as refused:
        await wrong.query_stk_push(ref)
    assert not refused.value.retryable

    right = clients.daraja(mpesa_account)
    with pytest.raises(NotFoundAtGateway):
        await right.query_stk_push("ws_CO_000000000000000000")


async def test_a_wrong_consumer_secret_is_rejected_once(clients, sim, mpesa_account):
    client = clients.daraja(mpesa_account.model_copy(update={"consumer_secret": "wrong"}))
    before = sim.unauthenticated("mpesa")
    with pytest.raises(GatewayRejected) as refused:
        await client.query_stk_push("ws_CO_1")
    assert not refused.value.retryable and refused.value.status_code == 400
    assert sim.unauthenticated("mpesa") - before == 1


async def test_a_buy_goods_till_payment_is_pushed_paid_and_confirmed_succeeded(
    clients, sim, tenant, webhook_receiver
):
    """A till collects for its store: CustomerBuyGoodsOnline, the store as BusinessShortCode, the till
    as PartyB. The simulator refuses any other pairing, so only a push the till can take is sent."""
    store = sim.client.create_account("mpesa", shortcode="7654321", till_number="5123456", rate_limit=0)
    client = clients.daraja(store, callback_token="cb-till")
    started = await client.stk_push(
        amount_minor=2_500_00,
        phone=PHONE,
        account_reference="SHOP-9",
        description="Groceries",
        callback_base_url=webhook_receiver.url(""),
    )

    sim.client.pay(store.id, started.provider_ref)
    [callback] = webhook_receiver.wait_for(f"/webhooks/{tenant}/mpesa/cb-till", 1)
    assert started.provider_ref.encode() in callback.body
    confirmed = await client.observe(started.provider_ref)  # the STK Push Query that confirms a callback
    assert confirmed.status is S.SUCCEEDED and confirmed.verified
    assert sim.client.payment(store.id, started.provider_ref).amount_minor == 2_500_00


async def test_a_till_store_pushed_as_a_paybill_is_refused(clients, sim, webhook_receiver):
    store = sim.client.create_account("mpesa", shortcode="7654322", till_number="5123457", rate_limit=0)
    as_paybill = clients.daraja(store.model_copy(update={"till_number": None}))
    with pytest.raises(GatewayRejected) as caught:
        await as_paybill.stk_push(
            amount_minor=100_00,
            phone=PHONE,
            account_reference="SHOP-9",
            description="Groceries",
            callback_base_url=webhook_receiver.url(""),
        )
    assert caught.value.status_code == 400 and "PartyB" in str(caught.value)
