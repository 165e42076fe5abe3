"""Stripe: `Stripe-Signature` verification and event parsing (status tables in `stripe_tables.py`)."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable

from paysync_core.contracts.common import Provider, Verdict
from paysync_core.contracts.observation import DisputeFact
from paysync_core.credentials import StripeCredentials
from paysync_core.domain.status import UnifiedStatus as S
from paysync_core.errors import AuthenticityError, MalformedPayload
from paysync_core.providers._common import (
    Facts,
    JsonObject,
    build_observation,
    coerce_credentials,
    constant_time_equal,
    get_amount,
    get_currency,
    get_expandable,
    get_object,
    get_str,
    header,
    is_utf8,
    load_object,
    unix_time,
)
from paysync_core.providers.base import (
    ParseContext,
    Parsed,
    ProviderCredentials,
    WebhookRequest,
)
from paysync_core.providers.modes import event_mode
from paysync_core.providers.stripe_tables import (
    CHARGE_REFUNDED,
    DISPUTE_CLOSED,
    EVENTS,
    INVOICE_PAYMENT_FAILED,
    SESSION_PAYMENT_STATUS,
    STATUS_TABLES,
)

SIGNATURE_HEADER = "stripe-signature"


def sign_stripe(body: bytes, secret: str, timestamp: int) -> str:
    """The `Stripe-Signature` value Stripe sends for `body` signed with `secret` at `timestamp`."""
    return f"t={timestamp},v1={_v1(body, secret, timestamp)}"


def _v1(body: bytes, secret: str, timestamp: int) -> str:
    return hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def parse_signature_header(value: str) -> tuple[int, tuple[str, ...]]:
    """The timestamp and v1 signatures in a `Stripe-Signature` value (other schemes ignored)."""
    timestamp: int | None = None
    signatures: list[str] = []
    for item in value.split(","):
        key, sep, val = item.strip().partition("=")
        if not sep:
            raise AuthenticityError("malformed_signature_header")
        if key == "t":
            # A second t, or one that is not a plain epoch second, makes the header ambiguous.
            if timestamp is not None or not (val.isascii() and val.isdigit() and len(val) <= 15):
                raise AuthenticityError("malformed_signature_header")
            timestamp = int(val)
        elif key == "v1":
            signatures.append(val)
    if timestamp is None or not signatures:
        raise AuthenticityError("malformed_signature_header")
    return timestamp, tuple(signatures)


class StripeAdapter:
    """Stripe's signatures, events and status tables."""

    provider = Provider.STRIPE
    status_tables = STATUS_TABLES

    def authenticate(self, request: WebhookRequest, credentials: ProviderCredentials) -> Verdict:
        """VERIFIED when a v1 signature matches any endpoint secret within the tolerance."""
        creds = coerce_credentials(credentials, StripeCredentials)
        value = header(request.headers, SIGNATURE_HEADER)
        if not value:
            raise AuthenticityError("missing_signature")
        timestamp, candidates = parse_signature_header(value)
        matched = False
        for secret in creds.webhook_secrets:  # every pair is compared: timing tells nothing
            expected = _v1(request.body, secret.get_secret_value(), timestamp)
            for candidate in candidates:
                matched |= constant_time_equal(expected, candidate)
        if not matched:
            raise AuthenticityError("bad_signature")
        skew = request.received_at.timestamp() - timestamp
        if abs(skew) > creds.tolerance_seconds:  # stale replays and clocks far ahead alike
            raise AuthenticityError("timestamp_outside_tolerance", skew_seconds=int(skew))
        return Verdict.VERIFIED

    def ip_allowed(self, request: WebhookRequest, credentials: ProviderCredentials) -> bool:
        """Always True: Stripe is authenticated by signature, with no allowlist configured."""
        return True

    def parse(self, body: bytes, ctx: ParseContext) -> Parsed:
        """The observation in a Stripe event, or unmapped for event types paysync ignores."""
        event = load_object(body)
        event_type = get_str(event, "type", "type")
        handler = EVENT_PARSERS.get(event_type)
        if handler is None:
            return Parsed(event_type, (), unmapped=True)
        event_id = get_str(event, "id", "id")
        created = unix_time(event.get("created"), "created")
        obj = get_object(get_object(event, "data", "data"), "object", "data.object")
        # Each mapped event is about one payment, so its id alone identifies the observation.
        observation = build_observation(
            provider=self.provider,
            observation_id=event_id,
            provider_time=created,
            facts=handler(obj, event_type),
            ctx=ctx,
            event_type=event_type,
            verified=ctx.verified,
            provider_event_id=event_id,
            mode=event_mode(self.provider, event),
        )
        return Parsed(event_type, (observation,))

    def reference_hint(self, body: bytes | JsonObject) -> str | None:
        """The provider_ref `parse` would give, or None; never raises."""
        try:
            event = body if isinstance(body, dict) else load_object(body)
            event_type = event.get("type")
            if event_type not in EVENT_PARSERS:
                return None
            obj = event["data"]["object"]
            return EVENT_PARSERS[event_type](obj, event_type).provider_ref
        except Exception:  # noqa: BLE001 - a hint for a record key must never fail the request
            return None


def _checkout_session(obj: JsonObject, event_type: str) -> Facts:
    session_id = get_str(obj, "id", "data.object.id")
    payment_intent = get_expandable(obj, "payment_intent", "data.object.payment_intent")
    invoice = get_expandable(obj, "invoice", "data.object.invoice")
    amount = get_amount(obj, "amount_total", "data.object.amount_total", required=False)
    if event_type == "checkout.session.completed":
        payment_status = get_str(obj, "payment_status", "data.object.payment_status")
        row = SESSION_PAYMENT_STATUS.row(payment_status)
        status = row.status if row else None
        if payment_status == "no_payment_required":
            amount = 0  # nothing moved now, whatever the session's total says
    else:
        status = EVENTS.mapping()[event_type]
    return Facts(
        provider_ref=session_id,
        status=status,
        aliases=tuple(a for a in (payment_intent, invoice) if a),
        amount_minor=amount,
        currency=get_currency(obj, "currency", "data.object.currency", required=False),
        metadata=_metadata(obj),
        evidence={"session_id": session_id, "payment_intent_id": payment_intent, "invoice_id": invoice},
    )


def _payment_intent(obj: JsonObject, event_type: str) -> Facts:
    intent_id = get_str(obj, "id", "data.object.id")
    status = EVENTS.mapping()[event_type]
    amount = get_amount(obj, "amount", "data.object.amount")
    received = get_amount(obj, "amount_received", "data.object.amount_received", required=False)
    if status is S.SUCCEEDED and received:
        amount = received  # what was captured, which a partial capture makes smaller
    error = get_object(obj, "last_payment_error", "data.object.last_payment_error", required=False)
    return Facts(
        provider_ref=intent_id,
        status=status,
        amount_minor=amount,
        currency=get_currency(obj, "currency", "data.object.currency"),
        metadata=_metadata(obj),
        evidence={
            "payment_intent_id": intent_id,
            "charge_id": get_expandable(obj, "latest_charge", "data.object.latest_charge"),
            "detail": _error_detail(error),
        },
    )


def _invoice(obj: JsonObject, event_type: str) -> Facts:
    invoice_id = get_str(obj, "id", "data.object.id")
    if event_type == "invoice.payment_failed":
        next_attempt = obj.get("next_payment_attempt")
        if next_attempt is not None and (isinstance(next_attempt, bool) or not isinstance(next_attempt, int)):
            raise MalformedPayload("type:data.object.next_payment_attempt")
        status = INVOICE_PAYMENT_FAILED.mapping()["null" if next_attempt is None else "scheduled"]
    else:
        status = EVENTS.mapping()[event_type]
    paid = status is S.SUCCEEDED
    key = "amount_paid" if paid else "amount_due"
    intents = _invoice_payment_intents(obj)
    return Facts(
        provider_ref=invoice_id,
        status=status,
        aliases=intents,
        amount_minor=get_amount(obj, key, f"data.object.{key}"),
        currency=get_currency(obj, "currency", "data.object.currency"),
        metadata=_metadata(obj),
        evidence={
            "invoice_id": invoice_id,
            "payment_intent_id": intents[0] if intents else None,
            "charge_id": get_expandable(obj, "charge", "data.object.charge"),
        },
    )


def _invoice_payment_intents(obj: JsonObject) -> tuple[str, ...]:
    """The invoice's PaymentIntents: the legacy field, then any included invoice payments."""
    found = [get_expandable(obj, "payment_intent", "data.object.payment_intent")]
    payments = get_object(obj, "payments", "data.object.payments", required=False)
    entries = payments.get("data") if payments else None
    if entries is not None and not isinstance(entries, list):
        raise MalformedPayload("type:data.object.payments.data")
    for i, entry in enumerate(entries or ()):
        path = f"data.object.payments.data.{i}"
        if not isinstance(entry, dict):
            raise MalformedPayload(f"type:{path}")
        payment = get_object(entry, "payment", f"{path}.payment", required=False)
        if payment:
            found.append(get_expandable(payment, "payment_intent", f"{path}.payment.payment_intent"))
    return tuple(dict.fromkeys(f for f in found if f))


def _charge_refunded(obj: JsonObject, event_type: str) -> Facts:
    charge_id = get_str(obj, "id", "data.object.id")
    amount = get_amount(obj, "amount", "data.object.amount")
    refunded_amount = get_amount(obj, "amount_refunded", "data.object.amount_refunded")
    if obj.get("refunded") is True or (amount > 0 and refunded_amount >= amount):
        kind = "full"
    else:
        kind = "partial" if refunded_amount > 0 else "none"
    payment_intent = get_expandable(obj, "payment_intent", "data.object.payment_intent")
    return Facts(
        provider_ref=payment_intent or charge_id,
        status=CHARGE_REFUNDED.mapping()[kind],
        aliases=(charge_id,),
        amount_minor=amount,
        currency=get_currency(obj, "currency", "data.object.currency"),
        amount_refunded_minor=refunded_amount,
        metadata=_metadata(obj),
        evidence={"charge_id": charge_id, "payment_intent_id": payment_intent},
    )


def _dispute(obj: JsonObject, event_type: str) -> Facts:
    dispute_id = get_str(obj, "id", "data.object.id")
    charge_id = get_expandable(obj, "charge", "data.object.charge")
    payment_intent = get_expandable(obj, "payment_intent", "data.object.payment_intent")
    ref = payment_intent or charge_id
    if ref is None:
        raise MalformedPayload("missing:data.object.payment_intent")
    if event_type == "charge.dispute.created":
        row = EVENTS.row(event_type)
    else:
        row = DISPUTE_CLOSED.row(get_str(obj, "status", "data.object.status"))
    return Facts(
        provider_ref=ref,
        status=row.status if row else None,
        aliases=(charge_id,) if charge_id else (),
        currency=get_currency(obj, "currency", "data.object.currency", required=False),
        dispute=DisputeFact(dispute_id=dispute_id, state=row.dispute) if row and row.dispute else None,
        metadata=_metadata(obj),
        evidence={
            "charge_id": charge_id,
            "payment_intent_id": payment_intent,
            "detail": get_str(obj, "reason", "data.object.reason", required=False, max_length=200),
        },
    )


def _metadata(obj: JsonObject) -> JsonObject | None:
    return get_object(obj, "metadata", "data.object.metadata", required=False)


def _error_detail(error: JsonObject | None) -> str | None:
    if not error:
        return None
    for key in ("decline_code", "code"):
        value = error.get(key)
        if isinstance(value, str) and 0 < len(value) <= 100 and is_utf8(value):
            return value
    return None


_Handler = Callable[[JsonObject, str], Facts]

# Every event type paysync maps, and the object parser that reads its data.object.
EVENT_PARSERS: dict[str, _Handler] = {
    "checkout.session.completed": _checkout_session,
    **{t: _checkout_session for t in EVENTS.mapping() if t.startswith("checkout.session.")},
    **{t: _payment_intent for t in EVENTS.mapping() if t.startswith("payment_intent.")},
    **{t: _invoice for t in EVENTS.mapping() if t.startswith("invoice.")},
    "invoice.payment_failed": _invoice,
    "charge.refunded": _charge_refunded,
    "charge.dispute.created": _dispute,
    "charge.dispute.closed": _dispute,
}
