"""webhook-ingest in-process against the real broker and database."""

from __future__ import annotations

import asyncio
import time
import uuid

import httpx
import pytest
from pydantic import ValidationError
from sqlalchemy import select

from paysync_core import topics
from paysync_core.contracts import RawWebhook
from paysync_core.db.engine import make_engine
from paysync_core.db.schema import webhook_quarantine
from paysync_core.providers import sign_paystack, sign_stripe
from paysync_core.settings import CommonSettings
from paysync_core.testing.builders import to_body
from paysync_core.testing.builders.stripe import checkout_session, stripe_event
from paysync_dev.topic_reader import read_topic
from paysync_webhook_ingest.app import create_app
from paysync_webhook_ingest.settings import WebhookIngestSettings


@pytest.fixture
async def ingest(kafka_topics: str, migrated_database: str, credentials_keys: str):
    """An httpx client talking to a live webhook-ingest app (normalizer included)."""
    settings = WebhookIngestSettings(
        common=CommonSettings(
            kafka_bootstrap=kafka_topics,
            database_url=migrated_database,
            credentials_keys=credentials_keys,
            log_json=False,
        ),
        max_body_bytes=4096,
        auth_failure_rate=0.5,
        auth_failure_burst=5,
        normalizer_group=f"normalizer-{uuid.uuid4().hex[:8]}",
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, client=("203.0.113.7", 4242))
        async with httpx.AsyncClient(transport=transport, base_url="http://ingest") as client:
            yield client


def stripe_body(marker: str | None = None) -> tuple[bytes, str]:
    """A checkout.session.completed body whose session id is unique (the marker)."""
    session_id = marker or f"cs_test_{uuid.uuid4().hex}"
    return to_body(stripe_event("checkout.session.completed", checkout_session(id=session_id))), session_id


def stripe_headers(body: bytes, secret: str, at: int | None = None) -> dict[str, str]:
    return {
        "Stripe-Signature": sign_stripe(body, secret, at or int(time.time())),
        "Content-Type": "application/json",
    }


def paystack_headers(body: bytes, secret: str) -> dict[str, str]:
    return {"x-paystack-signature": sign_paystack(body, secret), "Content-Type": "application/json"}


async def raw_records_mentioning(bootstrap: str, marker: str) -> list[RawWebhook]:
    records = await read_topic(bootstrap, topics.WEBHOOKS_RAW.name)
    raws = []
    for record in records:
        try:
            raws.append(RawWebhook.from_bytes(record.value))
        except ValidationError:
            continue  # the dead-letter test puts a record that is not a raw webhook on the topic
    return [r for r in raws if marker.encode() in r.body]


async def quarantined(url: str, tenant: str, want: int, timeout: float = 30.0) -> list:
    """The tenant's quarantine rows, once at least `want` are written (they are written in batches, by a
    task of their own after the refusal is answered: seconds later on a busy host)."""
    engine = make_engine(url, pool_size=1)
    try:
        deadline = time.monotonic() + timeout
        while True:
            async with engine.connect() as conn:
                rows = list(
                    await conn.execute(
                        select(webhook_quarantine)
                        .where(webhook_quarantine.c.tenant == tenant)
                        .order_by(webhook_quarantine.c.id)
                    )
                )
            if len(rows) >= want or time.monotonic() > deadline:
                return rows
            await asyncio.sleep(0.1)
    finally:
        await engine.dispose()
