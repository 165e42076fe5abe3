"""A tenant's admin alerts on `/admin/v1`: who is told about sync issues, and the delivery log."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query

from paysync_api_gateway.admin import Cipher, Operator
from paysync_api_gateway.deps import Engine
from paysync_api_gateway.inputs import strict_parameters
from paysync_core.alerting import AlertConfig, DeliveryStatus, public_view
from paysync_core.db import alerts as alert_repo
from paysync_core.db import tenants as tenant_repo
from paysync_core.errors import UnknownTenant

router = APIRouter(prefix="/admin/v1", tags=["admin"], dependencies=[Depends(strict_parameters)])


@router.get("/tenants/{tenant_id}/alert-settings")
async def get_alert_settings(
    tenant_id: str, _: Operator, engine: Engine, cipher: Cipher
) -> dict[str, object]:
    """The tenant's alert settings; chat targets by host and fingerprint, never a URL or a secret."""
    async with engine.connect() as conn:
        if not await tenant_repo.tenant_exists(conn, tenant_id):
            raise UnknownTenant(tenant_id)
        config = await alert_repo.load_alert_settings(conn, tenant_id, cipher)
    return {**public_view(tenant_id, config or AlertConfig()), "configured": config is not None}


@router.put("/tenants/{tenant_id}/alert-settings")
async def put_alert_settings(
    tenant_id: str, body: AlertConfig, _: Operator, engine: Engine, cipher: Cipher
) -> dict[str, object]:
    """Replace the tenant's alert settings (recipients, chat webhooks, kinds, reminder interval)."""
    async with engine.begin() as conn:
        if not await tenant_repo.tenant_exists(conn, tenant_id):
            raise UnknownTenant(tenant_id)
        await alert_repo.save_alert_settings(conn, tenant_id, body, cipher)
    return {**public_view(tenant_id, body), "configured": True}


@router.get("/tenants/{tenant_id}/deliveries")
async def list_deliveries(
    tenant_id: str,
    _: Operator,
    engine: Engine,
    status: DeliveryStatus | None = None,
    kind: Annotated[str | None, Query(max_length=48)] = None,
    since: datetime | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, object]:
    """The delivery log, newest first: each alert message step, to whom, its status, tries and error."""
    if since is not None and since.tzinfo is None:
        since = since.replace(tzinfo=UTC)
    async with engine.connect() as conn:
        if not await tenant_repo.tenant_exists(conn, tenant_id):
            raise UnknownTenant(tenant_id)
        rows = await alert_repo.list_deliveries(
            conn, tenant_id, status=status, kind=kind, since=since, limit=limit
        )
    return {"tenant": tenant_id, "deliveries": [dict(row._mapping) for row in rows]}
