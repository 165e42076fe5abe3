"""webhook-ingest's own errors, and the one place they become HTTP answers."""

from __future__ import annotations

import structlog
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from paysync_core.errors import (
    AuthenticityError,
    MalformedPayload,
    ModeMismatch,
    NotDurable,
    PaysyncError,
    ProviderNotConfigured,
    UnknownTenant,
)
from paysync_core.logging import redact_callback_tokens

log = structlog.get_logger()


class PayloadTooLarge(PaysyncError):
    """A body over the size limit."""

    code = "payload_too_large"

    def __init__(self, limit: int) -> None:
        self.limit = limit
        super().__init__(f"body larger than {limit} bytes")


class TooManyFailures(PaysyncError):
    """The tenant's budget for requests failing authenticity is spent for now."""

    code = "too_many_failures"

    def __init__(self, tenant: str) -> None:
        super().__init__(f"too many requests failing authenticity for tenant {tenant!r}; slow down")


class DatabaseUnavailable(PaysyncError):
    """The tenant's credentials are not cached and PostgreSQL cannot be asked: the gateway retries."""

    code = "database_unavailable"
    retryable = True

    def __init__(self) -> None:
        super().__init__("the database is not answering (restart or failover); try again")


_STATUS: tuple[tuple[type[PaysyncError], int], ...] = (
    (MalformedPayload, 400),
    (ModeMismatch, 400),
    (AuthenticityError, 401),
    (UnknownTenant, 404),
    (ProviderNotConfigured, 404),
    (PayloadTooLarge, 413),
    (TooManyFailures, 429),
    (NotDurable, 503),
    (DatabaseUnavailable, 503),
)


#: Unknown tenants and gateways a tenant has not configured get this one answer, naming neither,
#: so the webhook URLs cannot be used to list tenants; the quarantine and metrics still tell them apart.
NO_SUCH_ENDPOINT = {"error": "not_found", "message": "no webhook endpoint at this address", "problems": []}


def http_status_of(exc: PaysyncError) -> int:
    """The HTTP contract's status for an error (500 for anything unexpected)."""
    return next((code for kind, code in _STATUS if isinstance(exc, kind)), 500)


def install_error_handlers(app: FastAPI, retry_after_seconds: int) -> None:
    """Map paysync errors to the HTTP contract's answers; 503 and 429 say when to retry."""

    @app.exception_handler(PaysyncError)
    async def paysync_error(request: Request, exc: PaysyncError) -> JSONResponse:
        status = http_status_of(exc)
        # The path may hold an M-Pesa callback token: it is logged only as a fingerprint.
        path = redact_callback_tokens(request.url.path)
        if status >= 500 and not exc.retryable:
            log.error("webhook.failed", path=path, status=status, error=exc.code, exc_info=exc)
        else:
            log.info("webhook.refused", path=path, status=status, error=exc.code, detail=str(exc))
        headers = {"Retry-After": str(retry_after_seconds)} if status in (429, 503) else None
        if isinstance(exc, (UnknownTenant, ProviderNotConfigured)):
            return JSONResponse(NO_SUCH_ENDPOINT, status_code=status)
        return JSONResponse(
            {"error": exc.code, "message": str(exc), "problems": []}, status_code=status, headers=headers
        )
