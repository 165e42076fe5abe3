"""Paystack's transaction API on the simulator: initialize, verify, fetch, list with `meta` paging."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import httpx

from paysync_gateway_sim import SimulatorClient


def test_initialized_transaction_verifies_abandoned_until_paid(
    gateway_sim: SimulatorClient, make_id: Callable[[str], str], http: httpx.Client
) -> None:
    account = gateway_sim.create_account("paystack", id=make_id("paystack"))
    auth = {"Authorization": f"Bearer {account.secret_key}"}
    base = gateway_sim.paystack_base

    created = http.post(
        f"{base}/transaction/initialize",
        headers=auth,
        json={
            "email": "ada@example.com",
            "amount": "500000",
            "currency": "NGN",
            "reference": "order-12345",
            "metadata": {"paysync_domain": "bookings", "paysync_entity_id": "b-9"},
        },
    )
    assert created.json()["status"] is True and created.json()["message"] == "Authorization URL created"
    data = created.json()["data"]
    assert data["reference"] == "order-12345" and data["authorization_url"].endswith(data["access_code"])

    before = http.get(f"{base}/transaction/verify/order-12345", headers=auth).json()
    # Paystack reports a transaction nobody has started paying as abandoned, with no paid_at.
    assert (before["data"]["status"], before["data"]["paid_at"]) == ("abandoned", None)

    gateway_sim.pay(account.id, "order-12345")

    after = http.get(f"{base}/transaction/verify/order-12345", headers=auth).json()
    assert after["message"] == "Verification successful"
    txn = after["data"]
    assert (txn["status"], txn["amount"], txn["currency"], txn["gateway_response"]) == (
        "success",
        500000,
        "NGN",
        "Successful",
    )
    assert txn["paid_at"] is not None and txn["metadata"]["paysync_entity_id"] == "b-9"
    fetched = http.get(f"{base}/transaction/{txn['id']}", headers=auth).json()
    assert fetched["data"]["reference"] == "order-12345"
    duplicate = http.post(
        f"{base}/transaction/initialize",
        headers=auth,
        json={"email": "ada@example.com", "amount": 100, "reference": "order-12345"},
    )
    assert duplicate.status_code == 400 and duplicate.json()["message"] == "Duplicate Transaction Reference"


def test_errors_come_in_paystacks_envelope(
    gateway_sim: SimulatorClient, make_id: Callable[[str], str], http: httpx.Client
) -> None:
    account = gateway_sim.create_account("paystack", id=make_id("paystack"))
    base = gateway_sim.paystack_base

    unauthorized = http.get(f"{base}/transaction", headers={"Authorization": "Bearer sk_test_wrong"})
    unknown = http.get(
        f"{base}/transaction/verify/nope", headers={"Authorization": f"Bearer {account.secret_key}"}
    )
    bad_amount = http.post(
        f"{base}/transaction/initialize",
        json={"email": "a@b.co", "amount": -5},
        headers={"Authorization": f"Bearer {account.secret_key}"},
    )

    assert unauthorized.status_code == 401 and unauthorized.json() == {
        "status": False,
        "message": "Invalid key",
    }
    assert unknown.status_code == 400
    assert unknown.json()["message"] == "Transaction reference not found"
    assert unknown.json()["code"] == "transaction_not_found"
    assert bad_amount.status_code == 400 and bad_amount.json()["status"] is False


def test_list_pages_with_meta_and_filters_by_status_and_date(
    gateway_sim: SimulatorClient, make_id: Callable[[str], str], http: httpx.Client
) -> None:
    account = gateway_sim.create_account("paystack", id=make_id("paystack"))
    auth = {"Authorization": f"Bearer {account.secret_key}"}
    old = [gateway_sim.create_payment(account.id, amount_minor=1000 * (i + 1)).ref for i in range(2)]
    gateway_sim.pay(account.id, old[0])
    gateway_sim.advance(3 * 86400, account=account.id)
    new = [gateway_sim.create_payment(account.id, amount_minor=7000 + i).ref for i in range(3)]
    gateway_sim.pay(account.id, new[0])
    gateway_sim.fail(account.id, new[1])

    def page(**params: object) -> dict:
        response = http.get(f"{gateway_sim.paystack_base}/transaction", headers=auth, params=params)
        assert response.status_code == 200, response.text
        return response.json()

    first, last = page(perPage=2, page=1), page(perPage=2, page=3)
    assert first["meta"] == {
        "total": 5,
        "total_volume": 1000 + 7000,
        "skipped": 0,
        "perPage": 2,
        "page": 1,
        "pageCount": 3,
    }
    assert [t["reference"] for t in first["data"]] == [new[2], new[1]]  # newest first
    assert [t["reference"] for t in last["data"]] == [old[0]] and last["meta"]["skipped"] == 4
    assert [t["reference"] for t in page(status="failed")["data"]] == [new[1]]
    assert {t["reference"] for t in page(status="abandoned")["data"]} == {old[1], new[2]}

    two_days_in = (datetime.now(UTC) + timedelta(days=2)).date().isoformat()
    assert {t["reference"] for t in page(**{"from": two_days_in})["data"]} == set(new)
    assert {t["reference"] for t in page(to=datetime.now(UTC).date().isoformat())["data"]} == set(old)
