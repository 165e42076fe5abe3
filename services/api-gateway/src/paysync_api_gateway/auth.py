"""Bearer-token authentication: every request acts for exactly one tenant."""

from __future__ import annotations

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from paysync_api_gateway.deps import Engine, FailedKeys
from paysync_core.db import tenants as tenant_repo
from paysync_core.errors import PaysyncError

_bearer = HTTPBearer(
    auto_error=False,
    scheme_name="TenantApiKey",
    description="A tenant API key: `Authorization: Bearer psk_…`",
)


class Unauthenticated(PaysyncError):
    """No API key, or one that is unknown or revoked."""

    code = "unauthenticated"


class TooManyFailedKeys(PaysyncError):
    """This client address sent too many unknown or revoked keys; it may try again after `retry_after`."""

    code = "too_many_failed_keys"

    def __init__(self, retry_after: float) -> None:
        self.retry_after = retry_after
        super().__init__("too many requests with unknown or revoked API keys from this address; slow down")


async def current_tenant(
    request: Request,
    engine: Engine,
    throttle: FailedKeys,
    credentials: HTTPAuthorizationCredentials | None = Depends(_bearer),
) -> str:
    """The tenant whose API key authorised this request.

    Every request looks its key up in the database, so a revoked key stops working at once (the
    next request after the revocation commits). An address past its budget of failed checks gets
    429 without a lookup, for any key, until its budget refills.
    """
    if credentials is None:
        raise Unauthenticated("missing bearer API key")
    address = request.client.host if request.client else "unknown"
    wait = throttle.retry_after(address)
    if wait > 0:
        raise TooManyFailedKeys(wait)
    async with engine.connect() as conn:
        tenant = await tenant_repo.tenant_for_api_key(conn, credentials.credentials)
    if tenant is None:
        throttle.failed(address)
        raise Unauthenticated("unknown or revoked API key")
    return tenant
