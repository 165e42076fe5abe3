"""The operator's API: tenants, their API keys and gateway credentials (`/admin/v1`, admin token)."""

from __future__ import annotations

import hmac
from datetime import UTC, datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Body, Depends, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from paysync_api_gateway.access import DEFAULT_SCOPES, Scope
from paysync_api_gateway.auth import Unauthenticated
from paysync_api_gateway.contract import errors
from paysync_api_gateway.deps import ApiKeys, Engine, Modes, Settings
from paysync_api_gateway.inputs import InvalidInput, strict_parameters
from paysync_api_gateway.service import Conflict, NotFound
from paysync_core.credentials import MpesaCredentials, PaystackCredentials, StripeCredentials
from paysync_core.crypto import CredentialsCipher, CredentialsKeyError
from paysync_core.db import tenants as tenant_repo
from paysync_core.errors import UnknownTenant

router = APIRouter(prefix="/admin/v1", tags=["admin"], dependencies=[Depends(strict_parameters)])
_bearer = HTTPBearer(
    auto_error=False,
    scheme_name="OperatorToken",
    description="The operator token: PAYSYNC_API_GATEWAY_ADMIN_TOKEN",
)


async def operator(
    settings: Settings, credentials: HTTPAuthorizationCredentials | None = Depends(_bearer)
) -> None:
    """Only the holder of the admin token; the admin API is off when no token is configured."""
    expected = settings.admin_token.get_secret_value()
    given = credentials.credentials if credentials else ""
    if not expected or not hmac.compare_digest(expected.encode(), given.encode()):
        raise Unauthenticated("admin token required")


Operator = Annotated[None, Depends(operator)]


class NewTenant(BaseModel):
    """A tenant to create."""

    model_config = ConfigDict(extra="forbid")
    id: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{0,62}$")
    name: str = Field(min_length=1, max_length=200)


class CredentialsUpdate(BaseModel):
    """Gateways to (re)configure; a gateway left out keeps what it has."""

    model_config = ConfigDict(extra="forbid")
    stripe: StripeCredentials | None = None
    paystack: PaystackCredentials | None = None
    mpesa: MpesaCredentials | None = None


async def cipher(modes: Modes) -> CredentialsCipher:
    """The cipher of tenants' gateway credentials; declare it after `Operator` (it fails without a key)."""
    if modes.cipher is None:
        raise CredentialsKeyError("PAYSYNC_CREDENTIALS_KEYS is empty: no key to encrypt with")
    return modes.cipher


Cipher = Annotated[CredentialsCipher, Depends(cipher)]


@router.post("/tenants", status_code=201, responses=errors(409))
async def create_tenant(body: NewTenant, engine: Engine, _: Operator) -> dict[str, str]:
    """Create a tenant and its first API key (shown once)."""
    async with engine.begin() as conn:
        if not await tenant_repo.create_tenant(conn, body.id, body.name):
            raise Conflict(f"tenant {body.id!r} exists already")
        key = await tenant_repo.issue_api_key(conn, body.id)
    return {"id": body.id, "api_key": key}


class NewApiKey(BaseModel):
    """What a new key may do: a secret key's scopes and expiry, or a publishable (read-only) key."""

    model_config = ConfigDict(extra="forbid")
    kind: Literal["secret", "publishable"] = "secret"
    scopes: list[Scope] = Field(
        default_factory=lambda: list(DEFAULT_SCOPES),
        min_length=1,
        description="A secret key's scopes (`read`, `write`, `override`: setting a payment's status by "
        "hand); default `read` and `write`; a publishable key's access is fixed",
    )
    expires_at: AwareDatetime | None = Field(default=None, description="After it, the key is refused (401)")


@router.post("/tenants/{tenant_id}/api-keys", status_code=201)
async def issue_api_key(
    tenant_id: str, engine: Engine, _: Operator, body: Annotated[NewApiKey | None, Body()] = None
) -> dict[str, object]:
    """Another API key for the tenant (for rotation: issue, switch clients, revoke the old); shown once."""
    body = body or NewApiKey()
    if body.expires_at is not None and body.expires_at <= datetime.now(UTC):
        raise InvalidInput("the request is not valid", [{"field": "expires_at", "problem": "is in the past"}])
    if body.kind == "publishable" and "scopes" in body.model_fields_set:
        fixed = "a publishable key's access is fixed (read one payment or entity); leave scopes out"
        raise InvalidInput("the request is not valid", [{"field": "scopes", "problem": fixed}])
    async with engine.begin() as conn:
        if not await tenant_repo.tenant_exists(conn, tenant_id):
            raise UnknownTenant(tenant_id)
        key = await tenant_repo.issue_api_key(
            conn, tenant_id, kind=body.kind, scopes=body.scopes, expires_at=body.expires_at
        )
    scopes = ["read"] if body.kind == "publishable" else sorted(set(body.scopes))
    expires_at = body.expires_at.isoformat() if body.expires_at else None
    return {"id": tenant_id, "api_key": key, "kind": body.kind, "scopes": scopes, "expires_at": expires_at}


class ApiKeyInfo(BaseModel):
    """One of a tenant's API keys, as far as it may be shown: never the key, only its first characters."""

    id: int
    prefix: str = Field(description="The key's first 12 characters, to tell keys apart")
    kind: Literal["secret", "publishable"]
    scopes: list[str]
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None


@router.get("/tenants/{tenant_id}/api-keys")
async def list_api_keys(tenant_id: str, engine: Engine, _: Operator) -> dict[str, object]:
    """The tenant's API keys (id, prefix, when issued, when revoked), oldest first."""
    async with engine.connect() as conn:
        if not await tenant_repo.tenant_exists(conn, tenant_id):
            raise UnknownTenant(tenant_id)
        rows = await tenant_repo.list_api_keys(conn, tenant_id)
    keys = [ApiKeyInfo.model_validate(row, from_attributes=True).model_dump(mode="json") for row in rows]
    return {"id": tenant_id, "api_keys": keys}


@router.delete("/tenants/{tenant_id}/api-keys/{key_id}", status_code=204)
async def revoke_api_key(tenant_id: str, key_id: int, engine: Engine, keys: ApiKeys, _: Operator) -> Response:
    """Revoke one API key: refused by this replica from the moment this answers, by the others within
    `PAYSYNC_API_GATEWAY_API_KEY_CACHE_SECONDS` (their cached check of it expires)."""
    async with engine.begin() as conn:
        if not await tenant_repo.revoke_api_key(conn, tenant_id, key_id):
            raise NotFound(f"tenant {tenant_id!r} has no live API key {key_id}")
    keys.forget_key(key_id)
    return Response(status_code=204)


@router.put("/tenants/{tenant_id}/credentials")
async def set_credentials(
    tenant_id: str, body: CredentialsUpdate, _: Operator, engine: Engine, cipher: Cipher
) -> dict:
    """Set or rotate gateway credentials; the answer names what is configured, never a secret."""
    async with engine.begin() as conn:
        current = await tenant_repo.load_credentials(conn, tenant_id, cipher)
        changes = {name: value for name, value in body if value is not None}
        updated = current.model_copy(update=changes)
        await tenant_repo.set_credentials(conn, tenant_id, updated, cipher)
    return {
        "id": tenant_id,
        "configured": [p for p in ("stripe", "paystack", "mpesa") if getattr(updated, p)],
    }


@router.post("/credentials/reencrypt")
async def reencrypt(_: Operator, engine: Engine, cipher: Cipher) -> dict[str, int]:
    """Re-encrypt every tenant's credentials under the first configured key (after adding a key)."""
    async with engine.begin() as conn:
        return {"reencrypted": await tenant_repo.reencrypt_all(conn, cipher)}
