"""Stripe's API, the subset paysync uses: Checkout Sessions, PaymentIntents, Invoices, Events.

Form-encoded bodies, `Authorization: Bearer sk_test_…` (or Basic with the key as user name),
JSON answers and `{"error": {"type", "code", "message", "param"}}` errors, as in Stripe's reference.
"""

from __future__ import annotations

import fnmatch
import json
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from paysync_gateway_sim.gateways.stripe_render import render_intent, render_invoice, render_session
from paysync_gateway_sim.gateways.stripe_requests import (
    expand_of,
    int_param,
    missing,
    read_form,
    read_params,
    stripe_account,
    stripe_error,
)
from paysync_gateway_sim.runtime import Simulator, get_sim
from paysync_gateway_sim.state import Account, JsonDict, StripeBook

router = APIRouter(tags=["stripe"])

EVENT_RETENTION = 30 * 24 * 3600  # the Events API guarantees 30 days
_IDEMPOTENCY_MISMATCH = (
    "Keys for idempotent requests can only be used with the same parameters they were first used with. "
    "Try using a key other than '{key}' if you meant to execute a different request."
)
_RETRIEVE_PARAMS = frozenset({"expand"})
_EVENT_LIST_PARAMS = frozenset(
    {
        "created",
        "delivery_success",
        "ending_before",
        "expand",
        "limit",
        "starting_after",
        "type",
        "types",
    }
)
_SESSION_PARAMS = frozenset(
    {
        "mode",
        "line_items",
        "success_url",
        "cancel_url",
        "return_url",
        "ui_mode",
        "metadata",
        "currency",
        "client_reference_id",
        "customer",
        "customer_email",
        "customer_creation",
        "expires_at",
        "expand",
        "payment_method_types",
        "payment_intent_data",
        "locale",
        "submit_type",
        "allow_promotion_codes",
        "billing_address_collection",
        "phone_number_collection",
        "automatic_tax",
        "payment_method_options",
        "custom_text",
        "invoice_creation",
        "shipping_address_collection",
        "tax_id_collection",
    }
)


@router.post("/v1/checkout/sessions")
async def create_checkout_session(
    request: Request, account: Account = Depends(stripe_account), sim: Simulator = Depends(get_sim)
) -> JSONResponse:
    """Create a Checkout Session in payment mode from `line_items[n][price_data]`."""
    params = await read_form(request)
    book = account.stripe
    idempotency_key = request.headers.get("idempotency-key")
    fingerprint = json.dumps(params, sort_keys=True)
    if idempotency_key and idempotency_key in book.idempotency:
        first_request, answer = book.idempotency[idempotency_key]
        if first_request != fingerprint:
            raise stripe_error(
                400, _IDEMPOTENCY_MISMATCH.format(key=idempotency_key), type_="idempotency_error"
            )
        return JSONResponse(answer, headers={"Idempotent-Replayed": "true"})
    unknown = sorted(set(params) - _SESSION_PARAMS)
    if unknown:
        raise stripe_error(400, f"Received unknown parameter: {unknown[0]}", param=unknown[0])
    if params.get("mode") != "payment":
        raise stripe_error(
            400,
            "Missing required param: mode."
            if "mode" not in params
            else "The simulator supports mode=payment only.",
            param="mode",
        )
    amount, currency = _line_items(params.get("line_items"))
    now = account.clock.timestamp()
    expires_at = int_param(params["expires_at"], "expires_at") if "expires_at" in params else None
    if expires_at is not None and not now + 1800 <= expires_at <= now + 86400:
        raise stripe_error(
            400,
            "The `expires_at` timestamp must be between 30 minutes and 24 hours from "
            "Checkout Session creation.",
            param="expires_at",
        )
    intent_data = params.get("payment_intent_data") or {}
    session = sim.stripe.new_session(
        account,
        amount=amount,
        currency=currency,
        metadata=_metadata(params.get("metadata"), "metadata"),
        client_reference_id=params.get("client_reference_id"),
        success_url=params.get("success_url"),
        cancel_url=params.get("cancel_url"),
        expires_at=expires_at,
        intent_metadata=_metadata(intent_data.get("metadata"), "payment_intent_data[metadata]"),
    )
    obj = render_session(book, session, expand_of(params))
    if idempotency_key:
        book.idempotency[idempotency_key] = (fingerprint, obj)
    return JSONResponse(obj)


def _line_items(items: Any) -> tuple[int, str]:
    if not isinstance(items, list) or not items:
        raise stripe_error(400, "Missing required param: line_items.", param="line_items")
    total, currencies = 0, set()
    for i, item in enumerate(items):
        where = f"line_items[{i}]"
        if not isinstance(item, dict):
            raise stripe_error(400, f"Invalid object: {where}", param=where)
        if "price" in item:
            raise stripe_error(
                404, f"No such price: '{item['price']}'", code="resource_missing", param=f"{where}[price]"
            )
        price = item.get("price_data")
        if not isinstance(price, dict) or "currency" not in price or "unit_amount" not in price:
            raise stripe_error(
                400, f"Missing required param: {where}[price_data].", param=f"{where}[price_data]"
            )
        quantity = int_param(item.get("quantity", "1"), f"{where}[quantity]")
        unit = int_param(price["unit_amount"], f"{where}[price_data][unit_amount]")
        if quantity < 1 or unit < 0:
            raise stripe_error(400, f"Invalid {where}: amounts must be positive", param=where)
        total += unit * quantity
        currencies.add(str(price["currency"]).lower())
    if len(currencies) > 1:
        raise stripe_error(400, "All line items must use the same currency.", param="line_items")
    return total, currencies.pop()


def _metadata(value: Any, param: str) -> dict[str, str]:
    if value in (None, ""):
        return {}
    if not isinstance(value, dict) or len(value) > 50:
        raise stripe_error(400, f"Invalid hash: {param}", param=param)
    return {str(k): str(v) for k, v in value.items()}


@router.get("/v1/checkout/sessions/{session_id}")
async def retrieve_checkout_session(
    session_id: str,
    request: Request,
    account: Account = Depends(stripe_account),
    sim: Simulator = Depends(get_sim),
) -> JsonDict:
    """Retrieve a Checkout Session; `expand[]=payment_intent` inlines its PaymentIntent."""
    session = account.stripe.sessions.get(session_id)
    if session is None:
        raise missing("checkout.session", session_id, "session")
    params = read_params(request, _RETRIEVE_PARAMS)
    return render_session(account.stripe, session, expand_of(params))


@router.post("/v1/checkout/sessions/{session_id}/expire")
async def expire_checkout_session(
    session_id: str, account: Account = Depends(stripe_account), sim: Simulator = Depends(get_sim)
) -> JsonDict:
    """Expire an open Checkout Session; Stripe sends `checkout.session.expired`."""
    session = account.stripe.sessions.get(session_id)
    if session is None:
        raise missing("checkout.session", session_id, "session")
    if session.status != "open":
        raise stripe_error(400, 'Only Checkout Sessions with a status in ["open"] can be expired.')
    sim.send(sim.stripe.expire_session(account, session))
    return render_session(account.stripe, session)


@router.get("/v1/payment_intents/{intent_id}")
async def retrieve_payment_intent(
    intent_id: str,
    request: Request,
    account: Account = Depends(stripe_account),
    sim: Simulator = Depends(get_sim),
) -> JsonDict:
    """Retrieve a PaymentIntent; `expand[]=latest_charge` inlines its charge."""
    intent = account.stripe.intents.get(intent_id)
    if intent is None:
        raise missing("payment_intent", intent_id, "intent")
    params = read_params(request, _RETRIEVE_PARAMS)
    return render_intent(account.stripe, intent, expand_of(params))


@router.get("/v1/invoices/{invoice_id}")
async def retrieve_invoice(
    invoice_id: str,
    request: Request,
    account: Account = Depends(stripe_account),
    sim: Simulator = Depends(get_sim),
) -> JsonDict:
    """Retrieve an Invoice; `payments` (its PaymentIntent) only with `expand[]=payments`, as Stripe."""
    invoice = account.stripe.invoices.get(invoice_id)
    if invoice is None:
        raise missing("invoice", invoice_id, "invoice")
    params = read_params(request, _RETRIEVE_PARAMS)
    return render_invoice(invoice, expand_of(params))


@router.get("/v1/events/{event_id}")
async def retrieve_event(
    event_id: str, request: Request, account: Account = Depends(stripe_account)
) -> JsonDict:
    """Retrieve an Event of the last 30 days."""
    read_params(request, _RETRIEVE_PARAMS)
    position = account.stripe.event_index.get(event_id)
    event = account.stripe.events[position] if position is not None else None
    if event is None or event["created"] < account.clock.timestamp() - EVENT_RETENTION:
        raise missing("event", event_id, "id")
    return event


@router.get("/v1/events")
async def list_events(request: Request, account: Account = Depends(stripe_account)) -> JsonDict:
    """List Events newest first: `type` (with `*`), `types[]`, `created[gte|gt|lte|lt]`, cursors."""
    params = read_params(request, _EVENT_LIST_PARAMS)
    return _event_page(account.stripe, params, account.clock.timestamp())


def _event_page(book: StripeBook, params: dict[str, Any], now: int) -> JsonDict:
    limit = int_param(params.get("limit", 10), "limit")
    if not 1 <= limit <= 100:
        raise stripe_error(
            400, "This value must be greater than or equal to 1 and less than or equal to 100.", param="limit"
        )
    types = params.get("types")
    if types is not None and "type" in params:
        raise stripe_error(400, "You may only specify one of these parameters: type, types.", param="types")
    if types is not None and (not isinstance(types, list) or len(types) > 20):
        raise stripe_error(400, "`types` must be an array of at most 20 event types.", param="types")
    patterns = types or ([params["type"]] if "type" in params else None)
    bounds = _created_bounds(params.get("created"))
    floor = now - EVENT_RETENTION

    def wanted(event: JsonDict) -> bool:
        created = event["created"]
        return (
            created >= floor
            and all(check(created) for check in bounds)
            and (patterns is None or any(fnmatch.fnmatchcase(event["type"], p) for p in patterns))
        )

    events = book.events
    if "starting_after" in params and "ending_before" in params:
        raise stripe_error(
            400, "You may only specify one of these parameters: ending_before, starting_after."
        )
    if "ending_before" in params:
        cursor = _cursor(book, params["ending_before"], "ending_before")
        newer = [e for e in events[cursor + 1 :] if wanted(e)]  # oldest first, nearest the cursor first
        return _page(list(reversed(newer[:limit])), len(newer) > limit)
    start = len(events)
    if "starting_after" in params:
        start = _cursor(book, params["starting_after"], "starting_after")
    page: list[JsonDict] = []
    for event in reversed(events[:start]):
        if wanted(event):
            page.append(event)
            if len(page) > limit:
                break
    return _page(page[:limit], len(page) > limit)


def _cursor(book: StripeBook, event_id: Any, param: str) -> int:
    position = book.event_index.get(str(event_id))
    if position is None:
        raise stripe_error(400, f"No such event: '{event_id}'", code="resource_missing", param=param)
    return position


def _created_bounds(created: Any) -> list[Any]:
    if created is None:
        return []
    if not isinstance(created, dict):
        exact = int_param(created, "created")
        return [lambda c: c == exact]
    checks = {
        "gt": lambda c, v: c > v,
        "gte": lambda c, v: c >= v,
        "lt": lambda c, v: c < v,
        "lte": lambda c, v: c <= v,
    }
    bounds = []
    for op, value in created.items():
        if op not in checks:
            raise stripe_error(400, f"Received unknown parameter: created[{op}]", param=f"created[{op}]")
        bound = int_param(value, f"created[{op}]")
        bounds.append(lambda c, test=checks[op], v=bound: test(c, v))
    return bounds


def _page(data: list[JsonDict], has_more: bool) -> JsonDict:
    return {"object": "list", "data": data, "has_more": has_more, "url": "/v1/events"}


@router.api_route("/v1/{path:path}", methods=["GET", "POST", "DELETE"], include_in_schema=False)
async def unrecognized(path: str, request: Request) -> None:
    """Stripe's answer to an endpoint the simulator does not implement."""
    raise stripe_error(
        404,
        f"Unrecognized request URL ({request.method}: /v1/{path}). Please see "
        "https://stripe.com/docs or we can help at https://support.stripe.com/.",
    )
