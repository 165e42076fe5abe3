"""`/admin/v1/reconcile-sweeps`: an operator's window sweep (the whole outage), as `paysync reconcile`.

Starting one publishes the window tick and answers 202 with the sweep to poll; a reconciler replica
takes it on and writes its counts on the tick's row as it goes (`paysync_core.window_sweeps`).
"""

from __future__ import annotations

from typing import Annotated, Any

import structlog
from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from pydantic import AwareDatetime, BaseModel, ConfigDict

from paysync_api_gateway.admin import Operator
from paysync_api_gateway.deps import Engine
from paysync_api_gateway.inputs import InvalidInput, strict_parameters
from paysync_api_gateway.service import NotFound
from paysync_core import window_sweeps
from paysync_core.contracts import Provider, ReconcileTick
from paysync_core.contracts.common import TenantId
from paysync_core.db import tenants as tenant_repo
from paysync_core.errors import UnknownTenant
from paysync_core.publishers import TopicPublisher

router = APIRouter(prefix="/admin/v1", tags=["admin"], dependencies=[Depends(strict_parameters)])
log = structlog.get_logger()


async def ticks_out(request: Request) -> TopicPublisher[ReconcileTick]:
    """The publisher of window ticks."""
    return request.app.state.ticks_out


Ticks = Annotated[TopicPublisher[ReconcileTick], Depends(ticks_out)]


class WindowSweep(BaseModel):
    """The window to sweep: one tenant's account at one gateway, from `since` to `until`."""

    model_config = ConfigDict(extra="forbid")
    tenant: TenantId
    gateway: Provider
    since: AwareDatetime
    until: AwareDatetime


@router.post("/reconcile-sweeps", status_code=202)
async def start_window_sweep(body: WindowSweep, _: Operator, engine: Engine, ticks: Ticks) -> JSONResponse:
    """Start a sweep of the window through the reconciler; 202 with the sweep to poll (`Location`)."""
    try:
        tick = window_sweeps.window_tick(body.tenant, body.gateway, body.since, body.until, "admin")
    except ValueError:
        problem = {"field": "since", "problem": "must be before until"}
        raise InvalidInput("the request is not valid", [problem]) from None
    async with engine.connect() as conn:
        if not await tenant_repo.tenant_exists(conn, body.tenant):
            raise UnknownTenant(body.tenant)
    await ticks.publish(tick)
    log.info(
        "reconcile.window.requested", tenant=tick.tenant, provider=tick.provider.value, tick_id=tick.tick_id
    )
    answer = {**_window(tick), **window_sweeps.report(tick.tick_id, None)}
    answer.pop("recovered_ids")
    location = f"/admin/v1/reconcile-sweeps/{tick.tick_id}"
    return JSONResponse(answer, status_code=202, headers={"Location": location, "Cache-Control": "no-store"})


@router.get("/reconcile-sweeps/{tick_id}")
async def window_sweep(tick_id: str, _: Operator, engine: Engine) -> JSONResponse:
    """A window sweep: `queued` until a reconciler takes it on, `running` with its counts so far, then
    how it ended, with each payment it recovered (id, reference, status now)."""
    if not window_sweeps.is_window_id(tick_id):
        raise NotFound(f"no window sweep {tick_id!r}")
    async with engine.connect() as conn:
        row = await window_sweeps.sweep_row(conn, tick_id)
        report = window_sweeps.report(tick_id, row)
        report["recovered"] = await window_sweeps.recovered(conn, report.pop("recovered_ids"))
    return JSONResponse(report, headers={"Cache-Control": "no-store"})


def _window(tick: ReconcileTick) -> dict[str, Any]:
    return {
        "tenant": tick.tenant,
        "gateway": tick.provider.value,
        "since": tick.since.isoformat() if tick.since else None,
        "until": tick.until.isoformat() if tick.until else None,
    }
