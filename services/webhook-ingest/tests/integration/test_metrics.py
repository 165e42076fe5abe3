"""What an operator reads on /metrics: requests by tenant, gateway and outcome; produce latency; lag."""

from __future__ import annotations

import asyncio
import time

import pytest
from prometheus_client.parser import text_string_to_metric_families

from .conftest import stripe_body, stripe_headers

pytestmark = pytest.mark.integration


async def samples(ingest) -> dict[tuple[str, frozenset], float]:
    text = (await ingest.get("/metrics")).text
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


async def test_metrics_count_each_tenants_outcomes_time_the_produce_and_show_the_normalizer_lag(
    ingest, tenant
) -> None:
    before = await samples(ingest)
    url = f"/webhooks/{tenant.id}/stripe"
    for _ in range(3):
        body, _ = stripe_body()
        assert (
            await ingest.post(url, content=body, headers=stripe_headers(body, tenant.stripe_webhook_secret))
        ).status_code == 200
    body, _ = stripe_body()
    forged = await ingest.post(url, content=body, headers=stripe_headers(body, "whsec_not_the_tenants"))
    assert forged.status_code == 401
    assert (
        await ingest.post("/webhooks/t-nobody/stripe", content=body, headers=stripe_headers(body, "x"))
    ).status_code == 404

    after = await samples(ingest)

    def count(outcome: str, who: str = tenant.id) -> float:
        key = (
            "paysync_webhooks_total",
            frozenset({"tenant": who, "provider": "stripe", "outcome": outcome}.items()),
        )
        return after.get(key, 0.0) - before.get(key, 0.0)

    assert count("accepted") == 3
    assert count("authenticity_failed") == 1
    assert count("unknown_tenant", who="_unknown") == 1  # unknown names never become labels
    produced = ("paysync_webhook_produce_seconds_count", frozenset())
    assert after[produced] - before.get(produced, 0.0) == 3

    # The normalizer (running in this app) catches up; the lag gauge reports every partition at 0. It
    # joins a group of its own and reads the session's raw topic from its start, and the gauge is read
    # every 5 s: on a busy host the group join alone can take tens of seconds.
    deadline = time.monotonic() + 90
    while True:
        lag = {
            dict(k[1])["partition"]: v
            for k, v in (await samples(ingest)).items()
            if k[0] == "paysync_normalizer_lag_records"
        }
        if lag and all(v == 0 for v in lag.values()) or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.5)
    assert lag and all(v == 0 for v in lag.values())
