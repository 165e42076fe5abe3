"""Daraja's OAuth and M-Pesa Express (STK Push and its query), with Daraja's error bodies.

Errors are `{"requestId", "errorCode", "errorMessage"}`; the HTTP status follows the code's first
part (400.…, 500.…), except the invalid-token answer, which clients see as 401.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import string
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Depends, Request

from paysync_core.contracts.common import Provider
from paysync_core.testing.builders import random_token
from paysync_gateway_sim import faults
from paysync_gateway_sim.errors import GatewayError
from paysync_gateway_sim.runtime import Simulator, get_sim
from paysync_gateway_sim.state import Account, JsonDict

router = APIRouter(tags=["daraja"])

PROCESSING = "The transaction is being processed"
LOCKED = "Unable to lock subscriber, a transaction is already in process for the current subscriber"
_PHONE = re.compile(r"^254[17][0-9]{8}$")
_TRANSACTION_TYPES = frozenset({"CustomerPayBillOnline", "CustomerBuyGoodsOnline"})
#: M-Pesa's largest single transaction (KES), as Daraja enforces it on STK Push.
MAX_AMOUNT = 250_000


def daraja_error(status: int, code: str, message: str) -> GatewayError:
    """An error in Daraja's shape."""
    return GatewayError(status, {"requestId": _request_id(), "errorCode": code, "errorMessage": message})


def _request_id() -> str:
    return f"{random_token(4, string.digits)}-{random_token(8, string.digits)}-1"


def _guard(account: Account, request: Request) -> None:
    verdict = faults.check(account, faults.operation_of(request))
    if verdict in (faults.Verdict.OVER_LIMIT, faults.Verdict.RATE_LIMIT):
        raise daraja_error(500, "500.003.02", "Error Occurred: Spike Arrest Violation")
    if verdict is faults.Verdict.QUOTA:
        raise daraja_error(500, "500.003.03", "Error Occurred: Quota Violation")
    if verdict is faults.Verdict.SERVER_ERROR:
        raise daraja_error(500, "500.003.1001", "Internal Server Error")


@router.get("/oauth/v1/generate")
async def generate_token(request: Request, sim: Simulator = Depends(get_sim)) -> JsonDict:
    """An access token for the app whose consumer key and secret come as Basic auth."""
    scheme, _, encoded = request.headers.get("authorization", "").partition(" ")
    key = secret = None
    if scheme.lower() == "basic":
        try:
            key, _, secret = base64.b64decode(encoded.strip(), validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            key = None
    account = sim.store.by_consumer_key(key) if key else None
    if account is None or secret != account.consumer_secret:
        sim.store.unauthenticated[Provider.MPESA.value] += 1
        raise daraja_error(400, "400.008.01", "Invalid Authentication passed")
    if request.query_params.get("grant_type") != "client_credentials":
        raise daraja_error(400, "400.008.02", "Invalid grant type passed")
    _guard(account, request)
    ttl = sim.config.token_ttl_seconds
    return {"access_token": sim.store.issue_token(account, ttl), "expires_in": str(ttl)}


async def daraja_account(request: Request, sim: Simulator = Depends(get_sim)) -> Account:
    """The app whose unexpired access token authorizes the request, after its rate limit and faults."""
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    account = sim.store.account_for_token(value.strip()) if scheme.lower() == "bearer" else None
    if account is None:
        sim.store.unauthenticated[Provider.MPESA.value] += 1
        raise daraja_error(401, "404.001.03", "Invalid Access Token")
    _guard(account, request)
    return account


async def _json(request: Request) -> dict[str, Any]:
    try:
        body = json.loads(await request.body() or b"{}")
    except ValueError:
        raise daraja_error(400, "400.002.02", "Bad Request - Invalid JSON") from None
    if not isinstance(body, dict):
        raise daraja_error(400, "400.002.02", "Bad Request - Invalid JSON")
    return body


def _check_password(account: Account, body: dict[str, Any]) -> None:
    """BusinessShortCode, Timestamp and Password = base64(shortcode + passkey + timestamp)."""
    if str(body.get("BusinessShortCode", "")) != account.shortcode:
        raise daraja_error(400, "400.002.02", "Bad Request - Invalid BusinessShortCode")
    timestamp = str(body.get("Timestamp", ""))
    try:
        datetime.strptime(timestamp, "%Y%m%d%H%M%S")  # noqa: DTZ007 - only the format is checked
    except ValueError:
        raise daraja_error(400, "400.002.02", "Bad Request - Invalid Timestamp") from None
    expected = base64.b64encode(f"{account.shortcode}{account.passkey}{timestamp}".encode()).decode()
    if body.get("Password") != expected:
        raise daraja_error(500, "500.001.1001", "Wrong credentials")


def _collector(account: Account, transaction_type: str) -> str | None:
    """The PartyB a transaction type needs: the PayBill itself, or the till of a Buy Goods store."""
    if transaction_type == "CustomerBuyGoodsOnline":
        return account.till_number
    return account.shortcode if account.till_number is None else None  # a till's store is no PayBill


def _whole(value: Any) -> int | None:
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


@router.post("/mpesa/stkpush/v1/processrequest")
async def stk_push(
    request: Request, account: Account = Depends(daraja_account), sim: Simulator = Depends(get_sim)
) -> JsonDict:
    """Send an STK Push prompt; the outcome arrives later at CallBackURL."""
    body = await _json(request)
    _check_password(account, body)
    if body.get("TransactionType") not in _TRANSACTION_TYPES:
        raise daraja_error(400, "400.002.02", "Bad Request - Invalid TransactionType")
    amount = _whole(body.get("Amount"))
    if amount is None or amount > MAX_AMOUNT:
        raise daraja_error(400, "400.002.02", "Bad Request - Invalid Amount")
    phone = str(body.get("PhoneNumber", ""))
    for field in ("PartyA", "PhoneNumber"):
        if not _PHONE.match(str(body.get(field, ""))):
            raise daraja_error(400, "400.002.02", f"Bad Request - Invalid {field}")
    if str(body.get("PartyB", "")) != _collector(account, str(body["TransactionType"])):
        raise daraja_error(400, "400.002.02", "Bad Request - Invalid PartyB")
    callback = body.get("CallBackURL")
    if not isinstance(callback, str) or not re.match(r"^https?://[^\s/]+", callback):
        raise daraja_error(400, "400.002.02", "Bad Request - Invalid CallBackURL")
    reference, description = body.get("AccountReference"), body.get("TransactionDesc")
    if not isinstance(reference, str) or not 0 < len(reference) <= 12:
        raise daraja_error(400, "400.002.02", "Bad Request - Invalid AccountReference")
    if not isinstance(description, str) or not 0 < len(description) <= 13:
        raise daraja_error(400, "400.002.02", "Bad Request - Invalid TransactionDesc")
    if account.lock_subscriber and sim.daraja.pending_for(account, phone):
        raise daraja_error(500, "500.001.1001", LOCKED)
    push = sim.daraja.push(
        account,
        amount=amount,
        phone=phone,
        callback_url=callback,
        account_reference=reference,
        description=description,
    )
    accepted = "Success. Request accepted for processing"
    return {
        "MerchantRequestID": push.merchant_request_id,
        "CheckoutRequestID": push.checkout_request_id,
        "ResponseCode": "0",
        "ResponseDescription": accepted,
        "CustomerMessage": accepted,
    }


@router.post("/mpesa/stkpushquery/v1/query")
async def stk_push_query(request: Request, account: Account = Depends(daraja_account)) -> JsonDict:
    """The outcome of a push; while the customer has not answered, Daraja answers with an error."""
    body = await _json(request)
    _check_password(account, body)
    push = account.stk.get(str(body.get("CheckoutRequestID", "")))
    if push is None:
        raise daraja_error(400, "400.002.02", "Bad Request - Invalid CheckoutRequestID")
    if push.pending:
        raise daraja_error(500, "500.001.1001", PROCESSING)
    return {
        "ResponseCode": "0",
        "ResponseDescription": "The service request has been accepted successsfully",  # Daraja's spelling
        "MerchantRequestID": push.merchant_request_id,
        "CheckoutRequestID": push.checkout_request_id,
        "ResultCode": str(push.result_code),
        "ResultDesc": push.result_desc,
    }
