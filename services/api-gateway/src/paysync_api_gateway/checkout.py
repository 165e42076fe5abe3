"""`POST /v1/payments/checkout` and `POST /v1/payments/{id}/retry`: start and re-send payments."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

import httpx
from fastapi import APIRouter, Depends, Header
from fastapi.responses import JSONResponse

from paysync_api_gateway import checkout_service as service
from paysync_api_gateway.auth import current_tenant
from paysync_api_gateway.checkout_gateways import Gateways
from paysync_api_gateway.checkout_schemas import CheckoutStarted, RetryPush, StartCheckout, phone_problem
from paysync_api_gateway.contract import errors
from paysync_api_gateway.deps import Engine, Modes, Observations, Settings
from paysync_api_gateway.inputs import InvalidInput, strict_parameters, text_problem
from paysync_core.crypto import CredentialsKeyError
from paysync_core.db.tenants import load_credentials
from paysync_core.tls import client_tls

router = APIRouter(prefix="/v1", dependencies=[Depends(strict_parameters)], tags=["checkout"])
Tenant = Annotated[str, Depends(current_tenant)]
NO_STORE = {"Cache-Control": "no-store"}


async def tenant_gateways(
    tenant: Tenant, engine: Engine, settings: Settings, modes: Modes
) -> AsyncIterator[Gateways]:
    """The tenant's gateway accounts, with an HTTP client for this request."""
    if modes.cipher is None:
        raise CredentialsKeyError("no credentials keys are configured: gateways cannot be called")
    async with engine.connect() as conn:
        credentials = await load_credentials(conn, tenant, modes.cipher)
    async with httpx.AsyncClient(verify=client_tls()) as http:
        yield Gateways(credentials, http, settings.mpesa_callback_base_url)


TenantGateways = Annotated[Gateways, Depends(tenant_gateways)]


async def idempotency_key(
    key: Annotated[
        str | None,
        Header(
            alias="Idempotency-Key",
            description="Required: the same key again (after a timeout or a crash) gives the same payment",
        ),
    ] = None,
) -> str:
    """The request's Idempotency-Key: 1-255 printable characters."""
    if key is None or not 1 <= len(key) <= 255 or text_problem(key) or not key.isprintable():
        raise InvalidInput(
            "an Idempotency-Key header is required",
            [{"field": "Idempotency-Key", "problem": "required: 1-255 printable characters"}],
        )
    return key


_GATEWAY_AWAY = "Gateway unreachable or limiting (`gateway_unreachable`, `gateway_busy`, `rate_limited`)"


@router.post(
    "/payments/checkout",
    status_code=201,
    response_model=CheckoutStarted,
    responses=errors(
        402,
        409,
        502,
        503,
        e409="`idempotency_key_reused` (the key came with another request) or `attempt_in_flight`",
        e503=_GATEWAY_AWAY,
    ),
)
async def start_checkout(
    body: StartCheckout,
    tenant: Tenant,
    engine: Engine,
    settings: Settings,
    key: Annotated[str, Depends(idempotency_key)],
    gateways: TenantGateways,
) -> JSONResponse:
    """Start a payment at its gateway and register it: 201 when started now, 200 for a repeat of the key."""
    body.check_gateway_fields()
    answer, created = await service.start_checkout(engine, tenant, key, body, gateways, settings)
    return JSONResponse(answer.model_dump(mode="json"), status_code=201 if created else 200, headers=NO_STORE)


@router.post(
    "/payments/{payment_id}/retry",
    response_model=CheckoutStarted,
    responses=errors(
        402,
        409,
        502,
        503,
        e409="`attempt_in_flight`, `too_many_attempts`, `already_paid` or `not_retryable`",
        e503=_GATEWAY_AWAY,
    ),
)
async def retry_payment(
    payment_id: str,
    body: RetryPush,
    tenant: Tenant,
    engine: Engine,
    settings: Settings,
    gateways: TenantGateways,
    observations: Observations,
) -> JSONResponse:
    """Send a failed or cancelled M-Pesa payment's STK push again, as a new attempt of the same payment."""
    if problem := phone_problem(body.phone):
        raise InvalidInput("the request is not valid", [{"field": "phone", "problem": problem}])
    answer = await service.retry_push(
        engine, tenant, payment_id, body.phone, gateways, settings, observations.publish
    )
    return JSONResponse(answer.model_dump(mode="json"), headers=NO_STORE)
