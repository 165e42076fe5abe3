"""Bearer-token authentication: every request acts for exactly one tenant, with what its key allows."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi.security.utils import get_authorization_scheme_param

from paysync_api_gateway.access import KeyAccess, authorize
from paysync_api_gateway.cors import check_origin
from paysync_api_gateway.deps import ApiKeys, FailedKeys, Origins
from paysync_core.errors import PaysyncError

_bearer = HTTPBearer(
    auto_error=False,
    scheme_name="TenantApiKey",
    description="A tenant API key: `Authorization: Bearer psk_…` (secret) or `ppk_…` (publishable)",
)


class Unauthenticated(PaysyncError):
    """No API key, or one that is unknown, revoked or expired."""

    code = "unauthenticated"


class TooManyFailedKeys(PaysyncError):
    """This client address sent too many unknown or revoked keys; it may try again after `retry_after`."""

    code = "too_many_failed_keys"

    def __init__(self, retry_after: float) -> None:
        self.retry_after = retry_after
        super().__init__("too many requests with unknown or revoked API keys from this address; slow down")


async def key_access(
    request: Request,
    keys: ApiKeys,
    throttle: FailedKeys,
    origins: Origins,
    key: str | None,
) -> KeyAccess:
    """The key that authorised this request, once it is known, live, allowed this route and this origin.

    Keys are checked through the in-process cache (`key_cache.py`: a revoked key is refused within
    `api_key_cache_seconds`). An address past its budget of failed checks gets 429 without a
    check, for any key, until its budget refills.
    """
    if key is None:
        raise Unauthenticated("missing bearer API key")
    client = request.scope.get("client")
    address = client[0] if client else "unknown"
    wait = throttle.retry_after(address)
    if wait > 0:
        raise TooManyFailedKeys(wait)
    access = await keys.lookup(key)
    if access is None:
        throttle.failed(address)
        raise Unauthenticated("unknown or revoked API key")
    if access.expires_at is not None and access.expires_at <= datetime.now(UTC):
        raise Unauthenticated(f"the API key expired at {access.expires_at.isoformat()}")
    route = request.scope.get("route")
    authorize(access, request.method, route.path if route is not None else request.url.path)
    await check_origin(request, origins, access.tenant)
    return access


async def current_key(
    request: Request,
    keys: ApiKeys,
    throttle: FailedKeys,
    origins: Origins,
    credentials: HTTPAuthorizationCredentials | None = Depends(_bearer),
) -> KeyAccess:
    """The key behind this request (see `key_access`), for routes that need more than its tenant."""
    key = credentials.credentials if credentials is not None else None
    return await key_access(request, keys, throttle, origins, key)


async def request_key(request: Request) -> KeyAccess:
    """`current_key` for a route resolved by hand (`hot.py`): the same checks."""
    state = request.app.state
    key = bearer_key(request.headers.get("authorization"))
    return await key_access(request, state.api_keys, state.failed_keys, state.cors_origins, key)


def bearer_key(authorization: str | None) -> str | None:
    """The key of an `Authorization: Bearer <key>` header as `_bearer` finds it (None: none), without
    its credentials model."""
    scheme, key = get_authorization_scheme_param(authorization)
    if not (authorization and scheme and key) or scheme.lower() != "bearer":
        return None
    return key


async def current_tenant(access: KeyAccess = Depends(current_key)) -> str:
    """The tenant whose API key authorised this request."""
    return access.tenant
