"""Stripe's API on the simulator, called as integrators call it: the official library and raw HTTP."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import stripe

from paysync_gateway_sim import SimulatorClient


def _stripe(sim: SimulatorClient, key: str | None) -> stripe.StripeClient:
    return stripe.StripeClient(key or "", base_addresses={"api": sim.stripe_base}, max_network_retries=0)


def test_checkout_session_created_paid_and_read_back_with_stripes_library(
    gateway_sim: SimulatorClient, make_id: Callable[[str], str], http: httpx.Client
) -> None:
    account = gateway_sim.create_account("stripe", id=make_id("stripe"))
    client = _stripe(gateway_sim, account.secret_key)

    session = client.v1.checkout.sessions.create(
        params={
            "mode": "payment",
            "success_url": "https://shop.example/ok",
            "client_reference_id": "job-42",
            "line_items": [
                {
                    "price_data": {
                        "currency": "usd",
                        "unit_amount": 1500,
                        "product_data": {"name": "Brakes"},
                    },
                    "quantity": 2,
                }
            ],
            "metadata": {"paysync_domain": "workshop_jobs", "paysync_entity_id": "42"},
            "payment_intent_data": {"metadata": {"paysync_entity_id": "42"}},
        }
    )
    assert session.id.startswith("cs_test_") and session.object == "checkout.session"
    assert (session.status, session.payment_status, session.payment_intent) == ("open", "unpaid", None)
    assert (session.amount_total, session.currency, session.client_reference_id) == (3000, "usd", "job-42")
    assert session.metadata["paysync_entity_id"] == "42" and session.url.startswith(
        "https://checkout.stripe.com/"
    )

    gateway_sim.pay(account.id, session.id)

    paid = client.v1.checkout.sessions.retrieve(session.id, params={"expand": ["payment_intent"]})
    assert (paid.status, paid.payment_status) == ("complete", "paid")
    assert paid.payment_intent.status == "succeeded" and paid.payment_intent.amount_received == 3000
    assert paid.payment_intent.metadata["paysync_entity_id"] == "42"
    raw = http.get(
        f"{gateway_sim.stripe_base}/v1/payment_intents/{paid.payment_intent.id}",
        headers={"Authorization": f"Bearer {account.secret_key}"},
    )
    assert raw.json()["object"] == "payment_intent" and raw.json()["latest_charge"].startswith("ch_")
    assert raw.headers["request-id"].startswith("req_")


def test_invoice_retrieve_follows_a_failed_then_paid_attempt(
    gateway_sim: SimulatorClient, make_id: Callable[[str], str]
) -> None:
    account = gateway_sim.create_account("stripe", id=make_id("stripe"))
    invoice = gateway_sim.create_payment(account.id, kind="invoice", amount_minor=9900, currency="eur")
    client = _stripe(gateway_sim, account.secret_key)

    gateway_sim.fail(account.id, invoice.ref, retry=True)
    failed = client.v1.invoices.retrieve(invoice.ref)
    assert (failed.status, failed.amount_paid, failed.attempt_count) == ("open", 0, 1)
    assert failed.next_payment_attempt is not None

    gateway_sim.pay(account.id, invoice.ref)
    paid = client.v1.invoices.retrieve(invoice.ref)
    assert (paid.status, paid.amount_paid, paid.next_payment_attempt) == ("paid", 9900, None)
    assert "payments" not in paid  # as at Stripe: included only when expanded
    expanded = client.v1.invoices.retrieve(invoice.ref, {"expand": ["payments"]})
    intent_id = expanded.payments.data[0].payment.payment_intent
    assert client.v1.payment_intents.retrieve(intent_id).status == "succeeded"


def test_requests_without_a_valid_key_get_stripes_401_and_are_counted(
    gateway_sim: SimulatorClient, make_id: Callable[[str], str], http: httpx.Client
) -> None:
    account = gateway_sim.create_account("stripe", id=make_id("stripe"))
    before = gateway_sim.stats().unauthenticated["stripe"]
    url = f"{gateway_sim.stripe_base}/v1/events"

    missing = http.get(url)
    wrong = http.get(url, headers={"Authorization": "Bearer sk_test_notarealkey9876"})

    assert missing.status_code == wrong.status_code == 401
    assert missing.json()["error"]["type"] == "invalid_request_error"
    assert "You did not provide an API key" in missing.json()["error"]["message"]
    message = wrong.json()["error"]["message"]
    assert message.startswith("Invalid API Key provided: sk_test_") and message.endswith("9876")
    assert "notarealkey" not in message  # Stripe masks the key it was given
    assert gateway_sim.stats().unauthenticated["stripe"] == before + 2
    assert gateway_sim.account_stats(account.id).api.requests == 0


def test_bodies_must_be_form_encoded_and_parameters_known(
    gateway_sim: SimulatorClient, make_id: Callable[[str], str], http: httpx.Client
) -> None:
    account = gateway_sim.create_account("stripe", id=make_id("stripe"))
    url, auth = (
        f"{gateway_sim.stripe_base}/v1/checkout/sessions",
        {"Authorization": f"Bearer {account.secret_key}"},
    )

    as_json = http.post(url, json={"mode": "payment"}, headers=auth)
    unknown = http.post(url, data={"mode": "payment", "amount": "100"}, headers=auth)
    missing = http.get(f"{gateway_sim.stripe_base}/v1/checkout/sessions/cs_test_nope", headers=auth)

    assert as_json.status_code == 400 and "Content-Type" in as_json.json()["error"]["message"]
    assert unknown.status_code == 400 and unknown.json()["error"]["param"] == "amount"
    assert missing.status_code == 404
    assert missing.json()["error"] | {"doc_url": None} == {
        "type": "invalid_request_error",
        "code": "resource_missing",
        "param": "session",
        "message": "No such checkout.session: 'cs_test_nope'",
        "doc_url": None,
    }


def test_idempotency_key_replays_the_first_answer(
    gateway_sim: SimulatorClient, make_id: Callable[[str], str], http: httpx.Client
) -> None:
    account = gateway_sim.create_account("stripe", id=make_id("stripe"))
    headers = {"Authorization": f"Bearer {account.secret_key}", "Idempotency-Key": "order-7"}
    form = {
        "mode": "payment",
        "line_items[0][price_data][currency]": "usd",
        "line_items[0][price_data][unit_amount]": "500",
        "line_items[0][quantity]": "1",
    }

    first = http.post(f"{gateway_sim.stripe_base}/v1/checkout/sessions", data=form, headers=headers)
    second = http.post(f"{gateway_sim.stripe_base}/v1/checkout/sessions", data=form, headers=headers)

    assert first.json()["id"] == second.json()["id"]
    assert second.headers["idempotent-replayed"] == "true"
    assert len(gateway_sim.payments(account.id)) == 1


def test_events_list_pages_with_starting_after_and_filters_by_type_and_created(
    gateway_sim: SimulatorClient, make_id: Callable[[str], str]
) -> None:
    account = gateway_sim.create_account("stripe", id=make_id("stripe"))
    client = _stripe(gateway_sim, account.secret_key)
    early = [gateway_sim.create_payment(account.id).ref for _ in range(2)]
    for ref in early:
        gateway_sim.pay(account.id, ref)  # 3 events each
    gateway_sim.advance(120, account=account.id)
    late = gateway_sim.create_payment(account.id, kind="payment_intent")  # payment_intent.created
    gateway_sim.fail(account.id, late.ref)  # payment_intent.payment_failed

    seen, cursor, pages = [], None, 0
    while True:
        params = {"limit": 3, **({"starting_after": cursor} if cursor else {})}
        page = client.v1.events.list(params=params)
        seen += page.data
        pages += 1
        if not page.has_more:
            break
        cursor = page.data[-1].id
    assert pages == 3 and len(seen) == 8 and len({e.id for e in seen}) == 8
    assert [e.created for e in seen] == sorted((e.created for e in seen), reverse=True)
    assert seen[0].type == "payment_intent.payment_failed"

    cutoff = seen[0].created - 60
    recent = client.v1.events.list(params={"created": {"gte": cutoff}})
    assert [e.type for e in recent.data] == ["payment_intent.payment_failed", "payment_intent.created"]
    completed = client.v1.events.list(params={"type": "checkout.session.completed"})
    assert {e.data.object.id for e in completed.data} == set(early)
    charges_or_fails = client.v1.events.list(params={"types": ["charge.*", "payment_intent.payment_failed"]})
    assert sorted(e.type for e in charges_or_fails.data) == [
        "charge.succeeded",
        "charge.succeeded",
        "payment_intent.payment_failed",
    ]
    newer = client.v1.events.list(params={"ending_before": seen[-1].id, "limit": 2})
    assert [e.id for e in newer.data] == [seen[-3].id, seen[-2].id] and newer.has_more


def test_sessions_expire_when_their_time_runs_out(
    gateway_sim: SimulatorClient, make_id: Callable[[str], str]
) -> None:
    account = gateway_sim.create_account("stripe", id=make_id("stripe"))
    session = gateway_sim.create_payment(account.id)
    gateway_sim.act(account.id, session.ref, "abandon")  # the customer leaves: nothing happens yet
    assert gateway_sim.payment(account.id, session.ref).status == "open/unpaid"

    gateway_sim.advance(24 * 3600 + 1, account=account.id)

    client = _stripe(gateway_sim, account.secret_key)
    assert client.v1.checkout.sessions.retrieve(session.ref).status == "expired"
    expired = client.v1.events.list(params={"type": "checkout.session.expired"}).data
    assert [e.data.object.id for e in expired] == [session.ref]
