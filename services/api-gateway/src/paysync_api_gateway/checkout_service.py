"""Use cases of starting a payment at its gateway and re-sending an M-Pesa push.

A checkout is recorded (by the request's Idempotency-Key) before the gateway is called, and the
payment is registered with the gateway's reference as soon as the gateway answers. A crash in
between leaves the checkout `initiating`: the same request again calls the gateway so that it
answers with what it made the first time (Stripe: the same idempotency key gives the same Checkout
Session; Paystack: the reference is ours and is registered before the call), then registers it.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import uuid
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import structlog
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from paysync_api_gateway import checkout_repository as repo
from paysync_api_gateway import repository as payments_repo
from paysync_api_gateway.checkout_gateways import Gateways, paystack_reference, push_pending
from paysync_api_gateway.checkout_schemas import CheckoutStarted, StartCheckout
from paysync_api_gateway.service import Conflict, NotFound, parse_payment_id
from paysync_api_gateway.settings import ApiGatewaySettings
from paysync_core.contracts import PaymentObservation
from paysync_core.contracts.common import Provider
from paysync_core.domain.ids import payment_id_for
from paysync_core.domain.status import MONEY_MOVED, UnifiedStatus
from paysync_core.errors import GatewayError
from paysync_core.providers.clients import Initiated
from paysync_core.providers.modes import credentials_mode

log = structlog.get_logger()

#: Opens the tenant's gateways (credentials read, an HTTP client) for the length of a use case.
OpenGateways = Callable[[str], Awaitable[Any]]
_OPEN = frozenset({UnifiedStatus.PENDING, UnifiedStatus.PROCESSING, UnifiedStatus.REQUIRES_ACTION})


class IdempotencyKeyReused(Conflict):
    """The Idempotency-Key was used before with another request."""

    code = "idempotency_key_reused"


class AttemptInFlight(Conflict):
    """An M-Pesa push of this payment may still be answered; wait for its outcome."""

    code = "attempt_in_flight"


class TooManyAttempts(Conflict):
    """The payment has had as many M-Pesa pushes as the settings allow."""

    code = "too_many_attempts"


class AlreadyPaid(Conflict):
    """Money moved for this payment already; there is nothing to retry."""

    code = "already_paid"


class NotRetryable(Conflict):
    """Only M-Pesa payments started with `POST /v1/payments/checkout` can be pushed again."""

    code = "not_retryable"


def request_hash(body: StartCheckout) -> str:
    """What makes two requests the same request (the phone number left out: it is never kept)."""
    return hashlib.sha256(json.dumps(body.replayable(), sort_keys=True).encode()).hexdigest()


async def start_checkout(
    engine: AsyncEngine,
    tenant: str,
    key: str,
    body: StartCheckout,
    gateways: Gateways,
    settings: ApiGatewaySettings,
) -> tuple[CheckoutStarted, bool]:
    """Start the payment at its gateway and register it; (answer, whether this call started it)."""
    provider = body.provider.value
    payment_id = payment_id_for(tenant, provider, f"checkout:{key}")
    async with engine.begin() as conn:
        checkout = await repo.open_checkout(
            conn,
            {
                "tenant_id": tenant,
                "idempotency_key": key,
                "payment_id": payment_id,
                "provider": provider,
                "request_hash": request_hash(body),
                "request": body.replayable(),
            },
        )
        if checkout.request_hash != request_hash(body) or checkout.provider != provider:
            raise IdempotencyKeyReused("this Idempotency-Key was used with another request")
        if checkout.state == "started":
            return await _replayed(conn, tenant, checkout), False
        if body.provider is Provider.MPESA:
            await _refuse_push_in_flight(conn, checkout.sending_since, settings.mpesa_attempt_seconds)
        attempt = await repo.begin_attempt(conn, tenant, key)
        if body.provider is Provider.PAYSTACK:  # our own reference: registered before Paystack hears of it
            ref = paystack_reference(payment_id, attempt)
            await _register(conn, tenant, payment_id, body, ref, gateways)
    initiated = await _call_gateway(engine, tenant, key, gateways.start(tenant, payment_id, body, attempt))
    if settings.checkout_fault == "crash_after_gateway_call":
        os.kill(os.getpid(), signal.SIGKILL)  # tests only: a crash between the gateway and the record
    async with engine.begin() as conn:
        if body.provider is not Provider.PAYSTACK:
            await _register(conn, tenant, payment_id, body, initiated.provider_ref, gateways)
        row = await _payment_row(conn, tenant, payment_id)
        answer = _answer(payment_id, initiated, row.status, row.sends)
        await repo.attempt_started(conn, tenant, key, answer.model_dump(mode="json"), row.sequence)
    log.info(
        "checkout.started", tenant=tenant, provider=provider, payment_id=str(payment_id), attempt=attempt
    )
    return answer, True


async def _register(
    conn: AsyncConnection,
    tenant: str,
    payment_id: uuid.UUID,
    body: StartCheckout,
    ref: str,
    gateways: Gateways,
) -> None:
    """Register the payment under `ref` (a later attempt's reference becomes an alias of it)."""
    provider = body.provider.value
    await payments_repo.insert_payment(
        conn,
        {
            "id": payment_id,
            "tenant_id": tenant,
            "provider": provider,
            "provider_ref": ref,
            "domain": body.domain,
            "entity_id": body.entity_id,
            "amount_minor": body.amount_minor,
            "currency": body.currency,
            "metadata": {"started_by": "checkout"},
            "mode": credentials_mode(getattr(gateways.credentials, provider)),
        },
    )
    taken = await payments_repo.bind_refs(conn, tenant, provider, [ref], payment_id)
    if taken:
        raise Conflict(f"the gateway's reference already belongs to another payment: {sorted(taken)}")
    await payments_repo.announce_registration(conn)


async def _call_gateway(engine: AsyncEngine, tenant: str, key: str, call: Awaitable[Initiated]) -> Initiated:
    """The gateway's answer; a failure is recorded on the checkout (nothing in flight) and raised."""
    try:
        return await call
    except Exception as exc:
        async with engine.begin() as conn:
            await repo.attempt_failed(conn, tenant, key, f"{type(exc).__name__}: {exc}")
        if isinstance(exc, GatewayError):
            log.warning("checkout.gateway_error", tenant=tenant, error=exc.code, provider=exc.provider)
        raise


async def _refuse_push_in_flight(conn: AsyncConnection, sending_since: Any, seconds: float) -> None:
    """AttemptInFlight while a push started less than `seconds` ago has no known end."""
    if sending_since is not None and sending_since > await repo.now(conn) - timedelta(seconds=seconds):
        raise AttemptInFlight(
            "an STK push of this payment may have reached the customer; "
            f"its outcome is not known yet (try again after {seconds:.0f} s)"
        )


async def _replayed(conn: AsyncConnection, tenant: str, checkout: Any) -> CheckoutStarted:
    """The answer a started checkout gave, with the payment's status and sends as they are now."""
    row = await _payment_row(conn, tenant, checkout.payment_id)
    return CheckoutStarted.model_validate({**checkout.answer, "status": row.status, "sends": row.sends})


def _answer(payment_id: uuid.UUID, initiated: Initiated, status: str, sends: int) -> CheckoutStarted:
    """What the front end needs next, per gateway."""
    details = initiated.details
    fields: dict[str, Any] = {
        "payment_id": str(payment_id),
        "provider": initiated.provider,
        "provider_ref": initiated.provider_ref,
        "status": status,
        "checkout_url": initiated.checkout_url,
        "sends": sends,
    }
    if initiated.provider is Provider.STRIPE:
        fields["session_id"] = initiated.provider_ref
    elif initiated.provider is Provider.PAYSTACK:
        fields |= {"reference": initiated.provider_ref, "access_code": details.get("access_code") or None}
    else:
        fields |= {
            "checkout_request_id": initiated.provider_ref,
            "customer_message": initiated.customer_message,
        }
    return CheckoutStarted.model_validate(fields)


async def retry_push(
    engine: AsyncEngine,
    tenant: str,
    payment_id_text: str,
    phone: str,
    gateways: Gateways,
    settings: ApiGatewaySettings,
    announce: Callable[[PaymentObservation], Awaitable[object]],
) -> CheckoutStarted:
    """Send the M-Pesa STK push of a payment again, as a new attempt of the same payment.

    The new push is then announced as pending (`announce` publishes the observation): the payment
    waits for the customer again, so the reconciler checks it instead of taking the earlier push's
    failure as its end.
    """
    payment_id = parse_payment_id(payment_id_text)
    async with engine.begin() as conn:
        payment = await repo.payment_for_update(conn, tenant, payment_id)
        if payment is None:
            raise NotFound(f"no payment {payment_id_text!r}")
        checkout = await _refuse_retry(
            conn, payment, await repo.checkout_of_payment(conn, tenant, payment_id), settings
        )
        await repo.begin_attempt(conn, tenant, checkout.idempotency_key)
    request = checkout.request
    reference = request["account_reference"]
    initiated = await _call_gateway(
        engine,
        tenant,
        checkout.idempotency_key,
        gateways.push(
            tenant, payment.amount_minor, phone, reference, request.get("description") or reference
        ),
    )
    async with engine.begin() as conn:
        taken = await payments_repo.bind_refs(conn, tenant, "mpesa", [initiated.provider_ref], payment_id)
        if taken:
            raise Conflict(f"the gateway's reference already belongs to another payment: {sorted(taken)}")
        sends, sequence = await repo.count_send(conn, tenant, payment_id, initiated.provider_ref)
        row = await _payment_row(conn, tenant, payment_id)
        answer = _answer(payment_id, initiated, row.status, sends)
        await repo.attempt_started(
            conn, tenant, checkout.idempotency_key, answer.model_dump(mode="json"), sequence
        )
        await payments_repo.announce_registration(conn)  # a callback parked meanwhile now matches
    log.info("checkout.push_resent", tenant=tenant, payment_id=str(payment_id), sends=sends)
    try:
        await announce(push_pending(gateways, tenant, initiated.provider_ref))
    except Exception as exc:  # noqa: BLE001 - the push is sent and registered; its callback or a check will tell
        log.warning("checkout.push_pending_not_published", tenant=tenant, error=type(exc).__name__)
    return answer


async def _refuse_retry(
    conn: AsyncConnection, payment: Any, checkout: Any | None, settings: ApiGatewaySettings
) -> Any:
    """The checkout to push again; the typed refusal of a retry that must not send a push."""
    if payment.provider != Provider.MPESA.value or checkout is None:
        raise NotRetryable("only M-Pesa payments started with POST /v1/payments/checkout can be pushed again")
    status = UnifiedStatus(payment.status)
    if status in MONEY_MOVED:
        raise AlreadyPaid(f"the payment is {status.value} already; there is nothing to retry")
    await _refuse_push_in_flight(conn, checkout.sending_since, settings.mpesa_attempt_seconds)
    unanswered = checkout.sent_sequence == payment.sequence and checkout.last_sent_at is not None
    recent = checkout.last_sent_at is not None and checkout.last_sent_at > await repo.now(conn) - timedelta(
        seconds=settings.mpesa_attempt_seconds
    )
    if status in _OPEN or (unanswered and recent):
        raise AttemptInFlight(f"the last STK push is {status.value}: wait for the customer's answer")
    if payment.sends >= settings.mpesa_max_sends:
        raise TooManyAttempts(f"{payment.sends} STK pushes sent already, the most allowed")
    return checkout


async def _payment_row(conn: AsyncConnection, tenant: str, payment_id: uuid.UUID) -> Any:
    """The payment's row as the API shows it (registered in this transaction or before)."""
    row = await payments_repo.get_payment(conn, tenant, payment_id)
    if row is None:
        raise NotFound(f"no payment {payment_id}")
    return row
