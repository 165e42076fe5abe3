"""`POST /admin/v1/payments/{id}/override`: an operator sets a payment's status, audited."""

from __future__ import annotations

import asyncio
import time
from typing import Annotated

import structlog
from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.ext.asyncio import AsyncEngine

from paysync_api_gateway.admin import Operator
from paysync_api_gateway.deps import Engine, Observations, Settings
from paysync_api_gateway.inputs import CleanText, strict_parameters
from paysync_api_gateway.service import NotFound, parse_payment_id
from paysync_core.contracts import PaymentObservation
from paysync_core.db import history as history_repo
from paysync_core.domain.status import UnifiedStatus
from paysync_core.overrides import MAX_BY, MAX_REASON, override_observation

router = APIRouter(prefix="/admin/v1", tags=["admin"], dependencies=[Depends(strict_parameters)])
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
    key = parse_payment_id(payment_id)
    async with engine.connect() as conn:
        payment = await history_repo.find_payment(conn, key)
    if payment is None:
        raise NotFound(f"no payment {payment_id!r}")
    obs = override_observation(payment, body.status, body.reason, body.by)
    await observations.publish(obs)
    log.info("payment.overridden", tenant=obs.tenant, payment_id=payment_id, status=body.status.value)
    applied = await _applied_within(engine, obs, settings.override_wait_seconds)
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
