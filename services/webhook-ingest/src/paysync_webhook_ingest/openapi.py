"""webhook-ingest's OpenAPI document. Its routes are plain Starlette routes (the hot path skips
FastAPI's validation, see `endpoints.routes`), so FastAPI cannot describe them: this does, from the
same answers `errors.py` gives. `tools/openapi_docs.py` writes it to docs/openapi/webhook-ingest.json."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel, Field


class Problem(BaseModel):
    """An error answer: the one shape of every error."""

    error: str
    message: str
    problems: list[dict[str, str]] = Field(default_factory=list)


class WebhookAccepted(BaseModel):
    """The event is durable in Kafka (`paysync.webhooks.raw.v1`): the gateway may stop retrying."""

    received: Literal[True]
    ingest_id: str


class MpesaAccepted(BaseModel):
    """What Daraja expects back once the callback is durable."""

    ResultCode: Literal[0]
    ResultDesc: Literal["Accepted"]


_ERRORS = {
    400: "Malformed: not JSON, not what the gateway sends, or of the other test/live mode (`malformed`)",
    401: "Failed authenticity: bad signature, unknown callback token or address (`unauthenticated`)",
    404: "Unknown tenant, or a gateway the tenant has not configured (`not_found`, naming neither)",
    413: "Body over `PAYSYNC_WEBHOOK_INGEST_MAX_BODY_BYTES` (`payload_too_large`)",
    429: "Too many requests failing authenticity for this tenant; see `Retry-After`",
    500: "Failed unexpectedly; logged",
    503: "Not durable yet (the broker did not acknowledge in time, `not_durable`), or the tenant's "
    "credentials not cached while the database restarts or is unreachable (`database_unavailable`): "
    "retry; see `Retry-After`",
}
_ROUTES: dict[str, tuple[str, type[BaseModel], str]] = {
    "/webhooks/{tenant}/stripe": ("Stripe", WebhookAccepted, "StripeSignature"),
    "/webhooks/{tenant}/paystack": ("Paystack", WebhookAccepted, "PaystackSignature"),
    "/webhooks/{tenant}/mpesa/{callback_token}": ("M-Pesa", MpesaAccepted, ""),
}
_SECURITY = {
    "StripeSignature": {
        "type": "apiKey",
        "in": "header",
        "name": "Stripe-Signature",
        "description": "HMAC-SHA256 of `t.body` with the tenant's webhook secret (any, while rotating)",
    },
    "PaystackSignature": {
        "type": "apiKey",
        "in": "header",
        "name": "x-paystack-signature",
        "description": "HMAC-SHA512 of the body with the tenant's Paystack secret key",
    },
}


def _operation(path: str, gateway: str, accepted: type[BaseModel], scheme: str) -> dict[str, Any]:
    params = [{"name": "tenant", "in": "path", "required": True, "schema": {"type": "string"}}]
    if "{callback_token}" in path:
        what = "The tenant's secret callback token (M-Pesa callbacks are unsigned)"
        params.append(
            {
                "name": "callback_token",
                "in": "path",
                "required": True,
                "schema": {"type": "string"},
                "description": what,
            }
        )
    problem = {"application/json": {"schema": {"$ref": "#/components/schemas/Problem"}}}
    responses: dict[str, Any] = {
        "200": {
            "description": accepted.__doc__ or "",
            "content": {
                "application/json": {"schema": {"$ref": f"#/components/schemas/{accepted.__name__}"}}
            },
        }
    }
    responses |= {str(code): {"description": text, "content": problem} for code, text in _ERRORS.items()}
    return {
        "summary": f"A {gateway} webhook for this tenant",
        "operationId": f"{gateway.lower().replace('-', '')}_webhook",
        "parameters": params,
        "requestBody": {"required": True, "content": {"application/json": {"schema": {"type": "object"}}}},
        "responses": responses,
        "security": [{scheme: []}] if scheme else [],
    }


def openapi_document(app: FastAPI) -> dict[str, Any]:
    """The document: FastAPI's (health, metrics) plus the webhook routes, cached on the app."""
    if app.openapi_schema is None:
        doc = get_openapi(title=app.title, version=app.version, routes=app.routes)
        for path, (gateway, accepted, scheme) in _ROUTES.items():
            doc.setdefault("paths", {})[path] = {"post": _operation(path, gateway, accepted, scheme)}
        components = doc.setdefault("components", {})
        schemas = components.setdefault("schemas", {})
        for model in (Problem, WebhookAccepted, MpesaAccepted):
            schemas[model.__name__] = model.model_json_schema(ref_template="#/components/schemas/{model}")
        components["securitySchemes"] = _SECURITY
        app.openapi_schema = doc
    return app.openapi_schema
