"""The API-key cache checks a key in use again ahead of time: `paysync_api_gateway.key_cache.ApiKeyCache`.

Unit tests: the database is a lookup the test lets finish when it likes, and the cache's clock is the
test's, so "the last fifth of the freshness" is a value, not a wait. Through a real database and
server: `tests/integration/test_api_keys.py` (revocation, one lookup a burst).
"""

from __future__ import annotations

import asyncio

from sqlalchemy.ext.asyncio import create_async_engine

from paysync_api_gateway.access import KeyAccess
from paysync_api_gateway.key_cache import ApiKeyCache

KEY = "sk_test_key"
ACCESS = KeyAccess(7, "tenant-a", "secret", frozenset({"payments:read"}), None)
TTL = 5.0


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Database(ApiKeyCache):
    """The cache over a database whose lookups wait until the test opens `answering`."""

    def __init__(self, clock: Clock) -> None:
        # An engine that is never connected: every lookup is `_read` below.
        super().__init__(create_async_engine("postgresql+asyncpg://unused/none"), TTL, 1.0, 100, clock=clock)
        self.lookups = 0
        self.answering = asyncio.Event()
        self.grants: KeyAccess | None = ACCESS

    async def _read(self, key_hash: str) -> KeyAccess | None:
        self.lookups += 1
        await self.answering.wait()
        return self.grants


async def settled() -> None:
    """Let every task that can run, run (the lookups' tasks, the cache's callbacks)."""
    for _ in range(5):
        await asyncio.sleep(0)


async def primed(clock: Clock) -> Database:
    cache = Database(clock)
    cache.answering.set()
    assert await cache.lookup(KEY) == ACCESS
    cache.answering.clear()
    return cache


async def test_a_key_in_its_last_fifth_is_answered_at_once_and_looked_up_in_the_background() -> None:
    clock = Clock()
    cache = await primed(clock)
    clock.now += 0.9 * TTL
    request = asyncio.create_task(cache.lookup(KEY))
    await settled()
    assert request.done() and request.result() == ACCESS  # the database has not answered yet
    assert cache.lookups == 2
    second = asyncio.create_task(cache.lookup(KEY))
    await settled()
    assert second.done() and cache.lookups == 2  # one lookup ahead at a time

    cache.answering.set()
    await settled()
    clock.now += 0.5 * TTL  # past the first entry's freshness, within the new one's
    assert await cache.lookup(KEY) == ACCESS and cache.lookups == 2


async def test_before_its_last_fifth_a_key_costs_no_lookup() -> None:
    clock = Clock()
    cache = await primed(clock)
    clock.now += 0.7 * TTL
    assert await cache.lookup(KEY) == ACCESS and cache.lookups == 1


async def test_past_its_freshness_a_key_waits_for_the_database_so_a_revocation_elsewhere_holds() -> None:
    clock = Clock()
    cache = await primed(clock)
    cache.grants = None  # revoked in the database by another replica
    clock.now += TTL
    request = asyncio.create_task(cache.lookup(KEY))
    await settled()
    assert not request.done()
    cache.answering.set()
    assert await request is None


async def test_a_lookup_begun_before_this_replica_revokes_the_key_does_not_bring_it_back() -> None:
    clock = Clock()
    cache = await primed(clock)
    clock.now += 0.9 * TTL
    assert await cache.lookup(KEY) == ACCESS  # starts the lookup ahead ...
    await settled()  # ... which reads the key as live
    cache.forget_key(ACCESS.key_id)
    cache.answering.set()
    await settled()
    cache.grants = None
    assert await cache.lookup(KEY) is None and cache.lookups == 3
