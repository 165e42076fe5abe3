"""The quarantine keeps refused requests for a while, not forever (webhook-ingest as a process)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from paysync_core.db.schema import webhook_quarantine
from paysync_dev.service_fixtures import fetch, unique, wait_until

pytestmark = pytest.mark.integration


def refusal(tenant: str, age: timedelta) -> dict:
    return {
        "tenant": tenant,
        "provider": "stripe",
        "reason": "authenticity_failed:bad_signature",
        "http_status": 401,
        "remote_addr": "203.0.113.7",
        "headers": {},
        "body_sha256": None,
        "body_bytes": 10,
        "received_at": datetime.now(UTC) - age,
    }


async def test_records_past_the_retention_are_deleted_in_batches_and_newer_ones_kept(
    webhook_ingest, engine
) -> None:
    tenant = unique("t-quarantine")
    ages = [timedelta(days=d) for d in (400, 45, 31, 30.5, 30.1)] + [timedelta(days=29.9), timedelta(0)]
    async with engine.begin() as conn:
        await conn.execute(webhook_quarantine.insert(), [refusal(tenant, age) for age in ages])

    async def only_recent_left() -> bool:
        rows = await fetch(engine, select(func.count()).where(webhook_quarantine.c.tenant == tenant))
        return rows[0][0] == 2

    # The service deletes 2 rows per transaction (fixture setting): five old rows take three batches.
    await wait_until(only_recent_left, 30, "rows older than 30 days to be deleted")
    kept = await fetch(engine, select(webhook_quarantine).where(webhook_quarantine.c.tenant == tenant))
    assert all(datetime.now(UTC) - row.received_at < timedelta(days=30) for row in kept)
