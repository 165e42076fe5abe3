"""The `/v1` API that front ends call (HTTP contract in docs/http-api.md)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Header, Query, Response
from fastapi.responses import JSONResponse

from paysync_api_gateway import service
from paysync_api_gateway.access import KeyAccess
from paysync_api_gateway.auth import current_key, current_tenant
from paysync_api_gateway.deps import Engine, Presses, Refresh, Settings
from paysync_api_gateway.inputs import require_storable_json, strict_parameters
from paysync_api_gateway.schemas import Payment, PaymentPage, RegisterPayment, SyncIssuePage
from paysync_core.contracts import ReconcileReply, ReconcileRequest
from paysync_core.contracts.alert import AlertKind
from paysync_core.contracts.common import Provider
from paysync_core.crypto import CredentialsCipher
from paysync_core.domain.status import UnifiedStatus
from paysync_core.providers.modes import Mode

router = APIRouter(prefix="/v1", dependencies=[Depends(strict_parameters)])
Tenant = Annotated[str, Depends(current_tenant)]
Key = Annotated[KeyAccess, Depends(current_key)]
NO_STORE = {"Cache-Control": "no-store"}
#: How many items a page holds, at most 500 (default: the `page_size` setting).
PageLimit = Annotated[int | None, Query(ge=1, le=500)]


@router.post("/payments", status_code=201, response_model=Payment)
async def register_payment(
    body: RegisterPayment, tenant: Tenant, engine: Engine, settings: Settings
) -> JSONResponse:
    """Register a payment to track; 201 when new, 200 when it was registered already."""
    bounds = {"max_depth": settings.max_metadata_depth, "max_bytes": settings.max_metadata_bytes}
    require_storable_json(body.metadata, "metadata", **bounds)
    keys = settings.common.credentials_keys.get_secret_value()
    cipher = CredentialsCipher(keys) if keys else None
    payment, created = await service.register_payment(engine, tenant, body, cipher)
    return JSONResponse(
        payment.model_dump(mode="json"), status_code=201 if created else 200, headers=NO_STORE
    )


@router.get("/payments/{payment_id}", response_model=Payment)
async def get_payment(
    payment_id: str, tenant: Tenant, engine: Engine, if_none_match: Annotated[str | None, Header()] = None
) -> Response:
    """A payment's current status; `If-None-Match` with its ETag gives 304 while unchanged."""
    payment = await service.get_payment(engine, tenant, payment_id)
    etag = service.etag_of(payment)
    headers = {**NO_STORE, "ETag": etag}
    if if_none_match and etag in {t.strip() for t in if_none_match.split(",")}:
        return Response(status_code=304, headers=headers)
    return JSONResponse(payment.model_dump(mode="json"), headers=headers)


@router.get("/payments", response_model=PaymentPage)
async def list_payments(
    tenant: Tenant,
    engine: Engine,
    settings: Settings,
    status: UnifiedStatus | None = None,
    provider: Provider | None = None,
    domain: str | None = None,
    entity_id: str | None = None,
    mode: Annotated[
        Mode | None, Query(description="test or live: the mode of the credentials it was registered under")
    ] = None,
    provider_ref: Annotated[str | None, Query(description="A gateway reference or alias")] = None,
    cursor: str | None = None,
    limit: PageLimit = None,
) -> JSONResponse:
    """The tenant's payments, newest first, filtered; page with `cursor`."""
    filters = {
        k: v.value if hasattr(v, "value") else v
        for k, v in {
            "status": status,
            "provider": provider,
            "domain": domain,
            "entity_id": entity_id,
            "mode": mode,
        }.items()
        if v
    }
    page = await service.list_payments(
        engine,
        tenant,
        filters,
        cursor,
        limit or settings.page_size,
        provider_ref=provider_ref,
    )
    return JSONResponse(page.model_dump(mode="json"), headers=NO_STORE)


@router.get("/domains/{domain}/{entity_id}/payments", response_model=PaymentPage)
async def entity_payments(
    domain: str,
    entity_id: str,
    tenant: Tenant,
    engine: Engine,
    settings: Settings,
    cursor: str | None = None,
    limit: PageLimit = None,
) -> JSONResponse:
    """The payments of one domain entity (e.g. a workshop job), newest first; page with `cursor`."""
    page = await service.list_payments(
        engine,
        tenant,
        {"domain": domain, "entity_id": entity_id},
        cursor,
        limit or settings.page_size,
    )
    return JSONResponse(page.model_dump(mode="json"), headers=NO_STORE)


@router.get("/sync-issues", response_model=SyncIssuePage)
async def sync_issues(
    tenant: Tenant,
    engine: Engine,
    settings: Settings,
    kind: AlertKind | None = None,
    domain: str | None = None,
    entity_id: str | None = None,
    cursor: str | None = None,
    limit: PageLimit = None,
) -> JSONResponse:
    """Open drift and stuck-payment issues, newest first, filtered; page with `cursor`."""
    filters = {k: str(v) for k, v in {"kind": kind, "domain": domain, "entity_id": entity_id}.items() if v}
    page = await service.open_sync_issues(engine, tenant, filters, cursor, limit or settings.page_size)
    return JSONResponse(page.model_dump(mode="json"), headers=NO_STORE)


@router.get("/stats")
async def stats(tenant: Tenant, engine: Engine) -> JSONResponse:
    """Totals by status and amounts by currency."""
    return JSONResponse(await service.stats(engine, tenant), headers=NO_STORE)


@router.post("/domains/{domain}/{entity_id}/payments/refresh")
async def refresh_entity(
    domain: str,
    entity_id: str,
    key: Key,
    engine: Engine,
    refresh: Refresh,
    presses: Presses,
    settings: Settings,
) -> JSONResponse:
    """ "Check payment status": ask the gateways about every payment of this entity, now.

    A press while this entity's check is in flight gets that check's answer; 429 past the key's rate.
    """

    async def check() -> tuple[ReconcileRequest, ReconcileReply | None]:
        ask = refresh.new_request(key.tenant, "entity", domain=domain, entity_id=entity_id)
        return ask, await service.check_now(engine, refresh, ask, settings.refresh_timeout_seconds)

    ask, reply = await presses.press(key.key_id, ("entity", key.tenant, domain, entity_id), check)
    if reply is None:
        return _still_checking(ask.request_id)
    return JSONResponse(_answer(ask, reply), headers=NO_STORE)


@router.post("/payments/refresh")
async def refresh_all(
    key: Key, engine: Engine, refresh: Refresh, presses: Presses, settings: Settings
) -> JSONResponse:
    """ "Check payments": ask the gateways about every unsettled payment of the tenant, now.

    A press while the tenant's bulk check is in flight gets that check's answer; 429 past the key's rate.
    """

    async def check() -> tuple[ReconcileRequest, ReconcileReply | None]:
        ask = refresh.new_request(key.tenant, "bulk")
        return ask, await service.check_now(engine, refresh, ask, settings.bulk_refresh_timeout_seconds)

    ask, reply = await presses.press(key.key_id, ("bulk", key.tenant), check)
    if reply is None:
        return _still_checking(ask.request_id)
    return JSONResponse(_answer(ask, reply), headers=NO_STORE)


@router.get("/reconcile-requests/{request_id}")
async def follow_up(request_id: str, tenant: Tenant, engine: Engine) -> JSONResponse:
    """The check a 202 answered for: `checking` until it completed, then the answer it would have given
    (or `failed` with the reason, once the reconciler gave up on it)."""
    ask, reply, failure = await service.reconcile_request(engine, tenant, request_id)
    if failure is not None:
        failed = {"request_id": request_id, "status": "failed", "reason": failure}
        return JSONResponse(failed, headers=NO_STORE)
    if reply is None:
        return JSONResponse({"request_id": request_id, "status": "checking"}, headers=NO_STORE)
    return JSONResponse({"status": "completed", **_answer(ask, reply)}, headers=NO_STORE)


def _answer(ask: ReconcileRequest, reply: ReconcileReply) -> dict[str, object]:
    """What a refresh answers: for one entity, each payment checked; in bulk, the counts."""
    counts = {
        "payments_checked": reply.payments_checked,
        "payments_updated": reply.payments_updated,
        "payments_found_paid": reply.payments_found_paid,
        "gateway_errors": reply.gateway_errors,
    }
    if ask.kind == "entity":
        return {
            "request_id": reply.request_id,
            "domain": ask.domain,
            "entity_id": ask.entity_id,
            **counts,
            "payments": [p.model_dump(mode="json") for p in reply.payments],
        }
    return {"request_id": reply.request_id, "entities_checked": reply.entities_checked, **counts}


def _still_checking(request_id: str) -> JSONResponse:
    return JSONResponse(
        {"request_id": request_id, "status": "checking", "follow_up": f"/v1/reconcile-requests/{request_id}"},
        status_code=202,
        headers={**NO_STORE, "Location": f"/v1/reconcile-requests/{request_id}"},
    )
