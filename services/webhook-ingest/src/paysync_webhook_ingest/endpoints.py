"""The gateways' front door: `POST /webhooks/{tenant}/...` (HTTP contract in docs/http-api.md)."""

from __future__ import annotations

import time

import structlog
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from paysync_core.contracts import Provider
from paysync_core.errors import AuthenticityError, MalformedPayload, PaysyncError
from paysync_core.providers.base import WebhookRequest
from paysync_webhook_ingest.errors import PayloadTooLarge, TooManyFailures, http_status_of
from paysync_webhook_ingest.metrics import IN_FLIGHT, PRODUCE_SECONDS, WEBHOOKS
from paysync_webhook_ingest.service import Accepted, accept_webhook, utcnow

log = structlog.get_logger()


async def stripe_webhook(request: Request) -> JSONResponse:
    """A Stripe event for this tenant's account."""
    accepted = await _ingest(request, request.path_params["tenant"], Provider.STRIPE)
    return JSONResponse({"received": True, "ingest_id": accepted.ingest_id})


async def paystack_webhook(request: Request) -> JSONResponse:
    """A Paystack event for this tenant's integration."""
    accepted = await _ingest(request, request.path_params["tenant"], Provider.PAYSTACK)
    return JSONResponse({"received": True, "ingest_id": accepted.ingest_id})


async def mpesa_callback(request: Request) -> JSONResponse:
    """An M-Pesa STK Push callback; the token in the URL is the tenant's shared secret."""
    params = request.path_params
    await _ingest(request, params["tenant"], Provider.MPESA, path_token=params["callback_token"])
    return JSONResponse({"ResultCode": 0, "ResultDesc": "Accepted"})


#: Plain Starlette routes: the webhook path reads raw bytes and needs none of FastAPI's
#: per-request dependency solving and validation, which cost more than the rest of the request
#: (measured: ~50 µs CPU per request here, ~300 µs as a FastAPI route with four `Depends`).
routes = [
    Route("/webhooks/{tenant}/stripe", stripe_webhook, methods=["POST"]),
    Route("/webhooks/{tenant}/paystack", paystack_webhook, methods=["POST"]),
    Route("/webhooks/{tenant}/mpesa/{callback_token}", mpesa_callback, methods=["POST"]),
]


async def _ingest(
    request: Request, tenant: str, provider: Provider, path_token: str | None = None
) -> Accepted:
    with IN_FLIGHT.track_inprogress():
        return await _answer(request, tenant, provider, path_token)


async def _answer(request: Request, tenant: str, provider: Provider, path_token: str | None) -> Accepted:
    # A plain Starlette route (see `routes`): no Depends on the hot path, the app's parts from its state.
    state = request.app.state
    started = time.perf_counter()
    received_at = utcnow()
    headers = {k.lower(): v for k, v in request.headers.items()}
    remote = request.client.host if request.client else None
    body: bytes | None = None
    outcome = "accepted"
    try:
        body = await _read_body(request, state.settings.max_body_bytes)
        if not is_json_media_type(headers.get("content-type", "application/json")):
            raise MalformedPayload("content type must be application/json")
        credentials = await state.credentials.get(tenant)
        webhook = WebhookRequest(
            tenant=tenant,
            body=body,
            headers=headers,
            remote_addr=remote,
            received_at=received_at,
            path_token=path_token,
        )
        try:
            accepted = await accept_webhook(
                webhook,
                provider,
                credentials,
                state.publish_raw,
                timeout=state.settings.produce_timeout_seconds,
            )
        except AuthenticityError as exc:
            # Forgeries are answered 401 until the tenant's budget for them is spent, then 429:
            # a flood of them then costs little, and genuine webhooks are never throttled.
            if not state.auth_failures.try_take(tenant):
                raise TooManyFailures(tenant) from exc
            raise
        PRODUCE_SECONDS.observe(time.perf_counter() - started)
        log.debug("webhook.accepted", tenant=tenant, provider=provider.value, ingest_id=accepted.ingest_id)
        return accepted
    except PaysyncError as exc:
        outcome = exc.code
        status = http_status_of(exc)
        if 400 <= status < 500:
            state.quarantine.record(
                tenant=tenant,
                provider=provider.value,
                reason=_reason(exc),
                http_status=status,
                remote_addr=remote,
                headers=headers,
                body=body,
                received_at=received_at,
            )
        raise
    finally:
        known = outcome not in ("unknown_tenant", "too_many_failures")
        WEBHOOKS.labels(tenant if known else "_unknown", provider.value, outcome).inc()


def is_json_media_type(content_type: str) -> bool:
    """True for `application/json` and `+json` types (`application/vnd.x+json`), parameters allowed."""
    media_type = content_type.split(";", 1)[0].strip().lower()
    kind, _, subtype = media_type.partition("/")
    return kind == "application" and (subtype == "json" or (subtype.endswith("+json") and len(subtype) > 5))


def _reason(exc: PaysyncError) -> str:
    detail = getattr(exc, "reason", None)
    return f"{exc.code}:{detail}" if detail else exc.code


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(limit)
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(limit)
        chunks.append(chunk)
    return b"".join(chunks)
