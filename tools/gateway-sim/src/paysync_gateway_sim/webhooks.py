"""Webhook delivery: signed at send time, with each account's faults applied, retried, logged.

Webhooks about one payment go out one at a time, in the order they were released, so a test can
rely on the reorder fault; webhooks about different payments go out concurrently.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import time
from collections import deque
from dataclasses import dataclass, field

import httpx
import structlog

from paysync_core.contracts.common import Provider
from paysync_core.providers import sign_paystack, sign_stripe
from paysync_gateway_sim.config import SimConfig
from paysync_gateway_sim.contracts import DeliveryRecord
from paysync_gateway_sim.state import Account, Outgoing, Store

log = structlog.get_logger(__name__)

_USER_AGENTS = {
    Provider.STRIPE: "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
    Provider.PAYSTACK: "Paystack/1.0",
    Provider.MPESA: "Safaricom-Daraja/1.0",
}


def signed_headers(item: Outgoing, account: Account, timestamp: int) -> dict[str, str]:
    """The headers the gateway sends `item` with: its signature (Stripe's made at `timestamp`), type, agent.

    The benchmarks sign the webhooks they send themselves with this too, so they are signed exactly as
    the simulator signs them. M-Pesa callbacks carry no signature (the token is in their URL).
    """
    headers = {"Content-Type": "application/json", "User-Agent": _USER_AGENTS[item.provider]}
    if item.provider is Provider.STRIPE and account.webhook_secret:
        headers["Stripe-Signature"] = sign_stripe(item.body, account.webhook_secret, timestamp)
        headers["Content-Type"] = "application/json; charset=utf-8"
    elif item.provider is Provider.PAYSTACK and account.secret_key:
        headers["x-paystack-signature"] = sign_paystack(item.body, account.secret_key)
    return headers


@dataclass(order=True, slots=True)
class Delivery:
    """One copy of a webhook on its way; ordered by when it is due, then by release order."""

    due: float
    seq: int
    outgoing: Outgoing = field(compare=False)
    id: int = field(compare=False)
    generation: int = field(compare=False)
    attempt: int = field(default=0, compare=False)


class WebhookSender:
    """Queues webhooks under each account's faults and POSTs them when due."""

    def __init__(self, store: Store, config: SimConfig) -> None:
        self._store = store
        self._config = config
        self._heap: list[Delivery] = []
        self._held: dict[str, tuple[float, list[Delivery]]] = {}  # account -> (held since, copies)
        self._busy: set[tuple[str, str]] = set()  # (account, payment) with a request in flight
        self._inflight: dict[str, int] = {}  # account -> requests in flight
        self._log: deque[DeliveryRecord] = deque(maxlen=config.delivery_log_size)
        self._ids = itertools.count(1)
        self._seqs = itertools.count(1)
        self._records = itertools.count(1)
        self._generation = 0
        self._wake = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()

    # --- accepting ----------------------------------------------------------------------------

    def submit(self, outgoing: list[Outgoing]) -> None:
        """Take webhooks a gateway would send now; drop, duplicate, delay or hold them as configured."""
        now = time.monotonic()
        for item in outgoing:
            account = self._store.get(item.account_id)
            if account is None:
                continue
            faults, rng, stats = account.faults.webhooks, account.webhook_rng, account.webhook_stats
            delivery_id = next(self._ids)
            stats.queued += 1
            self._record(item, delivery_id, "queued")
            # Draw every number each time, so changing one ratio does not reshuffle the others.
            roll_drop, roll_dup = rng.random(), rng.random()
            top = max(faults.delay_min, faults.delay_max)
            delays = [rng.uniform(faults.delay_min, top) for _ in range(2)]
            if faults.drop_next > 0 or roll_drop < faults.drop_ratio:
                faults.drop_next = max(0, faults.drop_next - 1)
                stats.dropped += 1
                self._record(item, delivery_id, "dropped")
                continue
            copies = 2 if roll_dup < faults.duplicate_ratio else 1
            for copy, delay in enumerate(delays[:copies]):
                if copy:
                    stats.duplicated += 1
                    self._record(item, delivery_id, "duplicated")
                delivery = Delivery(now + delay, next(self._seqs), item, delivery_id, self._generation)
                if faults.reorder_window >= 2:
                    self._hold(account, delivery)
                else:
                    heapq.heappush(self._heap, delivery)
        self._wake.set()

    def _hold(self, account: Account, delivery: Delivery) -> None:
        since, held = self._held.setdefault(account.id, (time.monotonic(), []))
        held.append(delivery)
        self._record(delivery.outgoing, delivery.id, "held")
        if len(held) >= account.faults.webhooks.reorder_window:
            self._release(account.id)

    def _release(self, account_id: str) -> None:
        """Send a held window newest first: later webhooks overtake earlier ones."""
        _, held = self._held.pop(account_id, (0.0, []))
        now = time.monotonic()
        for delivery in reversed(held):
            delivery.due, delivery.seq = max(now, delivery.due), next(self._seqs)
            heapq.heappush(self._heap, delivery)

    # --- sending ------------------------------------------------------------------------------

    async def run(self) -> None:
        """Send due webhooks until cancelled."""
        timeout = httpx.Timeout(self._config.webhook_timeout)
        limits = httpx.Limits(max_connections=self._config.delivery_concurrency * 2)
        async with httpx.AsyncClient(timeout=timeout, limits=limits, follow_redirects=False) as client:
            try:
                while True:
                    wait = self._dispatch(client)
                    self._wake.clear()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._wake.wait(), timeout=wait)
            finally:
                for task in list(self._tasks):
                    task.cancel()
                await asyncio.gather(*self._tasks, return_exceptions=True)

    def _dispatch(self, client: httpx.AsyncClient) -> float:
        """Start every due delivery that may go now; return how long to sleep."""
        now = time.monotonic()
        for account_id, (since, _) in list(self._held.items()):
            account = self._store.get(account_id)
            hold = account.faults.webhooks.reorder_hold_seconds if account else 0.0
            if now - since >= hold:
                self._release(account_id)
        waiting: list[Delivery] = []
        room = self._config.delivery_concurrency
        while self._heap and self._heap[0].due <= now and len(self._tasks) < room:
            delivery = heapq.heappop(self._heap)
            key = (delivery.outgoing.account_id, delivery.outgoing.ref)
            if key in self._busy:
                waiting.append(delivery)  # keeps its place: it goes when the earlier one is done
                continue
            self._busy.add(key)
            account_id = delivery.outgoing.account_id
            self._inflight[account_id] = self._inflight.get(account_id, 0) + 1
            task = asyncio.create_task(self._send(client, delivery))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        for delivery in waiting:
            heapq.heappush(self._heap, delivery)
        next_due = self._heap[0].due - now if self._heap and not waiting else 0.05
        return max(0.005, min(next_due, 0.05 if self._held else 1.0))

    async def _send(self, client: httpx.AsyncClient, delivery: Delivery) -> None:
        item = delivery.outgoing
        try:
            account = self._store.get(item.account_id)
            url = item.url if item.provider is Provider.MPESA else (account.webhook_url if account else None)
            if account is None or delivery.generation != self._generation:
                return  # the account went away with a reset
            delivery.attempt += 1
            if not url:
                account.webhook_stats.no_endpoint += 1
                self._record(item, delivery.id, "no_endpoint", delivery.attempt)
                return
            status, error = await self._post(client, url, item, account)
            if delivery.generation != self._generation:
                return
            if status is not None and 200 <= status < 300:
                account.webhook_stats.delivered += 1
                self._record(item, delivery.id, "delivered", delivery.attempt, status)
            else:
                self._retry_or_give_up(account, delivery, status, error)
        finally:
            self._busy.discard((item.account_id, item.ref))
            self._inflight[item.account_id] = self._inflight.get(item.account_id, 1) - 1
            self._wake.set()

    async def _post(
        self, client: httpx.AsyncClient, url: str, item: Outgoing, account: Account
    ) -> tuple[int | None, str | None]:
        # Signed with the wall clock: receivers check the timestamp against their own clock.
        headers = signed_headers(item, account, int(time.time()))
        try:
            response = await client.post(url, content=item.body, headers=headers)
        except httpx.HTTPError as exc:
            return None, type(exc).__name__
        return response.status_code, None

    def _retry_or_give_up(
        self, account: Account, delivery: Delivery, status: int | None, error: str | None
    ) -> None:
        item, stats = delivery.outgoing, account.webhook_stats
        stats.failed_attempts += 1
        self._record(item, delivery.id, "failed", delivery.attempt, status, error)
        schedule = self._config.webhook_retry_schedule
        retries = item.provider is not Provider.MPESA or self._config.mpesa_callback_retries
        if retries and delivery.attempt <= len(schedule):
            delivery.due = time.monotonic() + schedule[delivery.attempt - 1]
            delivery.seq = next(self._seqs)
            heapq.heappush(self._heap, delivery)
        else:
            stats.gave_up += 1
            self._record(item, delivery.id, "gave_up", delivery.attempt, status, error)
        log.debug(
            "gateway_sim.webhook.failed",
            account=item.account_id,
            label=item.label,
            attempt=delivery.attempt,
            status=status,
            error=error,
        )

    # --- reading ------------------------------------------------------------------------------

    def pending(self, account_id: str) -> int:
        """Webhooks of the account not yet delivered, dropped or given up."""
        queued = sum(1 for d in self._heap if d.outgoing.account_id == account_id)
        held = len(self._held.get(account_id, (0.0, []))[1])
        return queued + held + self._inflight.get(account_id, 0)

    def records(
        self,
        *,
        account: str | None = None,
        outcome: str | None = None,
        label: str | None = None,
        after: int = 0,
        limit: int = 1000,
    ) -> list[DeliveryRecord]:
        """The delivery log, oldest first, filtered."""
        found = (
            r
            for r in self._log
            if r.seq > after
            and (account is None or r.account == account)
            and (outcome is None or r.outcome == outcome)
            and (label is None or r.label == label)
        )
        return list(itertools.islice(found, limit))

    def reset(self) -> None:
        """Forget queued webhooks and the log; requests in flight finish unrecorded."""
        self._generation += 1
        self._heap.clear()
        self._held.clear()
        self._log.clear()

    def _record(
        self,
        item: Outgoing,
        delivery_id: int,
        outcome: str,
        attempt: int = 0,
        status: int | None = None,
        error: str | None = None,
    ) -> None:
        self._log.append(
            DeliveryRecord(
                seq=next(self._records),
                delivery_id=delivery_id,
                account=item.account_id,
                provider=item.provider,
                label=item.label,
                ref=item.ref,
                event_id=item.event_id,
                outcome=outcome,
                attempt=attempt,
                status_code=status,
                error=error,
                at=time.time(),
            )
        )
