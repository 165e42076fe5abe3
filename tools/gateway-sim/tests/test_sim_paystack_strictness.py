"""The simulated Paystack answers the paths and fields Paystack's client libraries rely on (issue 11)."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from paysync_gateway_sim import SimulatorClient
from paysync_gateway_sim.contracts import Account


@pytest.fixture
def account(gateway_sim: SimulatorClient, make_id: Callable[[str], str]) -> Account:
    """A Paystack integration with one paid and one abandoned transaction."""
    account = gateway_sim.create_account("paystack", id=make_id("paystack"), rate_limit=0)
    paid = gateway_sim.create_payment(account.id, kind="transaction", amount_minor=50_000, currency="NGN")
    gateway_sim.pay(account.id, paid.ref)
    gateway_sim.create_payment(account.id, kind="transaction", amount_minor=7_000, currency="NGN")
    return account


def _get(http: httpx.Client, sim: SimulatorClient, account: Account, path: str) -> httpx.Response:
    return http.get(f"{sim.paystack_base}{path}", headers={"Authorization": f"Bearer {account.secret_key}"})


def test_paths_with_a_trailing_slash_answer_as_without(
    gateway_sim: SimulatorClient, account: Account, http: httpx.Client
) -> None:
    listed = _get(http, gateway_sim, account, "/transaction/")
    assert listed.status_code == 200 and len(listed.json()["data"]) == 2
    transaction_id = listed.json()["data"][0]["id"]
    fetched = _get(http, gateway_sim, account, f"/transaction/{transaction_id}/")
    assert fetched.status_code == 200 and fetched.json()["data"]["id"] == transaction_id


def test_transaction_totals_are_their_own_endpoint(
    gateway_sim: SimulatorClient, account: Account, http: httpx.Client
) -> None:
    totals = _get(http, gateway_sim, account, "/transaction/totals")
    assert totals.status_code == 200
    data = totals.json()["data"]
    assert (data["total_transactions"], data["total_volume"]) == (2, 50_000)
    assert data["total_volume_by_currency"] == [{"currency": "NGN", "amount": 50_000}]


def test_transactions_carry_every_field_paystack_sends(
    gateway_sim: SimulatorClient, account: Account, http: httpx.Client
) -> None:
    for txn in _get(http, gateway_sim, account, "/transaction").json()["data"]:
        assert {"log", "fees_split", "source", "receipt_number", "transaction_date"} <= set(txn)
        assert {"first_name", "last_name", "phone", "email", "customer_code"} <= set(txn["customer"])
        assert txn["transaction_date"] == txn["created_at"]
