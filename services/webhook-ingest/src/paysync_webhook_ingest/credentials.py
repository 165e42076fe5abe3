"""Tenants' gateway credentials, read from the database and cached for a short while."""

from __future__ import annotations

import time
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine

from paysync_core.credentials import GatewayCredentials
from paysync_core.crypto import CredentialsCipher
from paysync_core.db import tenants as tenant_repo
from paysync_core.errors import UnknownTenant

# Unknown tenants are remembered briefly too, so a flood of bad URLs cannot flood the database.
_NEGATIVE_TTL = 5.0


@dataclass(slots=True)
class _Entry:
    expires: float
    value: GatewayCredentials | None  # None: no such tenant


class CredentialsStore:
    """Per-tenant credentials with a time-to-live cache and explicit invalidation."""

    def __init__(self, engine: AsyncEngine, cipher: CredentialsCipher, ttl: float) -> None:
        self._engine, self._cipher, self._ttl = engine, cipher, ttl
        self._cache: dict[str, _Entry] = {}

    async def get(self, tenant: str) -> GatewayCredentials:
        """The tenant's credentials; UnknownTenant if there is no such tenant."""
        entry = self._cache.get(tenant)
        now = time.monotonic()
        if entry is None or entry.expires < now:
            entry = await self._load(tenant, now)
        if entry.value is None:
            raise UnknownTenant(tenant)
        return entry.value

    def invalidate(self, tenant: str | None = None) -> None:
        """Forget one tenant's cached credentials, or every tenant's (no tenant given)."""
        if not tenant:
            self._cache.clear()
        else:
            self._cache.pop(tenant, None)

    async def _load(self, tenant: str, now: float) -> _Entry:
        async with self._engine.connect() as conn:
            try:
                value = await tenant_repo.load_credentials(conn, tenant, self._cipher)
                entry = _Entry(now + self._ttl, value)
            except UnknownTenant:
                entry = _Entry(now + _NEGATIVE_TTL, None)
        self._cache[tenant] = entry
        return entry
