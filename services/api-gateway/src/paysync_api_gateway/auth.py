"""Bearer-token authentication: every request acts for exactly one tenant."""

from __future__ import annotations

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from paysync_core.db import tenants as tenant_repo
from paysync_core.errors import PaysyncError

_bearer = HTTPBearer(auto_error=False, description="A tenant API key: `Authorization: Bearer psk_…`")


class Unauthenticated(PaysyncError):
    """No API key, or one that is unknown or revoked."""

    code = "unauthenticated"


async def current_tenant(
    request: Request, credentials: HTTPAuthorizationCredentials | None = Depends(_bearer)
) -> str:
    """The tenant whose API key authorised this request."""
    if credentials is None:
        raise Unauthenticated("missing bearer API key")
    async with request.app.state.engine.connect() as conn:
        tenant = await tenant_repo.tenant_for_api_key(conn, credentials.credentials)
    if tenant is None:
        raise Unauthenticated("unknown or revoked API key")
    return tenant
