"""The `/v1` API that front ends call (HTTP contract in docs/http-api.md)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import JSONResponse

from paysync_api_gateway import service
from paysync_api_gateway.access import KeyAccess
from paysync_api_gateway.answers import BulkChecked, CheckState, EntityChecked, Stats, StillChecking
from paysync_api_gateway.auth import current_key, current_tenant, request_key
from paysync_api_gateway.conditional import NO_STORE, Conditional, ConditionalRead, no_store_json
from paysync_api_gateway.contract import errors
from paysync_api_gateway.deps import Engine, Modes, Pool, Presses, Refresh, Settings, Wakeups
from paysync_api_gateway.hot import HotRoute, hot_route
from paysync_api_gateway.inputs import require_storable_json, strict_parameters
from paysync_api_gateway.lookups import Lookup, PhoneKey, hashed_phone, phone_key, refuse_phones_in_metadata
from paysync_api_gateway.schemas import Payment, PaymentPage, RegisterPayment
from paysync_core.contracts import ReconcileReply, ReconcileRequest
from paysync_core.contracts.common import Provider
from paysync_core.domain.status import UnifiedStatus
from paysync_core.providers.modes import Mode

router = APIRouter(prefix="/v1", dependencies=[Depends(strict_parameters)])
Tenant = Annotated[str, Depends(current_tenant)]
Key = Annotated[KeyAccess, Depends(current_key)]
#: How many items a page holds, at most 500 (default: the `page_size` setting).
PageLimit = Annotated[int | None, Query(ge=1, le=500)]


@router.post(
    "/payments",
    status_code=201,
    response_model=Payment,
    responses=errors(
        409,
        503,
        answers={200: {"model": Payment, "description": "Registered already, the same"}},
        e503="`phone` given while phone lookups are off (`phone_lookup_disabled`)",
    ),
)
async def register_payment(
    body: RegisterPayment,
    tenant: Tenant,
    engine: Engine,
    pool: Pool,
    settings: Settings,
    phone_key: PhoneKey,
    modes: Modes,
    wakeups: Wakeups,
) -> Response:
    """Register a payment to track; 201 when new, 200 when it was registered already."""
    bounds = {"max_depth": settings.max_metadata_depth, "max_bytes": settings.max_metadata_bytes}
    require_storable_json(body.metadata, "metadata", **bounds)
    refuse_phones_in_metadata(body.metadata)
    phone_hash = hashed_phone(phone_key, tenant, body.phone, "phone") if body.phone else None
    payment, created = await service.register_payment(engine, pool, tenant, body, modes, wakeups, phone_hash)
    return no_store_json(payment, 201 if created else 200)


@router.get("/payments/{payment_id}", response_model=Payment)
async def get_payment(
    payment_id: str, tenant: Tenant, engine: Engine, pool: Pool, read: Conditional
) -> Response:
    """A payment's current status; `If-None-Match` with its ETag gives 304 while unchanged."""
    return read.answer(await service.get_payment(engine, pool, tenant, payment_id))


@router.get(
    "/payments",
    response_model=PaymentPage,
    responses=errors(503, e503="`phone` given while phone lookups are off (`phone_lookup_disabled`)"),
)
async def list_payments(
    tenant: Tenant,
    engine: Engine,
    settings: Settings,
    read: Conditional,
    lookup: Lookup,
    phone_key: PhoneKey,
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
) -> Response:
    """The tenant's payments, newest first, filtered (by status, time range, reference, entity, payer
    phone…); page with `cursor`."""
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
        times=lookup.times,
        phone_hash=lookup.phone_hash(phone_key, tenant),
    )
    return read.answer(page)


@router.get("/domains/{domain}/{entity_id}/payments", response_model=PaymentPage)
async def entity_payments(
    domain: str,
    entity_id: str,
    tenant: Tenant,
    engine: Engine,
    settings: Settings,
    read: Conditional,
    cursor: str | None = None,
    limit: PageLimit = None,
) -> Response:
    """The payments of one domain entity (e.g. a workshop job), newest first; page with `cursor`."""
    page = await service.list_payments(
        engine,
        tenant,
        {"domain": domain, "entity_id": entity_id},
        cursor,
        limit or settings.page_size,
    )
    return read.answer(page)


@router.get("/stats", response_model=Stats)
async def stats(tenant: Tenant, engine: Engine, read: Conditional) -> Response:
    """Totals by status and amounts by currency."""
    return read.answer(await service.stats(engine, tenant))


@router.post(
    "/domains/{domain}/{entity_id}/payments/refresh",
    response_model=EntityChecked,
    responses=errors(
        503, answers={202: {"model": StillChecking}}, e503="The check could not be sent (`not_sent`)"
    ),
)
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


@router.post(
    "/payments/refresh",
    response_model=BulkChecked,
    responses=errors(
        503, answers={202: {"model": StillChecking}}, e503="The check could not be sent (`not_sent`)"
    ),
)
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


@router.get("/reconcile-requests/{request_id}", response_model=CheckState)
async def follow_up(request_id: str, tenant: Tenant, engine: Engine, read: Conditional) -> Response:
    """The check a 202 answered for: `checking` until it completed, then the answer it would have given
    (or `failed` with the reason, once the reconciler gave up on it)."""
    ask, reply, failure = await service.reconcile_request(engine, tenant, request_id)
    if failure is not None:
        return read.answer({"request_id": request_id, "status": "failed", "reason": failure})
    if reply is None:
        return read.answer({"request_id": request_id, "status": "checking"})
    return read.answer({"status": "completed", **_answer(ask, reply)})


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


async def _resolve_get_payment(request: Request, _: None) -> dict[str, Any]:
    """`get_payment`'s arguments, resolved by hand in FastAPI's order (`hot.py`)."""
    await strict_parameters(request)
    key = await request_key(request)
    state = request.app.state
    return {
        "payment_id": request.path_params["payment_id"],
        "tenant": key.tenant,
        "engine": state.engine,
        "pool": state.driver_pool,
        "read": ConditionalRead(request.headers.get("if-none-match")),
    }


async def _resolve_register_payment(request: Request, body: RegisterPayment) -> dict[str, Any]:
    """`register_payment`'s arguments, resolved by hand in FastAPI's order (`hot.py`; the body as read)."""
    await strict_parameters(request)
    key = await request_key(request)
    state = request.app.state
    return {
        "body": body,
        "tenant": key.tenant,
        "engine": state.engine,
        "pool": state.driver_pool,
        "settings": state.settings,
        "phone_key": await phone_key(state.settings),
        "modes": state.credential_modes,
        "wakeups": state.matcher_wakeups,
    }


#: The routes front ends call in a loop, answered ahead of the router (`hot.py`).
HOT_ROUTES: tuple[HotRoute, ...] = (
    hot_route(router, get_payment, _resolve_get_payment),
    hot_route(router, register_payment, _resolve_register_payment, RegisterPayment),
)
