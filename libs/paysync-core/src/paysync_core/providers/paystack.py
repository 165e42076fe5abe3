"""Paystack: `x-paystack-signature` verification, event parsing and the status tables."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Callable

from paysync_core.contracts.common import Provider, Verdict
from paysync_core.contracts.observation import DisputeFact
from paysync_core.credentials import PaystackCredentials
from paysync_core.domain.status import UnifiedStatus as S
from paysync_core.errors import AuthenticityError, MalformedPayload
from paysync_core.providers._common import (
    Facts,
    JsonObject,
    build_observation,
    coerce_credentials,
    constant_time_equal,
    first_time,
    get_amount,
    get_currency,
    get_id,
    get_object,
    get_str,
    header,
    ip_in_allowlist,
    load_object,
)
from paysync_core.providers.base import (
    ParseContext,
    Parsed,
    ProviderCredentials,
    WebhookRequest,
)
from paysync_core.providers.modes import event_mode
from paysync_core.providers.tables import StatusRow, StatusTable

SIGNATURE_HEADER = "x-paystack-signature"
_HEX_SHA512 = re.compile(r"[0-9a-fA-F]{128}")
_EVENT_TYPES = "Paystack docs, Payments, Webhooks, Supported events"

EVENTS = StatusTable(
    name="paystack.events",
    title="Paystack event types mapped by type alone",
    key_label="event",
    rows=(
        StatusRow("charge.success", S.SUCCEEDED, "a successful charge was made", _EVENT_TYPES),
        StatusRow(
            "charge.dispute.create",
            S.DISPUTED,
            "a dispute was logged against the business",
            _EVENT_TYPES,
            dispute="open",
        ),
        StatusRow(
            "charge.dispute.remind",
            S.DISPUTED,
            "a logged dispute is not yet resolved",
            _EVENT_TYPES,
            dispute="open",
        ),
        StatusRow("refund.pending", None, "refund initiated, waiting for the processor", _EVENT_TYPES),
        StatusRow("refund.processing", None, "the processor received the refund", _EVENT_TYPES),
        StatusRow(
            "refund.failed",
            None,
            "the refund could not be processed; the merchant's balance is credited back",
            _EVENT_TYPES,
        ),
        StatusRow("refund.needs-attention", None, "the refund needs the merchant's attention", _EVENT_TYPES),
    ),
    notes=(
        "Refund events other than `refund.processed` change no status: the money has not (or not "
        "yet) gone back. They still become observations with status `(none)` so the payment's "
        "history shows them.",
    ),
)

REFUND_PROCESSED = StatusTable(
    name="paystack.refund.processed",
    title="Paystack `refund.processed`, by the refunded amount",
    key_label="refund",
    rows=(
        StatusRow(
            "full",
            S.REFUNDED,
            "refund amount >= the transaction amount sent with it",
            "Paystack docs, Payments, Refunds (partial and full refunds)",
        ),
        StatusRow(
            "partial",
            S.PARTIALLY_REFUNDED,
            "refund amount < the transaction amount, or no transaction amount sent",
            "Paystack docs, Payments, Refunds (partial and full refunds)",
        ),
    ),
    notes=(
        "The event carries this refund's amount, not a running total, and usually not the "
        "transaction's amount. Without the transaction amount a refund is reported as partial with "
        "`amount_refunded_minor` = this refund: a lower bound the merge can only raise. A later "
        "verified observation of the transaction (e.g. from a status query) settles full vs partial.",
        "provider_ref is `data.transaction_reference` (or `data.transaction.reference`).",
    ),
)

DISPUTE_RESOLUTION = StatusTable(
    name="paystack.dispute.resolution",
    title="Paystack `charge.dispute.resolve`, by the dispute's resolution",
    key_label="resolution",
    rows=(
        StatusRow(
            "declined",
            S.SUCCEEDED,
            "the merchant declined (contested) the dispute and it was resolved in their "
            "favour; the merchant keeps the money",
            "Paystack API reference, Disputes, Resolve a dispute (resolution)",
            dispute="won",
        ),
        StatusRow(
            "merchant-accepted",
            S.DISPUTED,
            "the merchant accepted the dispute; `refund_amount` goes back to the customer",
            "Paystack API reference, Disputes, Resolve a dispute (resolution)",
            dispute="lost",
        ),
        StatusRow(
            "auto-accepted",
            S.DISPUTED,
            "accepted automatically because the merchant did not respond in time",
            "Paystack docs, Payments, Webhooks, charge.dispute.resolve sample",
            dispute="lost",
        ),
    ),
    notes=(
        "An unknown or missing resolution gives status `(none)` and no dispute fact.",
        "Dispute observations carry no amount; provider_ref is `data.transaction.reference`.",
    ),
)

STATUS_TABLES = (EVENTS, REFUND_PROCESSED, DISPUTE_RESOLUTION)

# Where each kind of event keeps the time its state held, best first.
_CHARGE_TIMES = ("paid_at", "paidAt", "created_at", "createdAt")
_REFUND_TIMES = ("refunded_at", "updated_at", "created_at", "createdAt")
_DISPUTE_OPEN_TIMES: tuple[str, ...] = ("created_at", "createdAt")
_DISPUTE_RESOLVED_TIMES: tuple[str, ...] = ("resolvedAt", "resolved_at", "updated_at", "updatedAt")


def sign_paystack(body: bytes, secret: str) -> str:
    """The `x-paystack-signature` value Paystack sends: hex HMAC-SHA512 of the body."""
    return hmac.new(secret.encode(), body, hashlib.sha512).hexdigest()


class PaystackAdapter:
    """Paystack's signatures, events and status tables."""

    provider = Provider.PAYSTACK
    status_tables = STATUS_TABLES

    def authenticate(self, request: WebhookRequest, credentials: ProviderCredentials) -> Verdict:
        """VERIFIED when the body's HMAC-SHA512 matches and the IP policy allows the sender."""
        creds = coerce_credentials(credentials, PaystackCredentials)
        if creds.ip_policy == "enforce" and not self.ip_allowed(request, creds):
            raise AuthenticityError("ip_not_allowed")
        value = header(request.headers, SIGNATURE_HEADER)
        if not value:
            raise AuthenticityError("missing_signature")
        value = value.strip()
        if not _HEX_SHA512.fullmatch(value):
            raise AuthenticityError("malformed_signature_header")
        expected = sign_paystack(request.body, creds.secret_key.get_secret_value())
        if not constant_time_equal(expected, value.lower()):
            raise AuthenticityError("bad_signature")
        return Verdict.VERIFIED

    def ip_allowed(self, request: WebhookRequest, credentials: ProviderCredentials) -> bool:
        """False when an allowlist is set and the sender is not in it (log it under policy "log")."""
        creds = coerce_credentials(credentials, PaystackCredentials)
        return ip_in_allowlist(request.remote_addr, creds.allowed_ips)

    def parse(self, body: bytes, ctx: ParseContext) -> Parsed:
        """The observation in a Paystack event, or unmapped for event types paysync ignores."""
        event = load_object(body)
        event_type = get_str(event, "event", "event")
        handler = _HANDLERS.get(event_type)
        if handler is None:
            return Parsed(event_type, (), unmapped=True)
        data = get_object(event, "data", "data")
        facts, (time_source, time_keys) = handler(data, event_type)
        observation = build_observation(
            provider=self.provider,
            # Paystack events have no id: the signed body itself identifies the delivery.
            observation_id=f"paystack:{hashlib.sha256(bytes(body)).hexdigest()}",
            provider_time=first_time(time_source, time_keys, ctx.observed_at),
            facts=facts,
            ctx=ctx,
            event_type=event_type,
            verified=ctx.verified,
            mode=event_mode(self.provider, event),
        )
        return Parsed(event_type, (observation,))

    def reference_hint(self, body: bytes | JsonObject) -> str | None:
        """The provider_ref `parse` would give, or None; never raises."""
        try:
            event = body if isinstance(body, dict) else load_object(body)
            event_type = event.get("event")
            handler = _HANDLERS.get(event_type) if isinstance(event_type, str) else None
            return handler(event["data"], event["event"])[0].provider_ref if handler else None
        except Exception:  # noqa: BLE001 - a hint for a record key must never fail the request
            return None


_Times = tuple[JsonObject, tuple[str, ...]]


def transaction_facts(data: JsonObject, event_type: str) -> tuple[Facts, _Times]:
    reference = get_str(data, "reference", "data.reference")
    facts = Facts(
        provider_ref=reference,
        status=EVENTS.mapping()[event_type],
        amount_minor=get_amount(data, "amount", "data.amount", allow_digit_string=True),
        currency=get_currency(data, "currency", "data.currency"),
        metadata=_metadata(data),
        evidence={
            "transaction_id": get_id(data, "id", "data.id", required=False),
            "detail": get_str(
                data, "gateway_response", "data.gateway_response", required=False, max_length=200
            ),
        },
    )
    return facts, (data, _CHARGE_TIMES)


def _refund(data: JsonObject, event_type: str) -> tuple[Facts, _Times]:
    transaction, transaction_id = _transaction(data)
    reference = get_str(data, "transaction_reference", "data.transaction_reference", required=False)
    if reference is None and transaction is not None:
        reference = get_str(transaction, "reference", "data.transaction.reference", required=False)
    if reference is None:
        raise MalformedPayload("missing:data.transaction_reference")
    status: S | None = EVENTS.mapping().get(event_type)
    refunded = paid = None
    if transaction is not None:
        paid = get_amount(
            transaction, "amount", "data.transaction.amount", required=False, allow_digit_string=True
        )
    if event_type == "refund.processed":
        refunded = get_amount(data, "amount", "data.amount", allow_digit_string=True)
        full = paid is not None and paid > 0 and refunded >= paid
        status = REFUND_PROCESSED.mapping()["full" if full else "partial"]
    facts = Facts(
        provider_ref=reference,
        status=status,
        amount_minor=paid,
        currency=get_currency(data, "currency", "data.currency", required=False),
        amount_refunded_minor=refunded,
        evidence={
            "transaction_id": transaction_id,
            "detail": _refund_detail(data),
        },
    )
    return facts, (data, _REFUND_TIMES)


def _dispute(data: JsonObject, event_type: str) -> tuple[Facts, _Times]:
    dispute_id = get_id(data, "id", "data.id")
    transaction, transaction_id = _transaction(data)
    reference = None
    if transaction is not None:
        reference = get_str(transaction, "reference", "data.transaction.reference", required=False)
    reference = reference or get_str(
        data, "transaction_reference", "data.transaction_reference", required=False
    )
    if reference is None:
        raise MalformedPayload("missing:data.transaction.reference")
    if event_type == "charge.dispute.resolve":
        resolution = get_str(data, "resolution", "data.resolution", required=False, max_length=100)
        row = DISPUTE_RESOLUTION.row(resolution) if resolution else None
        times = _DISPUTE_RESOLVED_TIMES
    else:
        row, times = EVENTS.row(event_type), _DISPUTE_OPEN_TIMES
    facts = Facts(
        provider_ref=reference,
        status=row.status if row else None,
        currency=get_currency(data, "currency", "data.currency", required=False),
        dispute=DisputeFact(dispute_id=dispute_id, state=row.dispute) if row and row.dispute else None,
        metadata=_metadata(transaction) if transaction else None,
        evidence={
            "transaction_id": transaction_id,
            "detail": get_str(data, "category", "data.category", required=False, max_length=100),
        },
    )
    return facts, (data, times)


def _transaction(data: JsonObject) -> tuple[JsonObject | None, str | None]:
    """The transaction an event is about: an object, or just its id in some refund shapes."""
    value = data.get("transaction")
    if isinstance(value, int) and not isinstance(value, bool):
        return None, get_id(data, "transaction", "data.transaction")
    transaction = get_object(data, "transaction", "data.transaction", required=False)
    if transaction is None:
        return None, None
    return transaction, get_id(transaction, "id", "data.transaction.id", required=False)


def _metadata(parent: JsonObject) -> JsonObject | None:
    """Paystack metadata: an object, a JSON string of one, or empty (sent as "" or null)."""
    value = parent.get("metadata")
    if isinstance(value, str) and value.strip():
        try:
            value = json.loads(value)
        except (ValueError, RecursionError):
            return None  # free text a merchant put there is not ours to reject
    return value if isinstance(value, dict) else None


def _refund_detail(data: JsonObject) -> str | None:
    status = get_str(data, "status", "data.status", required=False, max_length=100)
    refund_ref = get_id(data, "refund_reference", "data.refund_reference", required=False)
    parts = [p for p in (status, f"refund_reference={refund_ref}" if refund_ref else None) if p]
    return "; ".join(parts) or None


_Handler = Callable[[JsonObject, str], tuple[Facts, _Times]]

# Every event type paysync maps, and the parser that reads its data.
_HANDLERS: dict[str, _Handler] = {
    "charge.success": transaction_facts,
    "charge.dispute.create": _dispute,
    "charge.dispute.remind": _dispute,
    "charge.dispute.resolve": _dispute,
    "refund.processed": _refund,
    **{t: _refund for t in EVENTS.mapping() if t.startswith("refund.")},
}
