"""Admin alert delivery: once when an issue opens, a reminder while it stays open, once when it resolves.

The alerts topic says when an issue opens (`record`); `sync_issues` says whether it is still open or
resolved (watched by `run`, which every replica runs). Each message step is a row of the delivery
log, entered once and sent by whoever claims it, so replicas never send the same step twice. The
alerts waiting for one target are sent together: a burst becomes one digest.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from collections import defaultdict
from collections.abc import Sequence

import structlog
from prometheus_client import Counter
from sqlalchemy.ext.asyncio import AsyncEngine

from paysync_core.alerting import AlertConfig, Target, targets_of, wants
from paysync_core.contracts import Alert
from paysync_core.crypto import CredentialsCipher
from paysync_core.db import alerts as settings_repo
from paysync_notifier import delivery_repo as repo
from paysync_notifier.alert_channels import AlertSender, SendFailed, message_id
from paysync_notifier.alert_messages import Item, compose
from paysync_notifier.alert_settings import AlertDeliverySettings

log = structlog.get_logger()
SENT = Counter("paysync_notifier_alerts_sent_total", "Alert messages' alerts delivered", ["channel"])
RETRIED = Counter(
    "paysync_notifier_alerts_retried_total", "Alert deliveries that failed and wait to retry", ["channel"]
)
FAILED = Counter(
    "paysync_notifier_alerts_failed_total", "Alert deliveries given up (dead), with reason", ["channel"]
)
#: Messages in flight at once per replica (each to a different target).
PARALLEL_SENDS = 8


class AlertDelivery:
    """Enters alerts in the delivery log and sends what is due; one per notifier replica."""

    def __init__(
        self,
        engine: AsyncEngine,
        settings: AlertDeliverySettings,
        cipher: CredentialsCipher | None,
        sender: AlertSender,
    ) -> None:
        self._engine = engine
        self._settings = settings
        self._cipher = cipher
        self._sender = sender
        self._me = f"{socket.gethostname()}-{os.getpid()}"
        self._wake = asyncio.Event()
        self._slots = asyncio.Semaphore(PARALLEL_SENDS)

    async def _config(self, tenant: str) -> AlertConfig | None:
        async with self._engine.connect() as conn:
            return await settings_repo.load_alert_settings(conn, tenant, self._cipher)

    async def record(self, alert: Alert) -> None:
        """Enter the opening message of `alert` for each of its tenant's targets that wants its kind."""
        config = await self._config(alert.tenant)
        targets = targets_of(config) if config is not None and wants(config, alert.kind.value) else []
        new = 0
        if config is not None and targets:
            wait = max(self._settings.alerts_digest_window_seconds, config.quiet_seconds)
            async with self._engine.begin() as conn:
                new = await repo.enter_opened(conn, alert, targets, wait)
            self._wake.set()
        # No targets (no settings, or not this kind) is logged too: the alert is not lost silently.
        log.info(
            "alert.received",
            tenant=alert.tenant,
            kind=alert.kind.value,
            alert_id=alert.alert_id,
            targets=len(targets),
            entered=new,
        )

    async def run(self) -> None:
        """Forever: plan reminders and resolutions, send what is due, sleep until woken or the poll."""
        while True:
            self._wake.clear()  # before the round: an alert entered during it wakes the next one
            try:
                await self.deliver_due()
            except Exception:  # a database blip must not end delivery; the next round retries
                log.exception("alerts.round_failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._settings.alerts_poll_seconds)

    async def deliver_due(self) -> int:
        """One round; returns the number of rows claimed."""
        async with self._engine.begin() as conn:
            await repo.plan_follow_ups(conn, self._settings.alerts_digest_window_seconds)
        async with self._engine.begin() as conn:
            claimed = await repo.claim_due(conn, self._me, self._settings)
        # Retries apart from first tries: a failed message is sent again as the same rows, so a signed
        # webhook's receiver sees the same `webhook-id` (rows are sorted: the same split into digests).
        groups: dict[tuple[str, str, str, bool], list[repo.Claimed]] = defaultdict(list)
        for row in sorted(claimed, key=lambda row: row.id):
            groups[(row.tenant_id, row.channel, row.recipient, row.attempts > 1)].append(row)
        configs = {tenant: await self._config(tenant) for tenant in {key[0] for key in groups}}
        size = self._settings.alerts_digest_max
        await asyncio.gather(
            *(
                self._send(configs[key[0]], key, rows[start : start + size])
                for key, rows in groups.items()
                for start in range(0, len(rows), size)
            )
        )
        return len(claimed)

    async def _send(
        self, config: AlertConfig | None, key: tuple[str, str, str, bool], rows: Sequence[repo.Claimed]
    ) -> None:
        tenant, channel, recipient, _ = key
        target = _find_target(config, channel, recipient)
        ids = [row.id for row in rows]
        if target is None:
            await self._failed(
                ids, channel, SendFailed("no longer in the tenant's alert settings", retryable=False)
            )
            return
        message = compose(tenant, [Item(row.step, row.alert) for row in rows], self._settings.console_url)
        async with self._slots:
            try:
                await self._sender.send(target, message, message_id(ids))
            except SendFailed as failure:
                await self._failed(ids, channel, failure)
                return
        async with self._engine.begin() as conn:
            await repo.mark_sent(conn, ids, self._me)
        SENT.labels(channel).inc(len(ids))
        log.info("alert.sent", tenant=tenant, channel=channel, recipient=recipient, alerts=len(ids))

    async def _failed(self, ids: list[int], channel: str, failure: SendFailed) -> None:
        s = self._settings
        detail = {
            "reason": failure.reason,
            "retryable": failure.retryable,
            "retry_after": failure.retry_after,
            "max_attempts": s.alerts_max_attempts,
            "base": s.alerts_retry_base_seconds,
            "cap": s.alerts_retry_max_seconds,
        }
        async with self._engine.begin() as conn:
            counts = await repo.mark_failed(conn, ids, self._me, detail)
        RETRIED.labels(channel).inc(counts.get("pending", 0))
        FAILED.labels(channel).inc(counts.get("dead", 0))
        log.warning("alert.send_failed", channel=channel, reason=failure.reason, **counts)


def _find_target(config: AlertConfig | None, channel: str, recipient: str) -> Target | None:
    """The target a row names, if the tenant still has it (its URL and secret are only there)."""
    for target in targets_of(config) if config else []:
        if target.channel == channel and target.recipient == recipient:
            return target
    return None
