"""M-Pesa (Daraja): callback-token authentication, STK Push callback parsing, ResultCode table.

Daraja does not sign callbacks. A callback is authenticated only by the secret token in its URL,
so what it says is a hint: its observations are never verified, and an STK Push Query must
confirm the outcome before it counts.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone

from paysync_core.contracts.common import Provider, Verdict
from paysync_core.credentials import MpesaCredentials
from paysync_core.domain.status import UnifiedStatus as S
from paysync_core.errors import AuthenticityError, MalformedPayload
from paysync_core.phones import mask_phone, phone_hash
from paysync_core.providers._common import (
    Facts,
    JsonObject,
    build_observation,
    coerce_credentials,
    constant_time_equal,
    get_object,
    get_str,
    ip_in_allowlist,
    is_utf8,
    load_object,
    sha256_hex,
    whole_units_to_minor,
)
from paysync_core.providers.base import (
    ParseContext,
    Parsed,
    ProviderCredentials,
    WebhookRequest,
)
from paysync_core.providers.tables import StatusRow, StatusTable

EVENT_TYPE = "stkCallback"
CURRENCY = "KES"
EAST_AFRICA_TIME = timezone(timedelta(hours=3), "EAT")  # Daraja's TransactionDate is Nairobi time
_DARAJA = "Safaricom Daraja, M-Pesa Express (STK Push), result codes"
_COMMUNITY = "Daraja error-code references kept by integrators (not in Safaricom's STK Push table)"
_TRANSACTION_DATE = re.compile(r"[0-9]{14}")
_RESULT_CODE = re.compile(r"-?[0-9]{1,9}")

RESULT_CODES = StatusTable(
    name="mpesa.result_code",
    title="M-Pesa STK Push `ResultCode` (callback and STK Push Query)",
    key_label="ResultCode",
    rows=(
        StatusRow("0", S.SUCCEEDED, "the service request is processed successfully", _DARAJA),
        StatusRow("1", S.FAILED, "the balance is insufficient for the transaction", _DARAJA),
        StatusRow("17", S.FAILED, "rejected by M-Pesa rules / Party B could not process it", _COMMUNITY),
        StatusRow("26", S.FAILED, "system busy: the request was not processed", _COMMUNITY),
        StatusRow(
            "1001",
            S.FAILED,
            "unable to lock subscriber: another transaction is in progress for the customer",
            _DARAJA,
        ),
        StatusRow("1019", S.EXPIRED, "the transaction expired before the customer completed it", _DARAJA),
        StatusRow("1025", S.FAILED, "an error occurred while sending the push request", _DARAJA),
        StatusRow("1032", S.CANCELED, "the request was cancelled by the user", _DARAJA),
        StatusRow(
            "1037",
            S.EXPIRED,
            "DS timeout: the customer could not be reached or did not answer the prompt in time",
            _DARAJA,
        ),
        StatusRow("2001", S.FAILED, "the initiator information is invalid (e.g. wrong PIN)", _DARAJA),
        StatusRow("9999", S.FAILED, "an error occurred while sending the push request", _DARAJA),
    ),
    notes=(
        "Every STK Push has its own CheckoutRequestID, so a non-zero code ends that request: a "
        "retry is a new push. `failed` marks a refusal or error, `expired` the customer not "
        "answering in time, `canceled` the customer pressing Cancel.",
        "Any other code gives status `(none)`: it cannot be determined and never overwrites.",
        "Callback observations are always unverified hints (the content is unsigned); the same "
        "table maps the ResultCode of the STK Push Query that confirms them.",
        "Amounts are whole KES in the callback and become minor units (x100).",
    ),
)

STATUS_TABLES = (RESULT_CODES,)


def status_for_result_code(code: int) -> S | None:
    """The unified status for a Daraja STK ResultCode; None for a code the table does not know."""
    row = RESULT_CODES.row(str(code))
    return row.status if row else None


class MpesaAdapter:
    """Daraja's callback token, STK Push callbacks and ResultCode table."""

    provider = Provider.MPESA
    status_tables = STATUS_TABLES

    def authenticate(self, request: WebhookRequest, credentials: ProviderCredentials) -> Verdict:
        """UNVERIFIABLE when the URL token matches: the sender is known, the content unsigned."""
        creds = coerce_credentials(credentials, MpesaCredentials)
        if creds.ip_policy == "enforce" and not self.ip_allowed(request, creds):
            raise AuthenticityError("ip_not_allowed")
        if not request.path_token:
            raise AuthenticityError("missing_callback_token")
        # Every token is compared (no early exit), so timing does not tell which one nearly matched.
        given = request.path_token
        matches = [constant_time_equal(token, given) for token in creds.accepted_callback_tokens()]
        if not any(matches):
            raise AuthenticityError("bad_callback_token")
        return Verdict.UNVERIFIABLE

    def ip_allowed(self, request: WebhookRequest, credentials: ProviderCredentials) -> bool:
        """False when an allowlist is set and the sender is not in it (log it under policy "log")."""
        creds = coerce_credentials(credentials, MpesaCredentials)
        return ip_in_allowlist(request.remote_addr, creds.allowed_ips)

    def parse(self, body: bytes, ctx: ParseContext) -> Parsed:
        """The observation in an STK Push callback: always an unverified hint."""
        root = load_object(body)
        envelope = get_object(root, "Body", "Body")
        callback = envelope.get("stkCallback")
        if callback is None:
            other = next((k for k in envelope if k and is_utf8(k)), None)
            if other is None:
                raise MalformedPayload("missing:Body.stkCallback")
            return Parsed(f"Body.{other}"[:100], (), unmapped=True)
        if not isinstance(callback, dict):
            raise MalformedPayload("type:Body.stkCallback")
        facts, code, receipt, paid_at = _stk_facts(callback)
        observation = build_observation(
            provider=self.provider,
            observation_id="mpesa:" + sha256_hex(facts.provider_ref, str(code), receipt or ""),
            provider_time=paid_at or ctx.observed_at,
            facts=facts,
            ctx=ctx,
            event_type=EVENT_TYPE,
            verified=False,  # unsigned content: only an STK Push Query can confirm it
        )
        payer = _payer_hash(ctx, _metadata_items(callback).get("PhoneNumber"))
        if payer is not None:
            observation = observation.model_copy(update={"phone_hash": payer})
        return Parsed(EVENT_TYPE, (observation,))

    def reference_hint(self, body: bytes | JsonObject) -> str | None:
        """The CheckoutRequestID in a callback, or None; never raises."""
        try:
            callback = body if isinstance(body, dict) else load_object(body)
            ref = callback["Body"]["stkCallback"]["CheckoutRequestID"]
            return ref if isinstance(ref, str) and 0 < len(ref) <= 255 and is_utf8(ref) else None
        except Exception:  # noqa: BLE001 - a hint for a record key must never fail the request
            return None


def _stk_facts(callback: JsonObject) -> tuple[Facts, int, str | None, datetime | None]:
    """The facts of one stkCallback, its ResultCode, receipt and transaction time."""
    checkout_id = get_str(callback, "CheckoutRequestID", "Body.stkCallback.CheckoutRequestID")
    # Every real callback has one; its absence means this is not what Daraja sent.
    get_str(callback, "MerchantRequestID", "Body.stkCallback.MerchantRequestID")
    code = _result_code(callback.get("ResultCode"))
    items = _metadata_items(callback)
    amount = items.get("Amount")
    receipt = _receipt(items.get("MpesaReceiptNumber"))
    facts = Facts(
        provider_ref=checkout_id,
        status=status_for_result_code(code),
        amount_minor=None
        if amount is None
        else whole_units_to_minor(amount, "Body.stkCallback.CallbackMetadata.Amount"),
        currency=CURRENCY,
        evidence={
            "receipt_number": receipt,
            "phone_masked": mask_phone(items.get("PhoneNumber")),
            "detail": get_str(
                callback, "ResultDesc", "Body.stkCallback.ResultDesc", required=False, max_length=500
            ),
        },
    )
    return facts, code, receipt, transaction_time(items.get("TransactionDate"))


def _payer_hash(ctx: ParseContext, phone: object) -> str | None:
    """The payer number's lookup hash, when there is a key and a Kenyan mobile number (else None)."""
    if not ctx.phone_key or isinstance(phone, bool) or not isinstance(phone, int | str):
        return None
    try:
        return phone_hash(ctx.phone_key, ctx.tenant, str(phone))
    except ValueError:
        return None  # not a number it can be looked up by: the callback still counts


def _receipt(value: object) -> str | None:
    if value is None:
        return None
    if not (isinstance(value, str) and 0 < len(value) <= 64 and is_utf8(value)):
        raise MalformedPayload("type:Body.stkCallback.CallbackMetadata.MpesaReceiptNumber")
    return value


def _result_code(value: object) -> int:
    # Callbacks send an integer; STK Push Query answers send the same code as a string.
    if isinstance(value, str) and _RESULT_CODE.fullmatch(value):
        return int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise MalformedPayload(
            "missing:Body.stkCallback.ResultCode" if value is None else "type:Body.stkCallback.ResultCode"
        )
    return value


def _metadata_items(callback: JsonObject) -> dict[str, object]:
    """CallbackMetadata.Item as a name -> value mapping (items without a Value are skipped)."""
    metadata = get_object(callback, "CallbackMetadata", "Body.stkCallback.CallbackMetadata", required=False)
    if metadata is None:
        return {}
    items = metadata.get("Item")
    if not isinstance(items, list):
        raise MalformedPayload("type:Body.stkCallback.CallbackMetadata.Item")
    found: dict[str, object] = {}
    for i, item in enumerate(items):
        if not isinstance(item, dict) or not isinstance(item.get("Name"), str):
            raise MalformedPayload(f"type:Body.stkCallback.CallbackMetadata.Item.{i}")
        if item.get("Value") is not None:
            found.setdefault(item["Name"], item["Value"])
    return found


def transaction_time(value: object) -> datetime | None:
    """Daraja's `YYYYMMDDHHmmss` in East Africa Time as UTC; None when absent or unreadable."""
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        return None
    text = str(value)
    if not _TRANSACTION_DATE.fullmatch(text):
        return None
    try:
        local = datetime(
            int(text[0:4]),
            int(text[4:6]),
            int(text[6:8]),
            int(text[8:10]),
            int(text[10:12]),
            int(text[12:14]),
            tzinfo=EAST_AFRICA_TIME,
        )
        return local.astimezone(UTC)
    except (ValueError, OverflowError):
        # Seen in the wild (e.g. seconds of 89): the arrival time is then the best we have.
        return None
