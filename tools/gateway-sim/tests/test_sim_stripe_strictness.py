"""The simulated Stripe is as strict as Stripe where our clients could go wrong unseen.

Each point is one where the simulator used to be more lenient than Stripe (issue 11): a client
that sent a wrong parameter, reused an idempotency key, or ignored a header passed here and
would fail against Stripe.
"""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from paysync_gateway_sim import SimulatorClient
from paysync_gateway_sim.contracts import Account

_SESSION = {
    "mode": "payment",
    "success_url": "https://shop.example/ok",
    "line_items[0][quantity]": "1",
    "line_items[0][price_data][currency]": "usd",
    "line_items[0][price_data][unit_amount]": "1500",
    "line_items[0][price_data][product_data][name]": "Brakes",
}


@pytest.fixture
def account(gateway_sim: SimulatorClient, make_id: Callable[[str], str]) -> Account:
    """A Stripe account without a rate limit."""
    return gateway_sim.create_account("stripe", id=make_id("stripe"), rate_limit=0)


def _auth(account: Account, **headers: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {account.secret_key}", **headers}


def test_an_idempotency_key_reused_with_other_parameters_is_an_idempotency_error(
    gateway_sim: SimulatorClient, account: Account, http: httpx.Client
) -> None:
    url = f"{gateway_sim.stripe_base}/v1/checkout/sessions"
    headers = _auth(account, **{"Idempotency-Key": "order-77"})
    first = http.post(url, data=_SESSION, headers=headers)
    again = http.post(url, data=_SESSION, headers=headers)
    other_amount = {**_SESSION, "line_items[0][price_data][unit_amount]": "1600"}
    changed = http.post(url, data=other_amount, headers=headers)

    assert first.status_code == again.status_code == 200
    assert again.json()["id"] == first.json()["id"] and again.headers["Idempotent-Replayed"] == "true"
    assert changed.status_code == 400
    assert changed.json()["error"]["type"] == "idempotency_error"
    assert "same parameters" in changed.json()["error"]["message"]


@pytest.mark.parametrize("path", ["/v1/payment_intents/{intent}", "/v1/invoices/{invoice}", "/v1/events"])
def test_an_unknown_query_parameter_on_a_read_is_refused(
    gateway_sim: SimulatorClient, account: Account, http: httpx.Client, path: str
) -> None:
    intent = gateway_sim.create_payment(account.id, kind="payment_intent").ref
    invoice = gateway_sim.create_payment(account.id, kind="invoice").ref
    url = gateway_sim.stripe_base + path.format(intent=intent, invoice=invoice)

    known_params = {"expand[]": "payments"} if "invoices" in path else {}
    known = http.get(url, params=known_params, headers=_auth(account))
    unknown = http.get(url, params={"expnad[]": "payments"}, headers=_auth(account))

    assert known.status_code == 200
    assert unknown.status_code == 400
    assert unknown.json()["error"] == {
        "type": "invalid_request_error",
        "message": "Received unknown parameter: expnad",
        "param": "expnad",
    }


def test_server_errors_say_whether_to_retry_as_stripe_does(
    gateway_sim: SimulatorClient, account: Account, http: httpx.Client
) -> None:
    gateway_sim.burst(account.id, "server_error", 1)
    gateway_sim.burst(account.id, "rate_limit", 1)
    url = f"{gateway_sim.stripe_base}/v1/events"
    failed, limited = http.get(url, headers=_auth(account)), http.get(url, headers=_auth(account))
    assert (failed.status_code, failed.headers.get("Stripe-Should-Retry")) == (500, "true")
    assert (limited.status_code, limited.headers.get("Stripe-Should-Retry")) == (429, "true")


def test_invoices_carry_status_transitions_and_payments_only_when_expanded(
    gateway_sim: SimulatorClient, account: Account, http: httpx.Client
) -> None:
    invoice = gateway_sim.create_payment(account.id, kind="invoice").ref
    url = f"{gateway_sim.stripe_base}/v1/invoices/{invoice}"
    opened = http.get(url, headers=_auth(account)).json()
    gateway_sim.advance(120, account=account.id)
    gateway_sim.pay(account.id, invoice)
    paid = http.get(url, headers=_auth(account)).json()
    expanded = http.get(url, params={"expand[]": "payments"}, headers=_auth(account)).json()

    assert "payments" not in opened and "payments" not in paid
    assert expanded["payments"]["data"][0]["payment"]["payment_intent"].startswith("pi_")
    transitions = {"finalized_at", "paid_at", "voided_at", "marked_uncollectible_at"}
    assert set(opened["status_transitions"]) == transitions
    assert opened["status_transitions"]["finalized_at"] and opened["status_transitions"]["paid_at"] is None
    assert paid["status_transitions"]["paid_at"] >= paid["status_transitions"]["finalized_at"] + 120
