"""Tenants' webhook endpoints and their delivery log: the SQL the operator's API and CLI share."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from paysync_core.app_webhooks import (
    EndpointSpec,
    SigningSecret,
    new_secret,
    open_secrets,
    rotated,
    seal_secrets,
)
from paysync_core.crypto import CredentialsCipher
from paysync_core.db.app_webhook_tables import webhook_attempts, webhook_deliveries, webhook_endpoints
from paysync_core.db.tenants import tenant_exists
from paysync_core.errors import PaysyncError, UnknownTenant

#: What a listing shows of an endpoint (never its secrets).
_ENDPOINT_COLUMNS = [c for c in webhook_endpoints.c if c.name != "secrets_ciphertext"]
_DELIVERY_COLUMNS = [c for c in webhook_deliveries.c if c.name != "body"]


class UnknownEndpoint(PaysyncError):
    """No such endpoint for this tenant."""

    code = "unknown_endpoint"


class UnknownDelivery(PaysyncError):
    """No such delivery for this tenant."""

    code = "unknown_delivery"


def endpoint_view(row: Any) -> dict[str, Any]:
    """An endpoint as the API and CLI show it (JSON-ready; no secret)."""
    view = {c.name: getattr(row, c.name) for c in _ENDPOINT_COLUMNS}
    view["enabled"] = row.disabled_at is None
    return {k: v.isoformat() if isinstance(v, datetime) else v for k, v in view.items()}


async def create_endpoint(
    conn: AsyncConnection, tenant_id: str, spec: EndpointSpec, cipher: CredentialsCipher
) -> tuple[Any, str]:
    """Register an endpoint with a fresh signing secret; returns its row and the secret (show it once)."""
    if not await tenant_exists(conn, tenant_id):
        raise UnknownTenant(tenant_id)
    secret = new_secret()
    row = (
        await conn.execute(
            webhook_endpoints.insert()
            .values(
                tenant_id=tenant_id,
                url=spec.url,
                description=spec.description,
                domains=spec.domains,
                statuses=[s.value for s in spec.statuses],
                secrets_ciphertext=seal_secrets(cipher, [SigningSecret(secret=secret)]),
            )
            .returning(*_ENDPOINT_COLUMNS)
        )
    ).one()
    return row, secret


async def list_endpoints(conn: AsyncConnection, tenant_id: str) -> list[Any]:
    """The tenant's endpoints, oldest first; UnknownTenant if there is no such tenant."""
    if not await tenant_exists(conn, tenant_id):
        raise UnknownTenant(tenant_id)
    rows = await conn.execute(
        select(*_ENDPOINT_COLUMNS)
        .where(webhook_endpoints.c.tenant_id == tenant_id)
        .order_by(webhook_endpoints.c.id)
    )
    return list(rows)


async def rotate_secret(
    conn: AsyncConnection, tenant_id: str, endpoint_id: int, cipher: CredentialsCipher, overlap: timedelta
) -> tuple[str, datetime]:
    """A new current secret; the previous ones keep signing for `overlap`. Returns it and when they expire."""
    row = (
        await conn.execute(
            select(webhook_endpoints.c.secrets_ciphertext, func.now().label("now"))
            .where(_endpoint(tenant_id, endpoint_id))
            .with_for_update()
        )
    ).first()
    if row is None:
        raise UnknownEndpoint(f"tenant {tenant_id!r} has no endpoint {endpoint_id}")
    secret = new_secret()
    keys = rotated(open_secrets(cipher, row.secrets_ciphertext), secret, row.now, overlap)
    await conn.execute(
        update(webhook_endpoints)
        .where(webhook_endpoints.c.id == endpoint_id)
        .values(secrets_ciphertext=seal_secrets(cipher, keys), updated_at=func.now())
    )
    return secret, row.now + overlap


async def set_enabled(conn: AsyncConnection, tenant_id: str, endpoint_id: int, enabled: bool) -> Any:
    """Enable (clearing its failure record) or disable an endpoint by hand; returns its row."""
    values: dict[str, Any] = (
        {"disabled_at": None, "disabled_reason": None, "failing_since": None, "consecutive_failures": 0}
        if enabled
        else {"disabled_at": func.coalesce(webhook_endpoints.c.disabled_at, func.now())}
    )
    if not enabled:
        values["disabled_reason"] = func.coalesce(
            webhook_endpoints.c.disabled_reason, "disabled by an operator"
        )
    row = (
        await conn.execute(
            update(webhook_endpoints)
            .where(_endpoint(tenant_id, endpoint_id))
            .values(**values, updated_at=func.now())
            .returning(*_ENDPOINT_COLUMNS)
        )
    ).first()
    if row is None:
        raise UnknownEndpoint(f"tenant {tenant_id!r} has no endpoint {endpoint_id}")
    return row


async def list_deliveries(
    conn: AsyncConnection,
    tenant_id: str,
    *,
    endpoint_id: int | None = None,
    status: str | None = None,
    limit: int = 100,
) -> list[Any]:
    """The tenant's deliveries, newest first, with their attempt counts and last error (no body)."""
    query = select(*_DELIVERY_COLUMNS).where(webhook_deliveries.c.tenant_id == tenant_id)
    if endpoint_id is not None:
        query = query.where(webhook_deliveries.c.endpoint_id == endpoint_id)
    if status is not None:
        query = query.where(webhook_deliveries.c.status == status)
    rows = await conn.execute(query.order_by(webhook_deliveries.c.id.desc()).limit(limit))
    return list(rows)


async def delivery_attempts(conn: AsyncConnection, tenant_id: str, delivery_id: int) -> list[Any]:
    """The delivery log of one delivery: every attempt, oldest first."""
    await _delivery(conn, tenant_id, delivery_id)
    rows = await conn.execute(
        select(webhook_attempts)
        .where(webhook_attempts.c.delivery_id == delivery_id)
        .order_by(webhook_attempts.c.id)
    )
    return list(rows)


async def redeliver(conn: AsyncConnection, tenant_id: str, delivery_id: int) -> Any:
    """Send one delivery again (same `webhook-id`, a fresh retry schedule), whatever its state; its row."""
    await _delivery(conn, tenant_id, delivery_id)
    return (
        await conn.execute(
            update(webhook_deliveries)
            .where(webhook_deliveries.c.id == delivery_id)
            .values(**_AGAIN)
            .returning(*_DELIVERY_COLUMNS)
        )
    ).one()


async def redeliver_range(
    conn: AsyncConnection, tenant_id: str, endpoint_id: int, since: datetime, until: datetime
) -> int:
    """Send again every delivery to the endpoint created in [since, until); returns how many."""
    if (
        await conn.execute(select(webhook_endpoints.c.id).where(_endpoint(tenant_id, endpoint_id)))
    ).first() is None:
        raise UnknownEndpoint(f"tenant {tenant_id!r} has no endpoint {endpoint_id}")
    result = await conn.execute(
        update(webhook_deliveries)
        .where(
            webhook_deliveries.c.endpoint_id == endpoint_id,
            webhook_deliveries.c.created_at >= since,
            webhook_deliveries.c.created_at < until,
        )
        .values(**_AGAIN)
    )
    return result.rowcount


#: A delivery made due again: pending now with a fresh retry schedule, its lease dropped.
_AGAIN: dict[str, Any] = {
    "status": "pending",
    "attempts": 0,
    "next_attempt_at": func.now(),
    "lease_until": None,
    "leased_by": None,
    "updated_at": func.now(),
}


def _endpoint(tenant_id: str, endpoint_id: int) -> Any:
    return and_(webhook_endpoints.c.tenant_id == tenant_id, webhook_endpoints.c.id == endpoint_id)


async def _delivery(conn: AsyncConnection, tenant_id: str, delivery_id: int) -> None:
    found = await conn.execute(
        select(webhook_deliveries.c.id).where(
            webhook_deliveries.c.tenant_id == tenant_id, webhook_deliveries.c.id == delivery_id
        )
    )
    if found.first() is None:
        raise UnknownDelivery(f"tenant {tenant_id!r} has no delivery {delivery_id}")
