"""The gateways' front door: `POST /webhooks/{tenant}/...` (HTTP contract in DESIGN.md)."""

from __future__ import annotations

import time

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from paysync_core.contracts import Provider
from paysync_core.errors import PaysyncError
from paysync_core.providers.base import WebhookRequest
from paysync_webhook_ingest.errors import PayloadTooLarge
from paysync_webhook_ingest.metrics import PRODUCE_SECONDS, WEBHOOKS
from paysync_webhook_ingest.service import accept_webhook, utcnow

router = APIRouter(prefix="/webhooks")


@router.post("/{tenant}/stripe")
async def stripe_webhook(tenant: str, request: Request) -> JSONResponse:
    """A Stripe event for this tenant's account."""
    await _ingest(request, tenant, Provider.STRIPE)
    return JSONResponse({"received": True})


@router.post("/{tenant}/paystack")
async def paystack_webhook(tenant: str, request: Request) -> JSONResponse:
    """A Paystack event for this tenant's integration."""
    await _ingest(request, tenant, Provider.PAYSTACK)
    return JSONResponse({"received": True})


@router.post("/{tenant}/mpesa/{callback_token}")
async def mpesa_callback(tenant: str, callback_token: str, request: Request) -> JSONResponse:
    """An M-Pesa STK Push callback; the token in the URL is the tenant's shared secret."""
    await _ingest(request, tenant, Provider.MPESA, path_token=callback_token)
    return JSONResponse({"ResultCode": 0, "ResultDesc": "Accepted"})


async def _ingest(request: Request, tenant: str, provider: Provider, path_token: str | None = None) -> None:
    state = request.app.state
    started = time.perf_counter()
    outcome = "accepted"
    try:
        body = await _read_body(request, state.settings.max_body_bytes)
        credentials = await state.credentials.get(tenant)
        webhook = WebhookRequest(
            tenant=tenant,
            body=body,
            headers={k.lower(): v for k, v in request.headers.items()},
            remote_addr=request.client.host if request.client else None,
            received_at=utcnow(),
            path_token=path_token,
        )
        await accept_webhook(
            webhook, provider, credentials, state.publish_raw, timeout=state.settings.produce_timeout_seconds
        )
        PRODUCE_SECONDS.observe(time.perf_counter() - started)
    except PaysyncError as exc:
        outcome = exc.code
        raise
    finally:
        known = outcome not in ("unknown_tenant",)
        WEBHOOKS.labels(tenant if known else "_unknown", provider.value, outcome).inc()


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
