"""Status changes POSTed to tenants' own endpoints as Standard Webhooks: intake, dispatch, retries, disabling.

Intake (one consumer group shared by every replica) writes a delivery row per (endpoint, event) and
commits before the record is acknowledged. Dispatchers on every replica claim due deliveries with
`FOR UPDATE SKIP LOCKED` and a lease, one payment's events per endpoint strictly in sequence order,
and send them; each attempt is logged, failures retried on a schedule, and an endpoint that keeps
failing is disabled with an alert to its tenant's admins.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit

import httpx
import structlog
from prometheus_client import Counter, Gauge
from sqlalchemy.ext.asyncio import AsyncEngine

from paysync_core.app_webhooks import open_secrets, signature_header
from paysync_core.contracts import Alert, AlertKind, PaymentStatusChanged
from paysync_core.contracts.alert import alert_id
from paysync_core.crypto import CredentialsCipher
from paysync_core.db.engine import no_transaction
from paysync_core.dead_letters import is_outage
from paysync_notifier import hooks_repository as repo
from paysync_notifier.hooks_repository import Attempt, Claimed
from paysync_notifier.hooks_settings import AppWebhookSettings

log = structlog.get_logger()
DELIVERIES = Counter(
    "paysync_notifier_app_webhooks_total",
    "Status-change webhook attempts to tenants' endpoints, by outcome (delivered, retried, failed: given up)",
    ["outcome"],
)
OLDEST_PENDING = Gauge(
    "paysync_notifier_app_webhooks_oldest_pending_seconds", "Age of the oldest webhook delivery still pending"
)
DISABLED = Counter("paysync_notifier_app_webhook_endpoints_disabled_total", "Endpoints disabled for failing")
#: Publishes an alert on `paysync.alerts.v1`; returns once the broker has it.
AlertSink = Callable[[Alert], Awaitable[object]]
_USER_AGENT = "paysync-webhooks/1"


def retry_delay(
    attempts: int, schedule: list[float], jitter: float, retry_after: float | None
) -> float | None:
    """Seconds to the next try after `attempts` failed ones (None: give up); a later `Retry-After` wins."""
    if attempts > len(schedule):
        return None
    base = schedule[attempts - 1] * (1 + random.uniform(-jitter, jitter))  # noqa: S311 - jitter, not a secret
    return max(base, retry_after or 0.0)


def retry_after_seconds(response: httpx.Response, cap: float) -> float | None:
    """A 429/503 answer's `Retry-After` (seconds or an HTTP date), capped; None if absent or unreadable."""
    value = response.headers.get("retry-after")
    if response.status_code not in (429, 503) or not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            seconds = (parsedate_to_datetime(value) - datetime.now(UTC)).total_seconds()
        except (TypeError, ValueError):
            return None
    return min(max(seconds, 0.0), cap)


class AppWebhooks:
    """Delivers status changes to the endpoints tenants registered; one per notifier replica."""

    def __init__(
        self,
        engine: AsyncEngine,
        cipher: CredentialsCipher,
        settings: AppWebhookSettings,
        alerts: AlertSink,
        instance: str,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        self._engine = engine
        self._cipher = cipher
        self._settings = settings
        self._alerts = alerts
        self._me = instance
        self._client = client or httpx.AsyncClient(
            timeout=settings.hooks_timeout_seconds,
            follow_redirects=False,
            headers={"user-agent": _USER_AGENT},
        )
        self._wake = asyncio.Event()
        self._in_flight: set[asyncio.Task[None]] = set()
        self._gauge_at = self._prune_at = 0.0

    async def take_in(self, changes: Sequence[PaymentStatusChanged]) -> None:
        """Record the deliveries status changes make (committed before their records are acknowledged).

        Without a transaction: the endpoints are read and the deliveries inserted in one statement each
        (all of the changes' deliveries at once), and a change taken in again adds nothing, so BEGIN and
        COMMIT would only add two round trips to every batch, most of whose changes no endpoint wants.
        """
        async with no_transaction(self._engine) as conn:
            new = await repo.take_in(conn, changes)
        if new:
            self._wake.set()

    async def run(self) -> None:
        """Claim and send due deliveries until cancelled; woken early by intake and finished sends."""
        try:
            while True:
                try:
                    if await self._dispatch_due():
                        continue
                    await self._idle()
                except Exception as exc:
                    # The database away: wait and go on (leases bring back what was in flight).
                    if not is_outage(exc):
                        raise
                    log.warning("app_webhook.dispatch_retrying", error=str(exc))
                    await asyncio.sleep(self._settings.hooks_poll_seconds)
        finally:
            for task in self._in_flight:
                task.cancel()
            await self._client.aclose()

    async def _dispatch_due(self) -> bool:
        """Start sending what is due, as far as free slots go; True if there may be more due right now."""
        self._wake.clear()
        free = self._settings.hooks_concurrency - len(self._in_flight)
        claimed = await self._claim(free) if free > 0 else []
        for delivery in claimed:
            task = asyncio.create_task(self._deliver(delivery))
            self._in_flight.add(task)
            task.add_done_callback(self._finished)
        return free > 0 and len(claimed) == free

    async def _claim(self, free: int) -> list[Claimed]:
        async with self._engine.begin() as conn:
            return await repo.claim(conn, self._me, free, self._settings.hooks_lease_seconds)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._in_flight.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("app_webhook.dispatch_crashed", error=repr(task.exception()))
        self._wake.set()

    async def _idle(self) -> None:
        if time.monotonic() >= self._gauge_at:
            self._gauge_at = time.monotonic() + 5
            async with self._engine.connect() as conn:
                oldest = await repo.oldest_pending(conn)
            OLDEST_PENDING.set((datetime.now(UTC) - oldest).total_seconds() if oldest else 0)
        if time.monotonic() >= self._prune_at:
            self._prune_at = time.monotonic() + self._settings.hooks_prune_every_seconds
            async with self._engine.begin() as conn:
                pruned = await repo.prune_settled(conn, self._settings.hooks_keep_days)
            if pruned:
                log.info("app_webhook.pruned", deliveries=pruned)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), self._settings.hooks_poll_seconds)

    async def _deliver(self, delivery: Claimed) -> None:
        attempt, retry_after = await self._send(delivery)
        s = self._settings
        retry_in = None
        if not attempt.delivered:
            retry_in = retry_delay(delivery.attempts + 1, s.hooks_retry_schedule, s.hooks_jitter, retry_after)
        async with self._engine.begin() as conn:
            outcome = await repo.record_attempt(conn, delivery, attempt, self._me, retry_in)
            if not attempt.delivered:
                disabled = await repo.disable_if_failing(
                    conn, delivery.endpoint_id, s.hooks_disable_after_seconds, s.hooks_disable_after_failures
                )
                if disabled is not None:
                    # Published before the commit: if the broker does not take it, the endpoint stays
                    # enabled and the next failure tries again (the alert id is the same).
                    await self._alerts(_disabled_alert(disabled, attempt))
                    DISABLED.inc()
                    log.warning(
                        "app_webhook.endpoint_disabled", endpoint_id=disabled.id, tenant=disabled.tenant_id
                    )
        DELIVERIES.labels(outcome).inc()
        log.info(
            "app_webhook.attempt",
            delivery_id=delivery.id,
            endpoint_id=delivery.endpoint_id,
            tenant=delivery.tenant_id,
            status_code=attempt.status_code,
            duration_ms=attempt.duration_ms,
            outcome=outcome,
        )

    async def _send(self, delivery: Claimed) -> tuple[Attempt, float | None]:
        body = delivery.body.encode()
        keys = open_secrets(self._cipher, delivery.secrets_ciphertext)
        headers = {
            "content-type": "application/json",
            **signature_header(keys, delivery.webhook_id, datetime.now(UTC), body),
        }
        began = time.monotonic()
        try:
            response = await self._client.post(delivery.url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            # The exception's type and message only: the URL may carry a token of the tenant's.
            return Attempt(None, _ms_since(began), f"{type(exc).__name__}: {exc}"[:500]), None
        ms = _ms_since(began)
        error = None if 200 <= response.status_code < 300 else f"HTTP {response.status_code}"
        cap = self._settings.hooks_max_retry_after_seconds
        return Attempt(response.status_code, ms, error), retry_after_seconds(response, cap)


def _ms_since(began: float) -> int:
    return int((time.monotonic() - began) * 1000)


def _disabled_alert(e: Any, attempt: Attempt) -> Alert:
    """The alert telling a tenant's admins endpoint `e` (a disabled row) is off: its host, never its path."""
    host = urlsplit(e.url).hostname
    kind = AlertKind.WEBHOOK_ENDPOINT_DISABLED
    return Alert(
        alert_id=alert_id(kind, e.tenant_id, f"webhook-endpoint:{e.id}:{e.failing_since.isoformat()}"),
        kind=kind,
        tenant=e.tenant_id,
        detail=(
            f"Webhook endpoint {e.id} at {host} was disabled ({e.disabled_reason}): every attempt has failed"
            f" since {e.failing_since:%Y-%m-%d %H:%M} UTC, {e.consecutive_failures} in a row, the last with"
            f" {attempt.error}. Fix it, then `paysync endpoints enable` and redeliver what it missed."
        ),
        facts={
            "endpoint_id": e.id,
            "host": host,
            "failing_since": e.failing_since.isoformat(),
            "consecutive_failures": e.consecutive_failures,
            "last_error": attempt.error,
        },
        raised_at=datetime.now(UTC),
    )
