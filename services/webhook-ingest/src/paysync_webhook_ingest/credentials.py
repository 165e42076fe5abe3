"""Tenants' gateway credentials, read from the database and cached for a short while."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine

from paysync_core.credentials import GatewayCredentials
from paysync_core.crypto import CredentialsCipher
from paysync_core.db import tenants as tenant_repo
from paysync_core.dead_letters import is_outage
from paysync_core.errors import UnknownTenant
from paysync_webhook_ingest.errors import DatabaseUnavailable

# Unknown tenants are remembered briefly too, so a flood of bad URLs cannot flood the database.
_NEGATIVE_TTL = 5.0
#: Seconds an expired entry keeps answering after its reload failed, before the next try.
_RETRY_AFTER_FAILED_LOAD = 1.0


@dataclass(slots=True)
class _Entry:
    expires: float
    value: GatewayCredentials | None  # None: no such tenant


class CredentialsStore:
    """Per-tenant credentials with a time-to-live cache and explicit invalidation.

    One load per tenant at a time, however many requests want it (a burst of webhooks when an
    entry expires must not become a burst of queries), and an expired entry keeps answering while
    its reload runs: rotations do not wait for the TTL, they arrive through `invalidate`.
    """

    def __init__(self, engine: AsyncEngine, cipher: CredentialsCipher, ttl: float) -> None:
        self._engine, self._cipher, self._ttl = engine, cipher, ttl
        self._cache: dict[str, _Entry] = {}
        self._loading: dict[str, asyncio.Task[_Entry]] = {}

    async def get(self, tenant: str) -> GatewayCredentials:
        """The tenant's credentials; UnknownTenant if there is no such tenant, DatabaseUnavailable if they are
        not cached and the database cannot be asked (restarting, failing over, unreachable)."""
        entry = self._cache.get(tenant)
        if entry is None:
            try:
                entry = await asyncio.shield(self._load_once(tenant))
            except Exception as exc:
                if is_outage(exc):
                    raise DatabaseUnavailable() from exc
                raise
        elif entry.expires < time.monotonic():
            self._load_once(tenant)  # answer from the expired entry meanwhile
        if entry.value is None:
            raise UnknownTenant(tenant)
        return entry.value

    def invalidate(self, tenant: str | None = None) -> None:
        """Forget one tenant's cached credentials, or every tenant's (no tenant given)."""
        if not tenant:
            self._cache.clear()
            self._loading.clear()
        else:
            self._cache.pop(tenant, None)
            self._loading.pop(tenant, None)  # a load already running may have read the old row

    def _load_once(self, tenant: str) -> asyncio.Task[_Entry]:
        task = self._loading.get(tenant)
        if task is None:
            task = asyncio.create_task(self._load(tenant))
            self._loading[tenant] = task
            task.add_done_callback(lambda t: self._loaded(tenant, t))
        return task

    def _loaded(self, tenant: str, task: asyncio.Task[_Entry]) -> None:
        if self._loading.get(tenant) is not task:
            return  # invalidated while loading: its result may be stale, and is dropped
        del self._loading[tenant]
        if not task.cancelled() and task.exception() is None:
            self._cache[tenant] = task.result()
        elif (stale := self._cache.get(tenant)) is not None:
            stale.expires = time.monotonic() + _RETRY_AFTER_FAILED_LOAD  # the database is away: keep it

    async def _load(self, tenant: str) -> _Entry:
        now = time.monotonic()
        async with self._engine.connect() as conn:
            try:
                value = await tenant_repo.load_credentials(conn, tenant, self._cipher)
                return _Entry(now + self._ttl, value)
            except UnknownTenant:
                return _Entry(now + _NEGATIVE_TTL, None)
