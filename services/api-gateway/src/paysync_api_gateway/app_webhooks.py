"""`/admin/v1/tenants/{id}/endpoints…`: tenants' webhook endpoints, their delivery log, redelivery."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from paysync_api_gateway.admin import Cipher, Operator
from paysync_api_gateway.deps import Engine
from paysync_api_gateway.inputs import strict_parameters
from paysync_core.app_webhooks import EndpointSpec
from paysync_core.db import app_webhooks as repo

router = APIRouter(
    prefix="/admin/v1/tenants/{tenant_id}", tags=["admin"], dependencies=[Depends(strict_parameters)]
)
#: The longest a rotated-out secret may keep signing.
MAX_OVERLAP_SECONDS = 7 * 24 * 3600


class Rotation(BaseModel):
    """How long the previous secrets keep signing beside the new one (0: stop now)."""

    model_config = ConfigDict(extra="forbid")
    keep_old_for_seconds: int = Field(default=24 * 3600, ge=0, le=MAX_OVERLAP_SECONDS)


class Redelivery(BaseModel):
    """Every delivery to the endpoint taken in within [since, until) goes out again."""

    model_config = ConfigDict(extra="forbid")
    since: AwareDatetime
    until: AwareDatetime | None = Field(default=None, description="Default: now")


@router.post("/endpoints", status_code=201)
async def add_endpoint(
    tenant_id: str, body: EndpointSpec, _: Operator, engine: Engine, cipher: Cipher
) -> dict[str, Any]:
    """Register an endpoint (https; http only for localhost); the answer holds its secret, shown once."""
    async with engine.begin() as conn:
        row, secret = await repo.create_endpoint(conn, tenant_id, body, cipher)
    return repo.endpoint_view(row) | {"secret": secret}


@router.get("/endpoints")
async def list_endpoints(tenant_id: str, _: Operator, engine: Engine) -> dict[str, Any]:
    """The tenant's endpoints: URL, filters, enabled or why not, failures; never a secret."""
    async with engine.connect() as conn:
        rows = await repo.list_endpoints(conn, tenant_id)
    return {"id": tenant_id, "endpoints": [repo.endpoint_view(r) for r in rows]}


@router.post("/endpoints/{endpoint_id}/rotate-secret")
async def rotate_secret(
    tenant_id: str,
    endpoint_id: int,
    _: Operator,
    engine: Engine,
    cipher: Cipher,
    body: Rotation | None = None,
) -> dict[str, Any]:
    """A new signing secret (shown once); the previous ones sign beside it for `keep_old_for_seconds`."""
    overlap = timedelta(seconds=(body or Rotation()).keep_old_for_seconds)
    async with engine.begin() as conn:
        secret, until = await repo.rotate_secret(conn, tenant_id, endpoint_id, cipher, overlap)
    return {"id": endpoint_id, "secret": secret, "previous_expire_at": until.isoformat()}


@router.post("/endpoints/{endpoint_id}/disable")
async def disable_endpoint(tenant_id: str, endpoint_id: int, _: Operator, engine: Engine) -> dict[str, Any]:
    """Stop sending to the endpoint; its deliveries wait until it is enabled."""
    async with engine.begin() as conn:
        return repo.endpoint_view(await repo.set_enabled(conn, tenant_id, endpoint_id, False))


@router.post("/endpoints/{endpoint_id}/enable")
async def enable_endpoint(tenant_id: str, endpoint_id: int, _: Operator, engine: Engine) -> dict[str, Any]:
    """Send to the endpoint again (its failure record cleared); what waited goes out in order."""
    async with engine.begin() as conn:
        return repo.endpoint_view(await repo.set_enabled(conn, tenant_id, endpoint_id, True))


@router.get("/endpoint-deliveries")
async def list_deliveries(
    tenant_id: str,
    _: Operator,
    engine: Engine,
    endpoint_id: int | None = None,
    status: Literal["pending", "delivered", "failed"] | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, Any]:
    """The tenant's deliveries to its endpoints, newest first: event, state, attempts, last error."""
    async with engine.connect() as conn:
        rows = await repo.list_deliveries(
            conn, tenant_id, endpoint_id=endpoint_id, status=status, limit=limit
        )
    return {"id": tenant_id, "deliveries": [_json(r) for r in rows]}


@router.get("/endpoint-deliveries/{delivery_id}/attempts")
async def delivery_attempts(tenant_id: str, delivery_id: int, _: Operator, engine: Engine) -> dict[str, Any]:
    """The delivery log of one delivery: every attempt's time, status code, duration and error."""
    async with engine.connect() as conn:
        rows = await repo.delivery_attempts(conn, tenant_id, delivery_id)
    return {"id": delivery_id, "attempts": [_json(r) for r in rows]}


@router.post("/endpoint-deliveries/{delivery_id}/redeliver", status_code=202)
async def redeliver(tenant_id: str, delivery_id: int, _: Operator, engine: Engine) -> dict[str, Any]:
    """Send one delivery again (same `webhook-id`, fresh retries)."""
    async with engine.begin() as conn:
        return {"redelivered": 1, "delivery": _json(await repo.redeliver(conn, tenant_id, delivery_id))}


@router.post("/endpoints/{endpoint_id}/redeliver", status_code=202)
async def redeliver_range(
    tenant_id: str, endpoint_id: int, body: Redelivery, _: Operator, engine: Engine
) -> dict[str, Any]:
    """Send again every delivery to the endpoint taken in within [since, until)."""
    until = body.until or datetime.now(UTC)
    async with engine.begin() as conn:
        count = await repo.redeliver_range(conn, tenant_id, endpoint_id, body.since, until)
    return {"redelivered": count, "endpoint_id": endpoint_id}


def _json(row: Any) -> dict[str, Any]:
    return {k: v.isoformat() if isinstance(v, datetime) else v for k, v in row._mapping.items()}
