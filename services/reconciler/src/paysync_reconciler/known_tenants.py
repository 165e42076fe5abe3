"""Which tenants exist, remembered for a minute: every on-demand request asks, and tenants are few."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncConnection

from paysync_reconciler.repository import tenants as tenants_repo

#: How long a tenant found to exist is believed to. The bound: a tenant deleted (by hand: paysync never
#: deletes one) still has its requests taken on for at most this long after, and they find no payments
#: and no credentials. A tenant found missing is not remembered, so one created a moment ago is served
#: at once.
TTL_SECONDS = 60.0


@dataclass(slots=True)
class KnownTenants:
    """The tenants seen to exist in the last `ttl_seconds` (only those: at most every tenant there is)."""

    ttl_seconds: float = TTL_SECONDS
    clock: Callable[[], float] = time.monotonic
    _seen: dict[str, float] = field(default_factory=dict)

    async def exists(self, conn: AsyncConnection, tenant: str) -> bool:
        """Whether the tenant exists: from memory if it was seen lately, else asked on `conn`."""
        now = self.clock()
        seen = self._seen.get(tenant)
        if seen is not None and now - seen < self.ttl_seconds:
            return True
        if not await tenants_repo.tenant_exists(conn, tenant):
            self._seen.pop(tenant, None)
            return False
        self._seen[tenant] = now
        return True
