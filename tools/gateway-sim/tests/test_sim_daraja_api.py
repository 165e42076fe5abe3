"""Daraja on the simulator: OAuth tokens that expire, STK Push, and the query while it is pending."""

from __future__ import annotations

import base64
import json
from dataclasses import replace
from datetime import timedelta

from paysync_core.providers import adapter_for
from paysync_core.providers.mpesa import transaction_time
from paysync_core.testing.builders.requests import parse_context
from paysync_gateway_sim import SimulatorClient


def test_oauth_gives_a_token_for_the_apps_keys_only(gateway_sim: SimulatorClient, daraja) -> None:
    good = daraja.http.get(
        "/oauth/v1/generate",
        params={"grant_type": "client_credentials"},
        auth=(daraja.account.consumer_key, daraja.account.consumer_secret),
    )
    wrong_secret = daraja.http.get(
        "/oauth/v1/generate",
        params={"grant_type": "client_credentials"},
        auth=(daraja.account.consumer_key, "nope"),
    )
    wrong_grant = daraja.http.get(
        "/oauth/v1/generate",
        params={"grant_type": "password"},
        auth=(daraja.account.consumer_key, daraja.account.consumer_secret),
    )

    assert good.status_code == 200 and good.json()["expires_in"] == "3599" and good.json()["access_token"]
    assert wrong_secret.status_code == 400 and wrong_secret.json()["errorCode"] == "400.008.01"
    assert wrong_secret.json()["errorMessage"] == "Invalid Authentication passed"
    assert wrong_grant.json()["errorCode"] == "400.008.02"


def test_stk_push_is_being_processed_until_the_customer_answers(gateway_sim: SimulatorClient, daraja) -> None:
    token = daraja.token()
    pushed = daraja.push(token, amount=150)
    assert pushed.status_code == 200
    accepted = pushed.json()
    assert (accepted["ResponseCode"], accepted["CustomerMessage"]) == (
        "0",
        "Success. Request accepted for processing",
    )
    checkout_id = accepted["CheckoutRequestID"]
    assert checkout_id.startswith("ws_CO_") and accepted["MerchantRequestID"]

    pending = daraja.query(token, checkout_id)
    assert pending.status_code == 500
    assert pending.json()["errorCode"] == "500.001.1001"
    assert pending.json()["errorMessage"] == "The transaction is being processed"
    locked = daraja.push(token, amount=5)  # same phone, one push still pending
    assert locked.json()["errorMessage"].startswith("Unable to lock subscriber")

    gateway_sim.pay(daraja.account.id, checkout_id)

    done = daraja.query(token, checkout_id)
    assert done.status_code == 200
    assert (done.json()["ResultCode"], done.json()["ResultDesc"]) == (
        "0",
        "The service request is processed successfully.",
    )
    assert done.json()["MerchantRequestID"] == accepted["MerchantRequestID"]
    view = gateway_sim.payment(daraja.account.id, checkout_id)
    assert view.status == "success" and view.amount_minor == 15000 and view.object["MpesaReceiptNumber"]


def test_expired_or_forced_out_tokens_get_invalid_access_token(gateway_sim: SimulatorClient, daraja) -> None:
    token = daraja.token()
    assert daraja.push(token).status_code == 200

    assert gateway_sim.expire_tokens(daraja.account.id) == 1
    forced = daraja.push(token, phone="254711000001")
    assert forced.status_code == 401
    assert (forced.json()["errorCode"], forced.json()["errorMessage"]) == (
        "404.001.03",
        "Invalid Access Token",
    )

    fresh = daraja.token()
    assert daraja.push(fresh, phone="254711000002").status_code == 200
    gateway_sim.advance(3600, account=daraja.account.id)  # past expires_in
    assert daraja.push(fresh, phone="254711000003").json()["errorCode"] == "404.001.03"


def test_wrong_password_and_unanswered_prompts(gateway_sim: SimulatorClient, daraja) -> None:
    token = daraja.token()
    body = {
        **daraja.credentials(),
        "Password": base64.b64encode(b"not-the-passkey").decode(),
        "CheckoutRequestID": "ws_CO_0",
    }
    wrong = daraja.http.post(
        "/mpesa/stkpushquery/v1/query", json=body, headers={"Authorization": f"Bearer {token}"}
    )
    assert wrong.status_code == 500 and wrong.json()["errorMessage"] == "Wrong credentials"

    checkout_id = daraja.push(token).json()["CheckoutRequestID"]
    gateway_sim.advance(61, account=daraja.account.id)  # nobody answers the prompt

    fresh = daraja.token()  # the advance also aged the first token by a minute only; a new one is fine
    timed_out = daraja.query(fresh, checkout_id).json()
    assert (timed_out["ResultCode"], timed_out["ResultDesc"]) == ("1037", "DS timeout user cannot be reached")


def test_partyb_must_fit_the_transaction_type(gateway_sim: SimulatorClient, daraja) -> None:
    """A PayBill collects itself; a Buy Goods store collects on its till, never as a PayBill."""
    paybill = daraja.token()
    as_till = daraja.push(paybill, TransactionType="CustomerBuyGoodsOnline", PartyB="5123456")
    assert as_till.status_code == 400 and as_till.json()["errorMessage"] == "Bad Request - Invalid PartyB"
    assert daraja.push(paybill, phone="254711000004").status_code == 200

    store = gateway_sim.create_account("mpesa", shortcode="7654321", till_number="5123456")
    till = replace(daraja, account=store)  # the same integrator, at the till's store
    token = till.token()
    as_paybill = till.push(token, PartyB=store.shortcode)
    other_till = till.push(token, TransactionType="CustomerBuyGoodsOnline", PartyB="5999999")
    right = till.push(token, TransactionType="CustomerBuyGoodsOnline", PartyB="5123456")
    for refused in (as_paybill, other_till):
        assert refused.status_code == 400 and refused.json()["errorMessage"] == "Bad Request - Invalid PartyB"
    assert right.status_code == 200 and right.json()["ResponseCode"] == "0"


def test_amounts_above_the_m_pesa_maximum_are_refused(daraja) -> None:
    token = daraja.token()
    over = daraja.push(token, amount=250_001)
    assert over.status_code == 400 and over.json()["errorMessage"] == "Bad Request - Invalid Amount"
    assert daraja.push(token, amount=250_000).status_code == 200


def test_the_callback_carries_daraja_s_number_types(
    gateway_sim: SimulatorClient, daraja, webhook_receiver
) -> None:
    """Amount is a float (150.0) and TransactionDate an integer (20240822091502), as Daraja sends them."""
    token = daraja.token()
    pushed = daraja.push(token, amount=150, callback=webhook_receiver.url("/till-cb")).json()
    gateway_sim.pay(daraja.account.id, pushed["CheckoutRequestID"])
    [callback] = webhook_receiver.wait_for("/till-cb", 1)
    items = {
        item["Name"]: item.get("Value")
        for item in json.loads(callback.body)["Body"]["stkCallback"]["CallbackMetadata"]["Item"]
    }
    assert type(items["Amount"]) is float and items["Amount"] == 150.0
    assert type(items["TransactionDate"]) is int and type(items["PhoneNumber"]) is int
    # paysync's adapter reads them as they come: 150.0 KES is 15000 cents, the integer a Nairobi time.
    [observation] = adapter_for("mpesa").parse(callback.body, parse_context()).observations
    assert (observation.amount_minor, observation.currency) == (15000, "KES")
    assert observation.provider_time == transaction_time(str(items["TransactionDate"]))
    assert observation.provider_time.utcoffset() == timedelta(0)
