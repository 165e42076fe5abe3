"""The one place api-gateway's errors become HTTP answers, in one shape: `error`, `message`, `problems`."""

from __future__ import annotations

import math
from collections.abc import Mapping
from http import HTTPStatus

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError
from starlette.exceptions import HTTPException

from paysync_api_gateway.access import Forbidden
from paysync_api_gateway.auth import TooManyFailedKeys, Unauthenticated
from paysync_api_gateway.checkout_gateways import GatewayDeclined
from paysync_api_gateway.cors import OriginNotAllowed
from paysync_api_gateway.inputs import InvalidInput, UnknownParameter
from paysync_api_gateway.presses import TooManyRefreshes
from paysync_api_gateway.refresh import RequestNotSent
from paysync_api_gateway.service import BadCursor, Conflict, NotFound
from paysync_api_gateway.stream import StreamUnavailable, TooManyStreams
from paysync_api_gateway.stream_tokens import StreamTokensOff
from paysync_core.crypto import CredentialsKeyError
from paysync_core.db.app_webhooks import UnknownDelivery, UnknownEndpoint
from paysync_core.dead_letters import is_outage
from paysync_core.errors import GatewayError, PaysyncError, ProviderNotConfigured, RateLimited, UnknownTenant
from paysync_core.phones import PhoneLookupOff
from paysync_core.providers.clients import GatewayBusy, GatewayUnreachable

log = structlog.get_logger()

_STATUS = {
    Unauthenticated: 401,
    TooManyFailedKeys: 429,
    Forbidden: 403,
    OriginNotAllowed: 403,
    TooManyRefreshes: 429,
    NotFound: 404,
    UnknownTenant: 404,
    UnknownEndpoint: 404,
    UnknownDelivery: 404,
    Conflict: 409,
    BadCursor: 400,
    UnknownParameter: 400,
    InvalidInput: 422,
    CredentialsKeyError: 500,
    RequestNotSent: 503,
    TooManyStreams: 429,
    StreamUnavailable: 503,
    StreamTokensOff: 503,
    # Starting payments at gateways (checkout.py): the gateway's own words, never a secret.
    ProviderNotConfigured: 422,
    GatewayDeclined: 402,
    RateLimited: 503,
    GatewayBusy: 503,
    GatewayUnreachable: 503,
    GatewayError: 502,
    PhoneLookupOff: 503,
}
#: How to authenticate; when to try again.
_HEADERS = {401: {"WWW-Authenticate": "Bearer"}, 429: {"Retry-After": "5"}, 503: {"Retry-After": "5"}}
#: Error codes of Starlette's own answers (unknown route, wrong method, unreadable or oversized body).
_HTTP_CODES = {400: "bad_request", 404: "not_found", 405: "method_not_allowed", 413: "payload_too_large"}


def problem(
    status: int,
    error: str,
    message: str,
    problems: list[dict[str, str]] | None = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    """An error answer in the API's one shape."""
    body = {"error": error, "message": message, "problems": problems or []}
    return JSONResponse(body, status_code=status, headers=headers)


def install_error_handlers(app: FastAPI) -> None:
    """Map every error (ours, validation, Starlette's HTTP errors, crashes) to the one error shape."""

    @app.exception_handler(PaysyncError)
    async def paysync_error(_: Request, exc: PaysyncError) -> JSONResponse:
        status = next((code for kind, code in _STATUS.items() if isinstance(exc, kind)), 500)
        headers = _HEADERS.get(status)
        if isinstance(exc, TooManyFailedKeys | TooManyRefreshes):
            headers = {"Retry-After": str(max(1, math.ceil(exc.retry_after)))}
        return problem(status, exc.code, str(exc), getattr(exc, "problems", None), headers)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        unreadable = next((e for e in errors if e["type"] == "json_invalid"), None)
        if unreadable is not None:
            reason = unreadable.get("ctx", {}).get("error", "invalid JSON")
            where = f"{reason} at character {unreadable['loc'][-1]}"
            problems = [{"field": "body", "problem": where}]
            return problem(400, "malformed_json", "the body is not valid JSON", problems)
        problems = [{"field": ".".join(str(p) for p in e["loc"][1:]), "problem": e["msg"]} for e in errors]
        return problem(422, "invalid_request", "the request is not valid", problems)

    @app.exception_handler(HTTPException)
    async def http_error(_: Request, exc: HTTPException) -> JSONResponse:
        phrase = HTTPStatus(exc.status_code).phrase.lower().replace(" ", "_")
        code = _HTTP_CODES.get(exc.status_code, phrase)
        return problem(exc.status_code, code, str(exc.detail), headers=exc.headers)

    @app.exception_handler(DBAPIError)
    @app.exception_handler(OSError)
    async def database_error(request: Request, exc: Exception) -> JSONResponse:
        if not is_outage(exc):
            return await crash(request, exc)
        # The server dropped the connection (the pool has let go of it and of its peers), refused a
        # new one while it restarts or fails over, or could not be reached at all (asyncpg's OSError,
        # which SQLAlchemy passes on unwrapped; the broker's and the gateways' clients wrap theirs):
        # the same request made again runs on a new connection.
        error = type(getattr(exc, "orig", exc)).__name__
        log.warning("request.database_unavailable", path=request.url.path, error=error)
        message = "the database connection was lost; try again"
        return problem(503, "database_unavailable", message, headers=_HEADERS[503])

    @app.exception_handler(Exception)
    async def crash(request: Request, exc: Exception) -> JSONResponse:
        log.error("request.crashed", path=request.url.path, error=type(exc).__name__, exc_info=exc)
        return problem(500, "internal_error", "the request failed; it has been logged")
