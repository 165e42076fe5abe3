"""Tenants, their API keys and their encrypted gateway credentials: the SQL every service shares."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Sequence
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import and_, func, select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from paysync_core.credentials import GatewayCredentials
from paysync_core.crypto import CredentialsCipher
from paysync_core.db import TENANTS_CHANNEL
from paysync_core.db.schema import alert_settings, api_keys, tenants, webhook_endpoints
from paysync_core.errors import PaysyncError, UnknownTenant

API_KEY_PREFIX = "psk_"
#: Publishable keys (safe in a web page) start with this, so nobody mistakes one for a secret key.
PUBLISHABLE_KEY_PREFIX = "ppk_"
KeyKind = Literal["secret", "publishable"]


class AmbiguousKey(PaysyncError):
    """A key prefix that names more than one live key."""

    code = "ambiguous_key"


def hash_api_key(key: str) -> str:
    """The stored form of an API key: keys are random, so a plain SHA-256 is enough."""
    return hashlib.sha256(key.encode()).hexdigest()


async def create_tenant(conn: AsyncConnection, tenant_id: str, name: str) -> bool:
    """Create a tenant; False if it already existed."""
    result = await conn.execute(
        insert(tenants).values(id=tenant_id, name=name).on_conflict_do_nothing().returning(tenants.c.id)
    )
    return result.first() is not None


async def issue_api_key(
    conn: AsyncConnection,
    tenant_id: str,
    *,
    kind: KeyKind = "secret",
    scopes: Sequence[str] = ("read", "write"),
    expires_at: datetime | None = None,
) -> str:
    """A new API key for the tenant; only its hash is kept, so show it once.

    A publishable key's access is fixed by its kind (api-gateway's `access.py`), so it stores `read`.
    """
    prefix = PUBLISHABLE_KEY_PREFIX if kind == "publishable" else API_KEY_PREFIX
    key = prefix + secrets.token_urlsafe(32)
    stored_scopes = ["read"] if kind == "publishable" else sorted(set(scopes))
    await conn.execute(
        api_keys.insert().values(
            tenant_id=tenant_id,
            key_hash=hash_api_key(key),
            prefix=key[:12],
            kind=kind,
            scopes=stored_scopes,
            expires_at=expires_at,
        )
    )
    return key


async def install_api_key(conn: AsyncConnection, tenant_id: str, key: str) -> None:
    """Install a chosen API key (a fixed dev key); a no-op if it is installed already."""
    await conn.execute(
        insert(api_keys)
        .values(tenant_id=tenant_id, key_hash=hash_api_key(key), prefix=key[:12])
        .on_conflict_do_nothing(index_elements=[api_keys.c.key_hash])
    )


async def tenant_exists(conn: AsyncConnection, tenant_id: str) -> bool:
    """Whether there is such a tenant."""
    return (await conn.execute(select(tenants.c.id).where(tenants.c.id == tenant_id))).first() is not None


async def list_api_keys(conn: AsyncConnection, tenant_id: str) -> list[Any]:
    """The tenant's API keys, oldest first: id, prefix (the first 12 characters), kind, scopes, created_at,
    expires_at, revoked_at."""
    k = api_keys.c
    rows = await conn.execute(
        select(k.id, k.prefix, k.kind, k.scopes, k.created_at, k.expires_at, k.revoked_at)
        .where(api_keys.c.tenant_id == tenant_id)
        .order_by(api_keys.c.id)
    )
    return list(rows)


async def revoke_api_key(conn: AsyncConnection, tenant_id: str, key: int | str) -> list[int]:
    """Revoke the tenant's unrevoked key with this id or prefix; returns the ids revoked.

    A prefix that matches several live keys revokes none and raises AmbiguousKey, so a short
    prefix never takes down more than the operator meant. Effective at once: every request checks.
    """
    match = api_keys.c.id == key if isinstance(key, int) else api_keys.c.prefix == key
    live = and_(api_keys.c.tenant_id == tenant_id, api_keys.c.revoked_at.is_(None), match)
    ids = list((await conn.execute(select(api_keys.c.id).where(live).with_for_update())).scalars())
    if len(ids) > 1:
        raise AmbiguousKey(f"{len(ids)} live keys of {tenant_id!r} start with {key!r}; revoke by id")
    if ids:
        await conn.execute(update(api_keys).where(api_keys.c.id == ids[0]).values(revoked_at=func.now()))
    return ids


async def api_key_access(conn: AsyncConnection, key_hash: str) -> Any | None:
    """An unrevoked key's id, tenant_id, kind, scopes and expires_at, or None.

    Expiry is left to the caller, which may cache the row and must refuse the key once it expires.
    """
    k = api_keys.c
    row = await conn.execute(
        select(k.id, k.tenant_id, k.kind, k.scopes, k.expires_at).where(
            k.key_hash == key_hash, k.revoked_at.is_(None)
        )
    )
    return row.first()


async def set_cors_origins(conn: AsyncConnection, tenant_id: str, origins: Sequence[str]) -> None:
    """Replace the web origins allowed to call the API with the tenant's keys; UnknownTenant if none."""
    result = await conn.execute(
        update(tenants)
        .where(tenants.c.id == tenant_id)
        .values(cors_origins=list(origins), updated_at=func.now())
    )
    if result.rowcount == 0:
        raise UnknownTenant(tenant_id)


async def cors_origins(conn: AsyncConnection, tenant_id: str) -> list[str]:
    """The web origins the tenant allows; UnknownTenant if there is no such tenant."""
    row = (await conn.execute(select(tenants.c.cors_origins).where(tenants.c.id == tenant_id))).first()
    if row is None:
        raise UnknownTenant(tenant_id)
    return list(row.cors_origins)


async def tenants_cors_origins(conn: AsyncConnection) -> dict[str, list[str]]:
    """Each tenant that allows any web origin, with its origins."""
    rows = await conn.execute(
        select(tenants.c.id, tenants.c.cors_origins).where(func.cardinality(tenants.c.cors_origins) > 0)
    )
    return {row.id: list(row.cors_origins) for row in rows}


async def set_credentials(
    conn: AsyncConnection, tenant_id: str, credentials: GatewayCredentials, cipher: CredentialsCipher
) -> None:
    """Replace the tenant's gateway credentials, encrypted under the newest key."""
    result = await conn.execute(
        update(tenants)
        .where(tenants.c.id == tenant_id)
        .values(credentials_ciphertext=cipher.encrypt(credentials), updated_at=func.now())
    )
    if result.rowcount == 0:
        raise UnknownTenant(tenant_id)
    # Services that cache credentials drop this tenant's entry when the transaction commits.
    await conn.execute(
        text("SELECT pg_notify(:channel, :tenant)"), {"channel": TENANTS_CHANNEL, "tenant": tenant_id}
    )


async def load_credentials(
    conn: AsyncConnection, tenant_id: str, cipher: CredentialsCipher
) -> GatewayCredentials:
    """The tenant's gateway credentials; UnknownTenant if there is no such tenant."""
    ciphertext = await credentials_ciphertext(conn, tenant_id)
    if ciphertext is None:
        return GatewayCredentials()
    return cipher.decrypt(ciphertext)


async def credentials_ciphertext(conn: AsyncConnection, tenant_id: str) -> bytes | None:
    """The tenant's gateway credentials as stored (None: none); UnknownTenant if there is no such tenant."""
    row = (
        await conn.execute(select(tenants.c.credentials_ciphertext).where(tenants.c.id == tenant_id))
    ).first()
    if row is None:
        raise UnknownTenant(tenant_id)
    return row.credentials_ciphertext


async def reencrypt_all(conn: AsyncConnection, cipher: CredentialsCipher) -> int:
    """Re-encrypt every tenant's credentials (and endpoint and alert-channel secrets) under the newest key.

    Returns how many tenants' credentials were re-encrypted.
    """
    rows = (
        await conn.execute(
            select(tenants.c.id, tenants.c.credentials_ciphertext)
            .where(tenants.c.credentials_ciphertext.is_not(None))
            .with_for_update()
        )
    ).all()
    for row in rows:
        await conn.execute(
            update(tenants)
            .where(tenants.c.id == row.id)
            .values(credentials_ciphertext=cipher.rotate(row.credentials_ciphertext), updated_at=func.now())
        )
    await _reencrypt_secrets(conn, cipher)
    return len(rows)


async def _reencrypt_secrets(conn: AsyncConnection, cipher: CredentialsCipher) -> None:
    # Endpoint signing secrets and alert channels are under the same keys: the old key may go only
    # once they moved too. (Each table named in its own statement: docs/data.md's owners are checked.)
    e, a = webhook_endpoints.c, alert_settings.c
    for row in (await conn.execute(select(e.id, e.secrets_ciphertext).with_for_update())).all():
        secrets = cipher.rotate(row.secrets_ciphertext)
        await conn.execute(
            update(webhook_endpoints)
            .where(e.id == row.id)
            .values(secrets_ciphertext=secrets, updated_at=func.now())
        )
    query = (
        select(a.tenant_id, a.secrets_ciphertext).where(a.secrets_ciphertext.is_not(None)).with_for_update()
    )
    for row in (await conn.execute(query)).all():
        secrets = cipher.rotate(row.secrets_ciphertext)
        await conn.execute(
            update(alert_settings)
            .where(a.tenant_id == row.tenant_id)
            .values(secrets_ciphertext=secrets, updated_at=func.now())
        )
