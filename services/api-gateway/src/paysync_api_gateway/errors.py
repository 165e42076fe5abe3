"""The one place api-gateway's errors become HTTP answers."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from paysync_api_gateway.auth import Unauthenticated
from paysync_api_gateway.refresh import RequestNotSent
from paysync_api_gateway.service import BadCursor, Conflict, NotFound
from paysync_api_gateway.stream import StreamUnavailable, TooManyStreams
from paysync_core.crypto import CredentialsKeyError
from paysync_core.errors import PaysyncError, UnknownTenant

_STATUS = {
    Unauthenticated: 401,
    NotFound: 404,
    UnknownTenant: 404,
    Conflict: 409,
    BadCursor: 400,
    CredentialsKeyError: 500,
    RequestNotSent: 503,
    TooManyStreams: 429,
    StreamUnavailable: 503,
}
#: How to authenticate; when to try again.
_HEADERS = {401: {"WWW-Authenticate": "Bearer"}, 429: {"Retry-After": "5"}, 503: {"Retry-After": "5"}}


def install_error_handlers(app: FastAPI) -> None:
    """Map errors to status codes with a `{"error", "message"}` body."""

    @app.exception_handler(PaysyncError)
    async def paysync_error(_: Request, exc: PaysyncError) -> JSONResponse:
        status = next((code for kind, code in _STATUS.items() if isinstance(exc, kind)), 500)
        headers = _HEADERS.get(status)
        return JSONResponse({"error": exc.code, "message": str(exc)}, status_code=status, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_: Request, exc: RequestValidationError) -> JSONResponse:
        problems = [
            {"field": ".".join(str(p) for p in e["loc"][1:]), "problem": e["msg"]} for e in exc.errors()
        ]
        return JSONResponse(
            {"error": "invalid_request", "message": "the request is not valid", "problems": problems},
            status_code=422,
        )
