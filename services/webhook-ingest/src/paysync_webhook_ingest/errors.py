"""webhook-ingest's own errors, and the one place they become HTTP answers."""

from __future__ import annotations

import structlog
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from paysync_core.errors import (
    AuthenticityError,
    MalformedPayload,
    NotDurable,
    PaysyncError,
    ProviderNotConfigured,
    UnknownTenant,
)

log = structlog.get_logger()


class PayloadTooLarge(PaysyncError):
    """A body over the size limit."""

    code = "payload_too_large"

    def __init__(self, limit: int) -> None:
        self.limit = limit
        super().__init__(f"body larger than {limit} bytes")


_STATUS = {
    MalformedPayload: 400,
    AuthenticityError: 401,
    UnknownTenant: 404,
    ProviderNotConfigured: 404,
    PayloadTooLarge: 413,
    NotDurable: 503,
}


def install_error_handlers(app: FastAPI, retry_after_seconds: int) -> None:
    """Map paysync errors to the HTTP contract's answers."""

    @app.exception_handler(PaysyncError)
    async def paysync_error(request: Request, exc: PaysyncError) -> JSONResponse:
        status = next((code for kind, code in _STATUS.items() if isinstance(exc, kind)), 500)
        log.info("webhook.rejected", path=request.url.path, status=status, error=exc.code, detail=str(exc))
        headers = {"Retry-After": str(retry_after_seconds)} if status == 503 else None
        return JSONResponse({"error": exc.code, "message": str(exc)}, status_code=status, headers=headers)
