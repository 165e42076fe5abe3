"""The quarantine: a record of every refused webhook request (who, why; never the body)."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

import structlog
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncEngine

from paysync_core.db.schema import webhook_quarantine
from paysync_core.dead_letters import is_outage
from paysync_webhook_ingest.metrics import QUARANTINE_DROPPED, QUARANTINE_EXPIRED

log = structlog.get_logger()

#: Headers worth keeping to tell a misconfigured sender from an attacker; none carries a secret.
KEPT_HEADERS = ("content-type", "user-agent", "x-forwarded-for", "content-length")


class Quarantine:
    """Queues refusals and writes them in batches, so a flood of bad requests costs few round trips."""

    def __init__(self, engine: AsyncEngine, *, capacity: int = 10_000, batch: int = 500) -> None:
        self._engine = engine
        self._queue: asyncio.Queue[dict] = asyncio.Queue(maxsize=capacity)
        self._batch = batch

    def record(
        self,
        *,
        tenant: str,
        provider: str,
        reason: str,
        http_status: int,
        remote_addr: str | None,
        headers: Mapping[str, str],
        body: bytes | None,
        received_at: datetime,
    ) -> None:
        """Queue one refusal; if the queue is full the refusal is counted as dropped, not blocked on."""
        row = {
            "tenant": tenant[:63],
            "provider": provider,
            "reason": reason[:64],
            "http_status": http_status,
            "remote_addr": remote_addr,
            "headers": {k: headers[k][:200] for k in KEPT_HEADERS if k in headers},
            "body_sha256": hashlib.sha256(body).hexdigest() if body is not None else None,
            "body_bytes": len(body) if body is not None else int(headers.get("content-length", "0") or 0),
            "received_at": received_at,
        }
        try:
            self._queue.put_nowait(row)
        except asyncio.QueueFull:
            QUARANTINE_DROPPED.inc()

    async def run(self) -> None:
        """Write queued refusals until cancelled; on cancel, write what is left."""
        try:
            while True:
                rows = [await self._queue.get()]
                while len(rows) < self._batch and not self._queue.empty():
                    rows.append(self._queue.get_nowait())
                await self._write(rows)
        finally:
            rows = [self._queue.get_nowait() for _ in range(self._queue.qsize())]
            if rows:
                await self._write(rows)

    async def _write(self, rows: list[dict]) -> None:
        for attempt in range(3):
            try:
                async with self._engine.begin() as conn:
                    await conn.execute(webhook_quarantine.insert(), rows)
                return
            except Exception as exc:  # noqa: BLE001 - logged, counted; must not stop the webhook path
                if not is_outage(exc) or attempt == 2:
                    log.error("quarantine.write_failed", rows=len(rows), error=str(exc))
                    QUARANTINE_DROPPED.inc(len(rows))
                    return
                await asyncio.sleep(0.5 * (attempt + 1))


async def delete_expired(engine: AsyncEngine, older_than: timedelta, batch: int) -> int:
    """Delete quarantine rows received more than `older_than` ago, `batch` rows per transaction."""
    cutoff = datetime.now(UTC) - older_than
    total = 0
    while True:
        # Short transactions, each one index range on received_at: no long lock, no table scan.
        oldest = (
            select(webhook_quarantine.c.id)
            .where(webhook_quarantine.c.received_at < cutoff)
            .order_by(webhook_quarantine.c.received_at)
            .limit(batch)
        )
        async with engine.begin() as conn:
            result = await conn.execute(delete(webhook_quarantine).where(webhook_quarantine.c.id.in_(oldest)))
        deleted = result.rowcount
        total += deleted
        QUARANTINE_EXPIRED.inc(deleted)
        if deleted < batch:
            return total


async def expire_quarantine(engine: AsyncEngine, retention: timedelta, every: float, batch: int) -> None:
    """Every `every` seconds, delete quarantine rows past their retention (until cancelled)."""
    while True:
        try:
            deleted = await delete_expired(engine, retention, batch)
            if deleted:
                log.info("quarantine.expired", rows=deleted, retention_days=retention.days)
        except Exception as exc:  # housekeeping must not take the webhook path down
            if is_outage(exc):
                log.warning("quarantine.expiry_postponed", error=str(exc))
            else:
                log.error("quarantine.expiry_failed", exc_info=exc)
        await asyncio.sleep(every)
