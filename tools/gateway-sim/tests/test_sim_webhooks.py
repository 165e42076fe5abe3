"""Webhooks reach a real receiver signed as the gateways sign them; faults drop, repeat, reorder, delay."""

from __future__ import annotations

import json
import time
from collections.abc import Callable

import stripe

from paysync_core.contracts.common import Verdict
from paysync_core.domain.status import UnifiedStatus
from paysync_core.providers import adapter_for
from paysync_core.testing.builders.requests import parse_context, webhook_request
from paysync_gateway_sim import SimulatorClient
from paysync_gateway_sim.testing import WebhookReceiver


def _types(received: list) -> list[str]:
    return [json.loads(w.body)["type"] for w in received]


def test_stripe_events_arrive_signed_and_paysync_reads_them(
    gateway_sim: SimulatorClient, make_id: Callable[[str], str], webhook_receiver: WebhookReceiver
) -> None:
    account = gateway_sim.create_account(
        "stripe", id=make_id("stripe"), webhook_url=webhook_receiver.url("/s")
    )
    session = gateway_sim.create_payment(
        account.id, amount_minor=4200, metadata={"paysync_domain": "jobs", "paysync_entity_id": "7"}
    )
    gateway_sim.pay(account.id, session.ref)

    received = webhook_receiver.wait_for("/s", 3)
    credentials = {"secret_key": account.secret_key, "webhook_secrets": [account.webhook_secret]}
    adapter = adapter_for("stripe")
    for webhook in received:
        assert (
            adapter.authenticate(webhook_request(webhook.body, headers=webhook.headers), credentials)
            is Verdict.VERIFIED
        )
        stripe.Webhook.construct_event(
            webhook.body, webhook.headers["stripe-signature"], account.webhook_secret
        )
    completed = next(w for w in received if json.loads(w.body)["type"] == "checkout.session.completed")
    (observation,) = adapter.parse(completed.body, parse_context()).observations
    assert (observation.provider_ref, observation.status, observation.amount_minor) == (
        session.ref,
        UnifiedStatus.SUCCEEDED,
        4200,
    )
    assert observation.entity is not None and observation.entity.entity_id == "7"
    stats = gateway_sim.wait_for_deliveries(account.id).webhooks
    assert (stats.queued, stats.delivered, stats.dropped) == (3, 3, 0)


def test_paystack_sends_charge_success_signed_and_nothing_for_failed_or_abandoned(
    gateway_sim: SimulatorClient, make_id: Callable[[str], str], webhook_receiver: WebhookReceiver
) -> None:
    account = gateway_sim.create_account(
        "paystack", id=make_id("paystack"), webhook_url=webhook_receiver.url("/p")
    )
    paid, failed, left = (gateway_sim.create_payment(account.id, amount_minor=250000).ref for _ in range(3))
    assert gateway_sim.fail(account.id, failed).webhooks == []
    assert gateway_sim.act(account.id, left, "abandon").webhooks == []
    gateway_sim.pay(account.id, paid)

    (webhook,) = webhook_receiver.wait_for("/p", 1)
    request = webhook_request(webhook.body, headers=webhook.headers)
    assert (
        adapter_for("paystack").authenticate(request, {"secret_key": account.secret_key}) is Verdict.VERIFIED
    )
    (observation,) = adapter_for("paystack").parse(webhook.body, parse_context()).observations
    assert (observation.provider_ref, observation.status, observation.amount_minor) == (
        paid,
        UnifiedStatus.SUCCEEDED,
        250000,
    )
    # A transaction made without metadata: Paystack's charge.success says `"metadata": 0`.
    assert json.loads(webhook.body)["data"]["metadata"] == 0 and observation.entity is None
    gateway_sim.wait_for_deliveries(account.id)
    assert [r.label for r in gateway_sim.deliveries(account.id, outcome="queued")] == ["charge.success"]


def test_stk_callback_goes_to_the_callback_url_given_with_the_push(
    gateway_sim: SimulatorClient, webhook_receiver: WebhookReceiver, daraja
) -> None:
    token = daraja.token()
    callback = webhook_receiver.url("/mpesa/secret-token-1")
    checkout_id = daraja.push(token, amount=75, callback=callback).json()["CheckoutRequestID"]
    gateway_sim.act(daraja.account.id, checkout_id, "cancel")

    (webhook,) = webhook_receiver.wait_for("/mpesa/secret-token-1", 1)
    credentials = {
        "consumer_key": "k",
        "consumer_secret": "s",
        "shortcode": daraja.account.shortcode,
        "passkey": "p",
        "callback_token": "secret-token-1",
    }
    request = webhook_request(webhook.body, headers=webhook.headers, path_token="secret-token-1")
    assert adapter_for("mpesa").authenticate(request, credentials) is Verdict.UNVERIFIABLE
    (observation,) = adapter_for("mpesa").parse(webhook.body, parse_context(verified=False)).observations
    assert (observation.provider_ref, observation.status) == (checkout_id, UnifiedStatus.CANCELED)


def test_drop_ratio_one_drops_every_webhook_but_the_events_api_still_has_them(
    gateway_sim: SimulatorClient, make_id: Callable[[str], str], webhook_receiver: WebhookReceiver
) -> None:
    account = gateway_sim.create_account(
        "stripe",
        id=make_id("stripe"),
        webhook_url=webhook_receiver.url("/d"),
        faults={"webhooks": {"drop_ratio": 1.0}},
    )
    for _ in range(2):
        gateway_sim.pay(account.id, gateway_sim.create_payment(account.id).ref)

    stats = gateway_sim.wait_for_deliveries(account.id).webhooks
    time.sleep(0.2)
    assert webhook_receiver.on("/d") == []
    assert (stats.queued, stats.dropped, stats.delivered) == (6, 6, 0)
    assert len(gateway_sim.deliveries(account.id, outcome="dropped")) == 6
    assert (
        len(
            stripe.StripeClient(account.secret_key or "", base_addresses={"api": gateway_sim.stripe_base})
            .v1.events.list()
            .data
        )
        == 6
    )


def test_duplicates_arrive_twice_with_the_same_event_id(
    gateway_sim: SimulatorClient, make_id: Callable[[str], str], webhook_receiver: WebhookReceiver
) -> None:
    account = gateway_sim.create_account(
        "stripe",
        id=make_id("stripe"),
        webhook_url=webhook_receiver.url("/x2"),
        faults={"webhooks": {"duplicate_ratio": 1.0}},
    )
    gateway_sim.pay(account.id, gateway_sim.create_payment(account.id).ref)

    received = webhook_receiver.wait_for("/x2", 6)
    ids = [json.loads(w.body)["id"] for w in received]
    assert len(set(ids)) == 3 and all(ids.count(i) == 2 for i in ids)
    assert gateway_sim.wait_for_deliveries(account.id).webhooks.duplicated == 3


def test_reorder_window_releases_a_payments_events_newest_first(
    gateway_sim: SimulatorClient, make_id: Callable[[str], str], webhook_receiver: WebhookReceiver
) -> None:
    account = gateway_sim.create_account(
        "stripe",
        id=make_id("stripe"),
        webhook_url=webhook_receiver.url("/r"),
        faults={"webhooks": {"reorder_window": 3}},
    )
    result = gateway_sim.pay(account.id, gateway_sim.create_payment(account.id).ref)

    received = webhook_receiver.wait_for("/r", 3)
    assert result.webhooks == ["charge.succeeded", "payment_intent.succeeded", "checkout.session.completed"]
    assert _types(received) == list(reversed(result.webhooks))


def test_delay_and_retries_until_the_receiver_accepts(
    gateway_sim: SimulatorClient, make_id: Callable[[str], str], webhook_receiver: WebhookReceiver
) -> None:
    account = gateway_sim.create_account(
        "paystack",
        id=make_id("paystack"),
        webhook_url=webhook_receiver.url("/t"),
        faults={"webhooks": {"delay_min": 0.3, "delay_max": 0.4}},
    )
    webhook_receiver.answers[:] = [503, 500]  # refused twice, then accepted
    ref = gateway_sim.create_payment(account.id).ref
    paid_at = time.time()
    gateway_sim.pay(account.id, ref)

    attempts = webhook_receiver.wait_for("/t", 3)
    assert attempts[0].received_at - paid_at >= 0.3
    assert attempts[0].body == attempts[2].body  # the same webhook, retried
    gateway_sim.wait_for_deliveries(account.id)
    log = [(r.outcome, r.attempt, r.status_code) for r in gateway_sim.deliveries(account.id)]
    assert log == [("queued", 0, None), ("failed", 1, 503), ("failed", 2, 500), ("delivered", 3, 200)]


def test_stk_callbacks_are_sent_once_like_darajas(
    gateway_sim: SimulatorClient, webhook_receiver: WebhookReceiver, daraja
) -> None:
    webhook_receiver.answers[:] = [500]
    checkout_id = gateway_sim.create_payment(
        daraja.account.id, amount_minor=1000, callback_url=webhook_receiver.url("/once")
    ).ref
    gateway_sim.pay(daraja.account.id, checkout_id)

    webhook_receiver.wait_for("/once", 1)
    stats = gateway_sim.wait_for_deliveries(daraja.account.id).webhooks
    time.sleep(0.4)  # longer than the first retry delay would be
    assert len(webhook_receiver.on("/once")) == 1
    assert (stats.failed_attempts, stats.gave_up) == (1, 1)
