"""`POST /admin/v1/payments/{id}/override` (the operator) and `POST /v1/payments/{id}/override` (a tenant key
with the `override` scope, e.g. from the console): set a payment's status by hand, audited in its history."""

from __future__ import annotations

import asyncio
import time
from typing import Annotated

import structlog
from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.ext.asyncio import AsyncEngine

from paysync_api_gateway.access import KeyAccess
from paysync_api_gateway.admin import Operator
from paysync_api_gateway.auth import current_key
from paysync_api_gateway.contract import errors
from paysync_api_gateway.deps import Engine, Observations, Settings
from paysync_api_gateway.inputs import CleanText, strict_parameters
from paysync_api_gateway.service import NotFound, parse_payment_id
from paysync_core.contracts import PaymentObservation
from paysync_core.db import history as history_repo
from paysync_core.domain.status import UnifiedStatus
from paysync_core.overrides import MAX_BY, MAX_REASON, override_observation
from paysync_core.publishers import TopicPublisher

router = APIRouter(prefix="/admin/v1", tags=["admin"], dependencies=[Depends(strict_parameters)])
tenant_router = APIRouter(prefix="/v1", dependencies=[Depends(strict_parameters)])
log = structlog.get_logger()


class Override(BaseModel):
    """The status to set, why, and who decided it (kept in the payment's history)."""

    model_config = ConfigDict(extra="forbid")
    status: UnifiedStatus
    reason: Annotated[CleanText, Field(min_length=1, max_length=MAX_REASON)]
    by: Annotated[CleanText, Field(min_length=1, max_length=MAX_BY)]


@router.post("/payments/{payment_id}/override")
async def override_status(
    payment_id: str,
    body: Override,
    _: Operator,
    engine: Engine,
    observations: Observations,
    settings: Settings,
) -> JSONResponse:
    """Set the payment's status; 200 once the projector applied it, 202 if it has not within the wait."""
    return await set_status(engine, observations, settings.override_wait_seconds, payment_id, body)


class TenantOverride(Override):
    """The status to set, why, and who decided it; the API key's id is added to `by` in the history."""

    by: Annotated[CleanText, Field(min_length=1, max_length=MAX_BY - 32)]


@tenant_router.post(
    "/payments/{payment_id}/override",
    responses=errors(
        answers={
            202: {"description": "Published, not applied within `PAYSYNC_API_GATEWAY_OVERRIDE_WAIT_SECONDS`"}
        }
    ),
)
async def override_own_payment(
    payment_id: str,
    body: TenantOverride,
    key: Annotated[KeyAccess, Depends(current_key)],
    engine: Engine,
    observations: Observations,
    settings: Settings,
) -> JSONResponse:
    """Set one of the tenant's payments' status by hand (a key with the `override` scope), as the operator's
    override does: kept in the payment's history with who, why and the key; 200 once applied, 202 if not
    within the wait, 404 for another tenant's payment."""
    decision = Override(status=body.status, reason=body.reason, by=f"{body.by} (API key #{key.key_id})")
    wait = settings.override_wait_seconds
    return await set_status(engine, observations, wait, payment_id, decision, tenant=key.tenant)


async def set_status(
    engine: AsyncEngine,
    observations: TopicPublisher[PaymentObservation],
    wait_seconds: float,
    payment_id: str,
    decision: Override,
    *,
    tenant: str | None = None,
) -> JSONResponse:
    """Publish the override of a payment (only `tenant`'s, when given); answer once applied, else 202."""
    key = parse_payment_id(payment_id)
    async with engine.connect() as conn:
        payment = await history_repo.find_payment(conn, key, tenant)
    if payment is None:
        raise NotFound(f"no payment {payment_id!r}")
    obs = override_observation(payment, decision.status, decision.reason, decision.by)
    await observations.publish(obs)
    log.info("payment.overridden", tenant=obs.tenant, payment_id=payment_id, status=decision.status.value)
    applied = await _applied_within(engine, obs, wait_seconds)
    async with engine.connect() as conn:
        now = await history_repo.find_payment(conn, key)
    answer = {
        "payment_id": payment_id,
        "observation_id": obs.observation_id,
        "status_before": payment.status,
        "status": now.status if now else payment.status,
        "applied": applied,
    }
    return JSONResponse(answer, status_code=200 if applied else 202, headers={"Cache-Control": "no-store"})


async def _applied_within(engine: AsyncEngine, obs: PaymentObservation, seconds: float) -> bool:
    """Whether the projector records the override within `seconds` (polled: it is one row)."""
    deadline = time.monotonic() + seconds
    while True:
        async with engine.connect() as conn:
            if await history_repo.is_applied(conn, obs.tenant, obs.observation_id):
                return True
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(0.1)
