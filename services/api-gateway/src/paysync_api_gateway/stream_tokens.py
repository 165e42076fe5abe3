"""Stream tokens: short-lived, read-only credentials for a browser's `EventSource`, which sends no headers.

`POST /v1/stream-tokens` (tenant API key) issues one, scoped to the tenant and optionally to one
domain or one entity; `GET /v1/stream?token=…` accepts it, and nothing else does (every other
route takes the API key in `Authorization` only). A token is the scope and its expiry, signed
with HMAC-SHA256 under `PAYSYNC_API_GATEWAY_STREAM_TOKEN_SECRET`: any replica that shares the
secret verifies it without a lookup. Tokens are never logged.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import math
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Body, Depends, Query, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field, SecretStr

from paysync_api_gateway.access import KeyAccess, require_entity_stream
from paysync_api_gateway.auth import Unauthenticated, current_key, key_access
from paysync_api_gateway.contract import errors
from paysync_api_gateway.cors import check_origin
from paysync_api_gateway.deps import ApiKeys, FailedKeys, Origins
from paysync_api_gateway.inputs import CleanText, InvalidInput, strict_parameters
from paysync_core.errors import PaysyncError

router = APIRouter(prefix="/v1", dependencies=[Depends(strict_parameters)])
_bearer = HTTPBearer(
    auto_error=False,
    scheme_name="TenantApiKey",
    description="A tenant API key: `Authorization: Bearer psk_…`",
)
_PREFIX = "pst_"
#: Signed together with the payload, so a MAC made for anything else never verifies as a token.
_CONTEXT = b"paysync-stream-token:v1:"


class StreamTokensOff(PaysyncError):
    """Stream tokens cannot be issued: no signing secret is configured."""

    code = "stream_tokens_disabled"


@dataclass(frozen=True, slots=True)
class StreamAccess:
    """What a stream may carry: one tenant's changes, or one domain's or one entity's of it."""

    tenant: str
    domain: str | None = None
    entity_id: str | None = None


class StreamTokens:
    """Issues and verifies stream tokens with one secret; with none, issues nothing and accepts nothing."""

    def __init__(self, secret: SecretStr, max_ttl_seconds: int) -> None:
        self._key = secret.get_secret_value().encode()
        self.max_ttl_seconds = max_ttl_seconds

    def issue(self, access: StreamAccess, ttl_seconds: int) -> tuple[str, datetime]:
        """A token for `access` that expires `ttl_seconds` from now, and when."""
        if not self._key:
            raise StreamTokensOff(
                "stream tokens are not enabled (no PAYSYNC_API_GATEWAY_STREAM_TOKEN_SECRET)"
            )
        expires = math.ceil(time.time()) + ttl_seconds  # whole seconds, never less than asked
        claims = {"t": access.tenant, "d": access.domain, "e": access.entity_id, "x": expires}
        payload = _b64(json.dumps(claims, separators=(",", ":")).encode())
        return f"{_PREFIX}{payload}.{_b64(self._mac(payload))}", datetime.fromtimestamp(expires, UTC)

    def verify(self, token: str) -> StreamAccess:
        """The access a token grants; `Unauthenticated` if it is not ours, was altered, or expired."""
        payload, _, mac = token.removeprefix(_PREFIX).partition(".")
        try:
            given = base64.urlsafe_b64decode(mac + "=" * (-len(mac) % 4))
        except ValueError:
            given = b""
        # Constant time, so a signature cannot be found byte by byte from response times.
        if (
            not self._key
            or not token.startswith(_PREFIX)
            or not hmac.compare_digest(given, self._mac(payload))
        ):
            raise Unauthenticated("invalid stream token")
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        if claims["x"] <= time.time():
            raise Unauthenticated("the stream token has expired; ask for a new one")
        return StreamAccess(claims["t"], claims["d"], claims["e"])

    def _mac(self, payload: str) -> bytes:
        return hmac.new(self._key, _CONTEXT + payload.encode(), hashlib.sha256).digest()


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


async def stream_tokens(request: Request) -> StreamTokens:
    """The issuer and verifier of stream tokens."""
    return request.app.state.stream_tokens


Tokens = Annotated[StreamTokens, Depends(stream_tokens)]


class StreamTokenRequest(BaseModel):
    """What a stream token is for: the whole tenant, one domain, or one entity of a domain."""

    model_config = ConfigDict(extra="forbid")

    domain: CleanText | None = Field(default=None, max_length=200)
    entity_id: CleanText | None = Field(default=None, max_length=200, description="Needs `domain`")
    ttl_seconds: int | None = Field(
        default=None,
        ge=1,
        description="Shorter than `PAYSYNC_API_GATEWAY_STREAM_TOKEN_TTL_SECONDS`, if given",
    )


class StreamToken(BaseModel):
    """A stream token: pass it as `GET /v1/stream?token=…` before `expires_at`."""

    token: str
    expires_at: datetime
    domain: str | None
    entity_id: str | None


@router.post(
    "/stream-tokens",
    status_code=201,
    responses=errors(503, e503="No stream-token secret is configured (`stream_tokens_disabled`)"),
)
async def issue_stream_token(
    key: Annotated[KeyAccess, Depends(current_key)],
    tokens: Tokens,
    wanted: Annotated[StreamTokenRequest | None, Body()] = None,
) -> StreamToken:
    """A short-lived, read-only token for `GET /v1/stream?token=…`: `EventSource` sends no headers.

    422 for an `entity_id` without a `domain`, or a `ttl_seconds` over the configured maximum;
    403 for a publishable key that names no entity; 503 `stream_tokens_disabled` while no signing
    secret is configured.
    """
    wanted = wanted or StreamTokenRequest()
    if wanted.entity_id is not None and wanted.domain is None:
        raise InvalidInput("the request is not valid", [{"field": "entity_id", "problem": "needs a domain"}])
    require_entity_stream(key, wanted.entity_id)
    tenant = key.tenant
    ttl = wanted.ttl_seconds or tokens.max_ttl_seconds
    if ttl > tokens.max_ttl_seconds:
        too_long = f"is more than the {tokens.max_ttl_seconds} seconds a token may live"
        raise InvalidInput("the request is not valid", [{"field": "ttl_seconds", "problem": too_long}])
    token, expires_at = tokens.issue(StreamAccess(tenant, wanted.domain, wanted.entity_id), ttl)
    return StreamToken(token=token, expires_at=expires_at, domain=wanted.domain, entity_id=wanted.entity_id)


async def stream_access(
    request: Request,
    keys: ApiKeys,
    throttle: FailedKeys,
    origins: Origins,
    tokens: Tokens,
    token: Annotated[
        str | None, Query(description="A stream token, for clients that cannot send headers")
    ] = None,
    credentials: HTTPAuthorizationCredentials | None = Depends(_bearer),
) -> StreamAccess:
    """Who may read `/v1/stream`: the holder of a stream token (`?token=`), or of a tenant API key.

    A browser's `EventSource` from another origin is let in only from an origin the tenant allows.
    """
    key = credentials.credentials if credentials is not None else None
    if token is None:
        return StreamAccess((await key_access(request, keys, throttle, origins, key)).tenant)
    access = tokens.verify(token)
    if key is not None and (await key_access(request, keys, throttle, origins, key)).tenant != access.tenant:
        raise Unauthenticated("the stream token belongs to another tenant")
    await check_origin(request, origins, access.tenant)
    return access
