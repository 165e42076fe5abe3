"""Paystack's transaction API (initialize, verify, fetch, list) in its {status, message, data} envelope."""

from __future__ import annotations

import json
import math
import re
from datetime import datetime
from typing import Any
from urllib.parse import parse_qsl

from fastapi import APIRouter, Depends, Request

from paysync_core.contracts.common import Provider
from paysync_gateway_sim import faults
from paysync_gateway_sim.errors import GatewayError, ScenarioError
from paysync_gateway_sim.gateways.paystack import parse_time
from paysync_gateway_sim.runtime import Simulator, get_sim
from paysync_gateway_sim.state import Account, JsonDict

router = APIRouter(tags=["paystack"])

CURRENCIES = frozenset({"NGN", "GHS", "ZAR", "KES", "USD", "XOF", "EGP"})
_REFERENCE = re.compile(r"^[A-Za-z0-9.=-]{1,100}$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_STATUSES = frozenset(
    {"success", "failed", "abandoned", "reversed", "ongoing", "pending", "processing", "queued"}
)


def paystack_error(
    status: int,
    message: str,
    *,
    type_: str | None = None,
    code: str | None = None,
    next_step: str | None = None,
    headers: dict[str, str] | None = None,
) -> GatewayError:
    """An error in Paystack's envelope (`status: false`, plus type/code/meta where Paystack sends them)."""
    body: JsonDict = {"status": False, "message": message}
    if next_step:
        body["meta"] = {"nextStep": next_step}
    if type_:
        body["type"] = type_
    if code:
        body["code"] = code
    return GatewayError(status, body, headers)


async def paystack_account(request: Request, sim: Simulator = Depends(get_sim)) -> Account:
    """The integration whose secret key authorizes the request, after its rate limit and faults."""
    scheme, _, key = request.headers.get("authorization", "").partition(" ")
    account = sim.store.by_secret_key(Provider.PAYSTACK, key.strip()) if scheme.lower() == "bearer" else None
    if account is None:
        sim.store.unauthenticated[Provider.PAYSTACK.value] += 1
        raise paystack_error(401, "Invalid key")
    verdict = faults.check(account, faults.operation_of(request))
    if verdict in (faults.Verdict.OVER_LIMIT, faults.Verdict.RATE_LIMIT, faults.Verdict.QUOTA):
        wait = math.ceil(1 / account.rate_limit) if account.rate_limit else 1
        raise paystack_error(
            429, "Too many requests. Please retry after some time.", headers={"Retry-After": str(wait)}
        )
    if verdict is faults.Verdict.SERVER_ERROR:
        raise paystack_error(
            500, "An error occurred. Please try again later.", type_="api_error", code="unknown_error"
        )
    return account


async def _body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
        return dict(parse_qsl(raw.decode("utf-8", "replace"), keep_blank_values=True))
    try:
        value = json.loads(raw or b"{}")
    except ValueError:
        raise paystack_error(400, "Invalid JSON body", type_="validation_error") from None
    if not isinstance(value, dict):
        raise paystack_error(400, "Invalid JSON body", type_="validation_error")
    return value


@router.post("/transaction/initialize")
async def initialize_transaction(
    request: Request, account: Account = Depends(paystack_account), sim: Simulator = Depends(get_sim)
) -> JsonDict:
    """Initialize a transaction: an authorization URL for the customer, and its reference."""
    body = await _body(request)
    email = body.get("email")
    if not isinstance(email, str) or not _EMAIL.match(email):
        raise paystack_error(400, "Invalid Email Address Passed", type_="validation_error")
    amount = _amount(body.get("amount"))
    currency = str(body.get("currency") or "NGN").upper()
    if currency not in CURRENCIES:
        raise paystack_error(400, "Currency not supported by merchant", type_="validation_error")
    reference = body.get("reference")
    if reference is not None and not (isinstance(reference, str) and _REFERENCE.match(reference)):
        raise paystack_error(
            400,
            "Invalid transaction reference: only -, ., = and alphanumeric characters are allowed",
            type_="validation_error",
        )
    metadata = body.get("metadata")
    if isinstance(metadata, str) and metadata.strip():
        # Paystack takes metadata as an object or as a JSON string of one, and gives the string
        # back as it was sent: readers must parse it (a documented quirk).
        try:
            json.loads(metadata)
        except ValueError:
            raise paystack_error(400, "Invalid metadata: must be JSON", type_="validation_error") from None
    try:
        txn = sim.paystack.initialize(
            account, email=email, amount=amount, currency=currency, reference=reference, metadata=metadata
        )
    except ScenarioError as exc:
        raise paystack_error(400, exc.message, type_="validation_error", code="duplicate_reference") from exc
    return {
        "status": True,
        "message": "Authorization URL created",
        "data": {
            "authorization_url": f"https://checkout.paystack.com/{txn.access_code}",
            "access_code": txn.access_code,
            "reference": txn.reference,
        },
    }


def _amount(value: Any) -> int:
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise paystack_error(400, "Invalid Amount Sent", type_="validation_error")
    return value


@router.get("/transaction/verify/{reference}")
async def verify_transaction(
    reference: str, account: Account = Depends(paystack_account), sim: Simulator = Depends(get_sim)
) -> JsonDict:
    """The transaction's current state by reference."""
    txn = account.paystack.get(reference)
    if txn is None:
        raise paystack_error(
            400,
            "Transaction reference not found",
            type_="validation_error",
            code="transaction_not_found",
            next_step=(
                "Ensure that you're passing the reference of a transaction that exists on this integration"
            ),
        )
    return {"status": True, "message": "Verification successful", "data": sim.paystack.render(txn)}


@router.get("/transaction/totals")
async def transaction_totals(account: Account = Depends(paystack_account)) -> JsonDict:
    """Totals of the integration's transactions: volume of the successful ones, by currency."""
    paid = [t for t in account.paystack.values() if t.status == "success"]
    by_currency: dict[str, int] = {}
    for txn in paid:
        by_currency[txn.currency] = by_currency.get(txn.currency, 0) + txn.amount
    return {
        "status": True,
        "message": "Transaction totals",
        "data": {
            "total_transactions": len(account.paystack),
            "total_volume": sum(by_currency.values()),
            "total_volume_by_currency": [
                {"currency": currency, "amount": amount} for currency, amount in sorted(by_currency.items())
            ],
            "pending_transfers": 0,
            "pending_transfers_by_currency": [],
        },
    }


# Paystack answers with and without a trailing slash (client libraries use both): no 307 here.
@router.get("/transaction/{transaction_id}/", include_in_schema=False)
@router.get("/transaction/{transaction_id}")
async def fetch_transaction(
    transaction_id: str, account: Account = Depends(paystack_account), sim: Simulator = Depends(get_sim)
) -> JsonDict:
    """A transaction by its numeric id."""
    txn = next((t for t in account.paystack.values() if str(t.id) == transaction_id), None)
    if txn is None:
        raise paystack_error(
            404, "Transaction not found", type_="validation_error", code="transaction_not_found"
        )
    return {"status": True, "message": "Transaction retrieved", "data": sim.paystack.render(txn)}


@router.get("/transaction/", include_in_schema=False)
@router.get("/transaction")
async def list_transactions(
    request: Request, account: Account = Depends(paystack_account), sim: Simulator = Depends(get_sim)
) -> JsonDict:
    """Transactions newest first, filtered by `status`, `from`, `to`, paged by `perPage` and `page`."""
    query = request.query_params
    per_page, page = _positive(query.get("perPage"), 50, "perPage"), _positive(query.get("page"), 1, "page")
    status = query.get("status")
    if status is not None and status not in _STATUSES:
        raise paystack_error(400, f"Invalid status: {status}", type_="validation_error")
    start = _when(query.get("from"), "from")
    end = _when(query.get("to"), "to", end_of_day=True)
    matches = [
        t
        for t in account.paystack.values()
        if (status is None or t.status == status)
        and (start is None or t.created_at >= start)
        and (end is None or t.created_at <= end)
    ]
    matches.sort(key=lambda t: (t.created_at, t.id), reverse=True)
    skipped = (page - 1) * per_page
    return {
        "status": True,
        "message": "Transactions retrieved",
        "data": [sim.paystack.render(t) for t in matches[skipped : skipped + per_page]],
        "meta": {
            "total": len(matches),
            "total_volume": sum(t.amount for t in matches if t.status == "success"),
            "skipped": skipped,
            "perPage": per_page,
            "page": page,
            "pageCount": max(1, math.ceil(len(matches) / per_page)),
        },
    }


def _positive(value: str | None, default: int, name: str) -> int:
    if value is None:
        return default
    if not value.isdigit() or int(value) < 1:
        raise paystack_error(400, f"{name} must be a positive integer", type_="validation_error")
    return int(value)


def _when(value: str | None, name: str, *, end_of_day: bool = False) -> datetime | None:
    if value is None:
        return None
    found = parse_time(value, end_of_day=end_of_day)
    if found is None:
        raise paystack_error(
            400,
            f"Invalid date for {name}: use e.g. 2016-09-24T00:00:05.000Z or 2016-09-21",
            type_="validation_error",
        )
    return found
