"""Where webhook-ingest's CPU per webhook goes, part by part, outside the HTTP server.

    .venv/bin/python bench/webhook_ingest/breakdown.py

Measures, in this process (CPU time, not wall time, so other load on the machine matters less):
the checks `accept_webhook` makes before publishing (JSON, HMAC, record key, raw record), with a
publisher that does nothing; then the same with the real producer (acks=all, idempotent) against a
broker of its own, `concurrency` webhooks in flight as under load, and the broker's CPU for it.
Together with the bare endpoint's CPU per request (`make bench-ingest`) this accounts for the
cost of safety.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from datetime import UTC, datetime

import typer

from paysync_core import topics
from paysync_core.contracts import Provider
from paysync_core.credentials import GatewayCredentials, StripeCredentials
from paysync_core.kafka import DurableProducer, provision_topics
from paysync_core.providers import sign_stripe
from paysync_core.providers.base import WebhookRequest
from paysync_core.testing.builders import to_body
from paysync_core.testing.builders.stripe import checkout_session, stripe_event
from paysync_dev import kafka, paths
from paysync_dev.procstat import cpu_seconds
from paysync_webhook_ingest.service import accept_webhook

SECRET = "whsec_breakdown"


def webhooks(count: int) -> list[WebhookRequest]:
    """Distinct, correctly signed checkout.session.completed webhooks, as the server hands them over."""
    now = int(time.time())
    out = []
    for _ in range(count):
        body = to_body(
            stripe_event(
                "checkout.session.completed",
                checkout_session(id=f"cs_test_{uuid.uuid4().hex}", amount_total=2000),
            )
        )
        headers = {"stripe-signature": sign_stripe(body, SECRET, now), "content-type": "application/json"}
        out.append(
            WebhookRequest(
                tenant="t-bench",
                body=body,
                headers=headers,
                remote_addr="127.0.0.1",
                received_at=datetime.now(UTC),
            )
        )
    return out


async def per_webhook_cpu_ms(requests: list[WebhookRequest], publish, concurrency: int) -> float:
    """Process CPU milliseconds per accepted webhook, `concurrency` of them in flight."""
    credentials = GatewayCredentials(
        stripe=StripeCredentials(secret_key="sk_test_x", webhook_secrets=(SECRET,))
    )
    queue = iter(requests)

    async def worker() -> None:
        for request in queue:
            await accept_webhook(request, Provider.STRIPE, credentials, publish, timeout=10)

    started = time.process_time()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return 1000 * (time.process_time() - started) / len(requests)


def main(count: int = typer.Option(20_000), concurrency: int = typer.Option(32)) -> None:
    """Print the CPU per webhook of the checks alone, and of checks plus the durable publish."""
    broker = kafka.KafkaProcess.on_free_ports(paths.local_dir() / "bench" / f"kafka-{uuid.uuid4().hex[:6]}")
    broker.start()
    try:
        asyncio.run(provision_topics(broker.bootstrap, specs=[topics.WEBHOOKS_RAW]))

        async def run() -> dict[str, float]:
            async def nowhere(key: bytes, value: bytes) -> None:
                return None

            checks = await per_webhook_cpu_ms(webhooks(count), nowhere, concurrency)
            producer = DurableProducer(broker.bootstrap, client_id="breakdown")
            await producer.start()
            try:

                async def publish(key: bytes, value: bytes) -> object:
                    return await producer.send(topics.WEBHOOKS_RAW.name, key, value)

                await per_webhook_cpu_ms(webhooks(2_000), publish, concurrency)  # warm-up
                broker_before = cpu_seconds(broker.pid())
                durable = await per_webhook_cpu_ms(webhooks(count), publish, concurrency)
                broker_ms = 1000 * (cpu_seconds(broker.pid()) - broker_before) / count
            finally:
                await producer.stop()
            return {
                "checks_ms": round(checks, 4),
                "checks_and_publish_ms": round(durable, 4),
                "publish_ms": round(durable - checks, 4),
                "broker_ms": round(broker_ms, 4),
            }

        print(json.dumps(asyncio.run(run()), indent=2))
    finally:
        broker.stop()


if __name__ == "__main__":
    typer.run(main)
