"""M-Pesa (Daraja) payloads: the STK Push callback, as the M-Pesa Express docs show it."""

from __future__ import annotations

import string
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

from paysync_core.testing.builders import AUTO, random_token, resolve, to_body

__all__ = [
    "AUTO",
    "RESULT_DESCRIPTIONS",
    "checkout_request_id",
    "daraja_time",
    "merchant_request_id",
    "mpesa_receipt",
    "stk_callback",
    "to_body",
]

JsonDict = dict[str, Any]
_EAT = timezone(timedelta(hours=3))

#: The ResultDesc Daraja sends with each ResultCode.
RESULT_DESCRIPTIONS: dict[int, str] = {
    0: "The service request is processed successfully.",
    1: "The balance is insufficient for the transaction.",
    17: "Rule limited.",
    26: "System busy.",
    1001: "Unable to lock subscriber, a transaction is already in process for the current subscriber",
    1019: "Transaction has expired",
    1025: "An error occurred while sending a push request",
    1032: "Request cancelled by user",
    1037: "DS timeout user cannot be reached",
    2001: "The initiator information is invalid.",
    9999: "An error occurred while sending a push request.",
}


def checkout_request_id() -> str:
    """A CheckoutRequestID like `ws_CO_17112022155511840796440427`."""
    return "ws_CO_" + random_token(26, string.digits)


def merchant_request_id() -> str:
    """A MerchantRequestID like `68441-128341933-1`."""
    return f"{random_token(5, string.digits)}-{random_token(9, string.digits)}-1"


def mpesa_receipt() -> str:
    """An M-Pesa receipt number like `QKH94M1Z11`."""
    return random_token(1, string.ascii_uppercase) + random_token(9, string.ascii_uppercase + string.digits)


def daraja_time(when: datetime | None = None) -> int:
    """Daraja's TransactionDate: `YYYYMMDDHHmmss` in Nairobi time, sent as a number."""
    local = (when or datetime.now(UTC)).astimezone(_EAT)
    return int(local.strftime("%Y%m%d%H%M%S"))


def stk_callback(
    *,
    checkout_request_id: str | None = None,
    merchant_request_id: str | None = None,
    result_code: int = 0,
    result_desc: str | None = None,
    amount: int | float | Decimal = 1,
    receipt: str | None | object = AUTO,
    transaction_date: datetime | None = None,
    phone: int = 254708374149,
) -> JsonDict:
    """An STK Push callback; only a successful one (code 0) carries CallbackMetadata."""
    callback: JsonDict = {
        "MerchantRequestID": merchant_request_id or _new_merchant_request_id(),
        "CheckoutRequestID": checkout_request_id or _new_checkout_request_id(),
        "ResultCode": result_code,
        "ResultDesc": result_desc or RESULT_DESCRIPTIONS.get(result_code, "Unknown result"),
    }
    if result_code == 0:
        receipt_number = resolve(receipt, mpesa_receipt)
        callback["CallbackMetadata"] = {
            "Item": [
                {"Name": "Amount", "Value": float(amount) if isinstance(amount, Decimal) else amount},
                *([{"Name": "MpesaReceiptNumber", "Value": receipt_number}] if receipt_number else []),
                {"Name": "Balance"},  # listed without a Value, as Daraja sends it
                {"Name": "TransactionDate", "Value": daraja_time(transaction_date)},
                {"Name": "PhoneNumber", "Value": phone},
            ]
        }
    return {"Body": {"stkCallback": callback}}


# Module-level aliases: the builder's keyword arguments shadow the id generators' names.
_new_checkout_request_id = checkout_request_id
_new_merchant_request_id = merchant_request_id
