"""How Stripe's API takes a request: the secret key, form and query parameters, and its error shape.

The endpoints in `stripe_api.py` use these so every answer is shaped as in Stripe's reference.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any
from urllib.parse import parse_qsl

from fastapi import Depends, Request

from paysync_core.contracts.common import Provider
from paysync_gateway_sim import faults, forms
from paysync_gateway_sim.errors import GatewayError
from paysync_gateway_sim.runtime import Simulator, get_sim
from paysync_gateway_sim.state import Account, JsonDict

_NO_KEY = (
    "You did not provide an API key. You need to provide your API key in the Authorization header, "
    "using Bearer auth (e.g. 'Authorization: Bearer YOUR_SECRET_KEY'). "
    "See https://stripe.com/docs/api#authentication for details, or we can help at "
    "https://support.stripe.com/."
)
_RATE_LIMITED = (
    "Request rate limit exceeded. You can learn more about rate limits here "
    "https://stripe.com/docs/rate-limits."
)


def stripe_error(
    status: int,
    message: str,
    *,
    type_: str = "invalid_request_error",
    code: str | None = None,
    param: str | None = None,
    headers: dict[str, str] | None = None,
) -> GatewayError:
    """An error in Stripe's shape."""
    error: JsonDict = {"type": type_, "message": message}
    if code:
        error["code"] = code
        error["doc_url"] = f"https://stripe.com/docs/error-codes/{code.replace('_', '-')}"
    if param:
        error["param"] = param
    return GatewayError(status, {"error": error}, headers)


def _api_key(authorization: str | None) -> str | None:
    scheme, _, value = (authorization or "").partition(" ")
    if scheme.lower() == "bearer":
        return value.strip() or None
    if scheme.lower() == "basic":
        try:
            return base64.b64decode(value.strip()).decode().partition(":")[0] or None
        except (binascii.Error, UnicodeDecodeError):
            return None
    return None


def _masked(key: str) -> str:
    prefix, _, rest = key.rpartition("_")
    return f"{prefix}_{'*' * max(len(rest) - 4, 0)}{rest[-4:]}" if prefix else f"{'*' * 8}{key[-4:]}"


async def stripe_account(request: Request, sim: Simulator = Depends(get_sim)) -> Account:
    """The account whose secret key authorizes the request, after its rate limit and faults."""
    key = _api_key(request.headers.get("authorization"))
    account = sim.store.by_secret_key(Provider.STRIPE, key) if key else None
    if account is None:
        sim.store.unauthenticated[Provider.STRIPE.value] += 1
        raise stripe_error(401, f"Invalid API Key provided: {_masked(key)}" if key else _NO_KEY)
    verdict = faults.check(account, faults.operation_of(request))
    if verdict in (faults.Verdict.OVER_LIMIT, faults.Verdict.RATE_LIMIT, faults.Verdict.QUOTA):
        # Refused before anything happened, so Stripe's libraries may safely retry.
        raise stripe_error(429, _RATE_LIMITED, code="rate_limit", headers={"Stripe-Should-Retry": "true"})
    if verdict is faults.Verdict.SERVER_ERROR:
        # Stripe says on its error answers whether a retry is safe; nothing happened here, so it is.
        raise stripe_error(
            500, "An unknown error occurred", type_="api_error", headers={"Stripe-Should-Retry": "true"}
        )
    return account


def read_params(request: Request, allowed: frozenset[str]) -> dict[str, Any]:
    """A read's query parameters; one Stripe does not define is a 400, as at Stripe."""
    params = decode_params(request.query_params.multi_items())
    unknown = sorted(set(params) - allowed)
    if unknown:
        raise stripe_error(400, f"Received unknown parameter: {unknown[0]}", param=unknown[0])
    return params


def decode_params(items: list[tuple[str, str]]) -> dict[str, Any]:
    """Stripe's bracketed form keys (`metadata[k]`, `expand[]`) as nested values; a bad one is a 400."""
    try:
        return forms.decode(items)
    except forms.FormError as exc:
        raise stripe_error(400, f"Invalid array or hash: {exc.key}", param=exc.key) from exc


async def read_form(request: Request) -> dict[str, Any]:
    """A write's form-encoded body as parameters; any other content type is a 400, as at Stripe."""
    body = await request.body()
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if body and content_type != "application/x-www-form-urlencoded":
        raise stripe_error(
            400,
            f"Invalid request: unsupported Content-Type {content_type or 'none'}. "
            "Stripe accepts application/x-www-form-urlencoded request bodies.",
        )
    return decode_params(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))


def int_param(value: Any, param: str) -> int:
    """An integer parameter; anything else is Stripe's `Invalid integer` 400."""
    try:
        return int(value)
    except (TypeError, ValueError):
        raise stripe_error(400, f"Invalid integer: {value}", param=param) from None


def expand_of(params: dict[str, Any]) -> list[str]:
    """The `expand[]` paths asked for, as a list."""
    expand = params.get("expand", [])
    return expand if isinstance(expand, list) else [expand]


def missing(kind: str, object_id: str, param: str) -> GatewayError:
    """Stripe's 404 `resource_missing` for an object id it does not know."""
    return stripe_error(404, f"No such {kind}: '{object_id}'", code="resource_missing", param=param)
