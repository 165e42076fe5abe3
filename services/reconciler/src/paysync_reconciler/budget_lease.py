"""The share of a tenant's gateway budget this replica holds: tokens leased from PostgreSQL, a few at a time.

Every replica leases from the one token bucket row of the tenant's gateway (`gateway_budgets`): `rate`
tokens a second, at most `burst` banked. A lease takes up to `lease_seconds` worth of the rate in one
atomic statement, so PostgreSQL sees a few statements a second per replica and budget, not one per call.
Leased tokens not used within `lease_seconds` are dropped, never carried over.

When the bucket holds less than a whole token, a lease reserves the next one (the bucket goes below
zero) and says when it is due: the replica spends it no earlier, and asks for no other lease meanwhile.
So replicas waiting on an empty bucket take turns, in the order they asked, one token each, whichever
of them is slower; an empty answer instead had them race for each token as it came, and a replica that
heard back a few milliseconds later than the others got 4 of 120 tokens where a third was its share.

The bound: the bucket hands out at most `burst + rate * t` tokens due in any `t` seconds, whatever the
number of replicas, and a token is spent at most `lease_seconds` after it is due and its lease's reply
has arrived; so the requests sent in any `t` seconds are at most
`burst + rate * (t + lease_seconds + reply time)`.
With the defaults (rate = 0.96 of the limit, burst 0.4 s, lease 0.25 s) that is
`0.62 * limit + 0.96 * limit * t`: below `limit * (1 + t)`, what a gateway that allows a second's burst
accepts, with a third of a second to spare for the database's reply and the network. Scaling from one
replica to three changes nothing in this sum.
The cost: a replica that stops calling drops at most one lease (`rate * lease_seconds` tokens, or the
one token it reserved).

The interface is synchronous, like `TokenBucket`: `try_take` spends a leased token or starts a lease
in the background, and `wait_time` says when to ask again.

The leases of all of a process's buckets go to PostgreSQL together (`LeaseBatches`): one statement in
flight at a time, carrying every lease asked for while the last one ran. A lease serves a bucket's
callers for `lease_seconds` only, so a tenant whose calls are further apart than that (an M-Pesa
callback's confirmation now and then) needs a lease per call; with many such tenants their leases
share statements instead of each paying for its own. Each bucket's lease is what it would be alone.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import structlog

from paysync_reconciler.repository.budgets import Lease, Want

log = structlog.get_logger()

#: The shortest wait a caller is told: many callers waiting never spin.
_POLL_SECONDS = 0.01
#: After PostgreSQL failed a lease: the budget gives nothing for this long.
_ERROR_PAUSE_SECONDS = 1.0

LeaseFn = Callable[[int], Awaitable[Lease]]
#: Leases several buckets in one go: the lease of each bucket asked for, by its key.
LeaseManyFn = Callable[[list[Want]], Awaitable[dict[tuple[str, str], Lease]]]


@dataclass(slots=True)
class SharedBucket:
    """This replica's leased tokens of one shared bucket; `lease(want)` asks PostgreSQL for more."""

    rate: float
    lease_seconds: float
    lease: LeaseFn
    clock: Callable[[], float] = time.monotonic
    _tokens: int = field(init=False, default=0)
    _ready_at: float = field(init=False, default=0.0)
    _expires: float = field(init=False, default=0.0)
    _next_at: float = field(init=False, default=0.0)
    _task: asyncio.Task[None] | None = field(init=False, default=None)

    @property
    def batch(self) -> int:
        """Tokens asked for in one lease."""
        return max(1, math.ceil(self.rate * self.lease_seconds))

    def try_take(self, tokens: float = 1.0) -> bool:
        """Spend leased tokens if there are enough and they are due; with none, start a lease, take none."""
        now = self.clock()
        if now >= self._expires:
            self._tokens = 0
        if self._tokens >= tokens:
            if now < self._ready_at:  # reserved: ours once it is due
                return False
            self._tokens -= math.ceil(tokens)
            return True
        self._start_lease(now)
        return False

    def wait_time(self, tokens: float = 1.0) -> float:
        """Seconds until it is worth asking again."""
        now = self.clock()
        if now < self._expires and self._tokens >= tokens:
            return max(self._ready_at - now, 0.0)
        if self._task is not None:  # a lease is on its way: look again about when a token would come
            return max(_POLL_SECONDS, min(1.0 / self.rate, self.lease_seconds / 2))
        return max(self._next_at - now, _POLL_SECONDS)

    def _start_lease(self, now: float) -> None:
        if self._task is None and now >= self._next_at:
            self._task = asyncio.get_running_loop().create_task(self._lease())

    async def _lease(self) -> None:
        try:
            got = await self.lease(self.batch)
        except Exception:  # the database is away: no tokens, callers wait or give up
            log.warning("reconcile.budget.lease_failed", exc_info=True)
            self._next_at = self.clock() + _ERROR_PAUSE_SECONDS
            return
        finally:
            self._task = None
        now = self.clock()
        if got.granted:
            self._tokens = got.granted  # leases start only once the last one is spent
            self._ready_at = now + got.ready_in  # counted from the reply: never before it is due
            self._expires = self._ready_at + self.lease_seconds
        else:  # none asked, or the bucket is gone: the next whole token is there in (1 - left over) / rate s
            self._next_at = now + max(0.0, 1.0 - got.left_over) / self.rate


@dataclass(slots=True)
class LeaseBatches:
    """Every bucket's leases of one process, sent as few statements as they can be: one at a time, the
    next carrying all that were asked for meanwhile (each bucket once: a second lease of a bucket
    waits for the next statement, though a `SharedBucket` never asks for two at once)."""

    lease_many: LeaseManyFn
    _pending: list[tuple[Want, asyncio.Future[Lease]]] = field(init=False, default_factory=list)
    _task: asyncio.Task[None] | None = field(init=False, default=None)

    def leaser(self, tenant: str, provider: str, rate: float, burst: float) -> LeaseFn:
        """A `SharedBucket`'s lease function for one bucket, going through this batch."""

        async def lease(want: int) -> Lease:
            return await self.lease(Want(tenant, provider, rate, burst, want))

        return lease

    async def lease(self, want: Want) -> Lease:
        """The bucket's lease, sent with the others asked for about now."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Lease] = loop.create_future()
        self._pending.append((want, future))
        if self._task is None:
            self._task = loop.create_task(self._send())
        return await future

    async def _send(self) -> None:
        try:
            while self._pending:
                batch = self._next_batch()
                if not batch:
                    continue
                try:
                    leased = await self.lease_many([want for want, _ in batch])
                except Exception as exc:  # noqa: BLE001 - each caller gets the failure, as alone
                    for _, future in batch:
                        _settle(future, exc)
                    continue
                for want, future in batch:
                    _settle(future, leased.get(want.key, Lease(0, 0.0)))
        finally:
            self._task = None
            for _, future in self._pending:  # cancelled (shut down): nobody is left waiting
                future.cancel()
            self._pending.clear()

    def _next_batch(self) -> list[tuple[Want, asyncio.Future[Lease]]]:
        """The pending leases, one per bucket; a bucket's second stays pending for the next statement."""
        batch: dict[tuple[str, str], tuple[Want, asyncio.Future[Lease]]] = {}
        later: list[tuple[Want, asyncio.Future[Lease]]] = []
        for want, future in self._pending:
            if future.done():  # its caller was cancelled
                continue
            if want.key in batch:
                later.append((want, future))
            else:
                batch[want.key] = (want, future)
        self._pending = later
        return list(batch.values())


def _settle(future: asyncio.Future[Lease], outcome: Lease | Exception) -> None:
    if future.done():
        return
    if isinstance(outcome, Exception):
        future.set_exception(outcome)
    else:
        future.set_result(outcome)
