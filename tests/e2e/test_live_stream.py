"""A front end listening on /v1/stream sees its payment change, and only its own tenant's."""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid

import httpx
import pytest

from paysync_core.kafka import DurableProducer
from paysync_core.testing.builders.stripe import checkout_session, stripe_event
from paysync_dev.fixtures import TestTenant, create_tenant
from paysync_dev.live_stream import SseListener, publish_status_changes, status_change
from paysync_dev.service_fixtures import Service, wait_until
from paysync_dev.stack import ServiceProcess, free_port

from .test_stripe_payment_end_to_end import deliver, register

pytestmark = pytest.mark.e2e


def bearer(tenant: TestTenant) -> dict[str, str]:
    """What a front end sends: its tenant's API key."""
    return {"Authorization": f"Bearer {tenant.api_key}", "Accept": "text/event-stream"}


def listen(url: str, api_key: str, into: list[dict], ready: threading.Event, stop: threading.Event) -> None:
    """Collect `payment.status` events until stopped (what an EventSource in a browser would do)."""
    headers = {"Authorization": f"Bearer {api_key}", "Accept": "text/event-stream"}
    try:
        timeout = httpx.Timeout(5, read=30)
        with httpx.stream("GET", f"{url}/v1/stream", headers=headers, timeout=timeout) as response:
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            ready.set()
            event = {}
            for line in response.iter_lines():
                if line.startswith("event:"):
                    event["event"] = line.split(":", 1)[1].strip()
                elif line.startswith("id:"):
                    event["id"] = line.split(":", 1)[1].strip()
                elif line.startswith("data:"):
                    event["data"] = json.loads(line.split(":", 1)[1])
                elif not line and event:
                    into.append(event)
                    event = {}
                if stop.is_set():
                    return
    except httpx.HTTPError:
        if not stop.is_set():
            raise
        # The test is over and its stack is going away: the stream ending mid-chunk is expected.


def test_status_changes_arrive_live_for_the_right_tenant_only(
    stack, tenant, migrated_database, credentials_keys, gateway_sim
):
    other = create_tenant(migrated_database, credentials_keys, sim=gateway_sim)
    mine, theirs = [], []
    ready_mine, ready_theirs, stop = threading.Event(), threading.Event(), threading.Event()
    url = stack["api-gateway"].url
    threads = [
        threading.Thread(target=listen, args=(url, tenant.api_key, mine, ready_mine, stop), daemon=True),
        threading.Thread(target=listen, args=(url, other.api_key, theirs, ready_theirs, stop), daemon=True),
    ]
    for t in threads:
        t.start()
    assert ready_mine.wait(30) and ready_theirs.wait(30)

    session_id = f"cs_test_{uuid.uuid4().hex}"
    payment = register(stack, tenant, session_id, f"job-{uuid.uuid4().hex[:6]}")
    session = checkout_session(id=session_id, amount_total=12500, currency="usd")
    event = stripe_event("checkout.session.completed", session)
    assert deliver(stack, tenant, event).status_code == 200

    # A bound, not a wait: webhook → normalizer → projector → outbox → notifier on a loaded 2-core host.
    deadline = time.monotonic() + 60
    while not any(e.get("data", {}).get("payment_id") == payment["id"] for e in mine):
        assert time.monotonic() < deadline, f"no live event; got {mine}"
        time.sleep(0.05)
    stop.set()
    [change] = [e for e in mine if e.get("data", {}).get("payment_id") == payment["id"]]
    assert change["event"] == "payment.status"
    assert change["data"]["new_status"] == "succeeded" and change["data"]["old_status"] == "pending"
    assert change["id"]
    assert not any(e.get("data", {}).get("tenant") == tenant.id for e in theirs)


async def test_one_tenant_holding_200_streams_does_not_starve_another_tenants_stream(
    stack, tenant, migrated_database, credentials_keys, gateway_sim, kafka_topics
):
    hog = create_tenant(migrated_database, credentials_keys, sim=gateway_sim)
    url = f"{stack['api-gateway'].url}/v1/stream"
    limits = httpx.Limits(max_connections=None)
    api = Service(stack["api-gateway"], group_id="")
    open_before = api.metric("paysync_api_gateway_live_streams")  # other tests' streams, still closing
    producer = DurableProducer(kafka_topics, client_id="paysync-tests")
    await producer.start()
    async with httpx.AsyncClient(timeout=httpx.Timeout(30, read=None), limits=limits) as client:
        hogs = [SseListener(client, url, bearer(hog)) for _ in range(200)]
        mine = SseListener(client, url, bearer(tenant))
        try:
            for listener in hogs:
                listener.start()
            await asyncio.gather(*(h.opened.wait() for h in hogs))
            refused = [h for h in hogs if h.status_code != 200]
            assert refused, "200 streams of one tenant were all let through"
            for h in refused:  # answered at once, in the API's error shape, with when to try again
                assert h.status_code == 429
                assert h.error["error"] == "too_many_streams" and h.error["message"]
                assert int(h.response_headers["retry-after"]) > 0

            mine.start()
            await asyncio.wait_for(mine.opened.wait(), 10)
            assert mine.status_code == 200
            let_through = sum(h.status_code == 200 for h in hogs)
            assert api.metric("paysync_api_gateway_live_streams") >= let_through + 1

            async def a_first_event_arrived() -> bool:  # the notifier reads from the latest offset
                await publish_status_changes(producer, [status_change(tenant.id)])
                return bool(mine.payment_ids())

            await wait_until(a_first_event_arrived, 30, "the stream's first event", every=0.5)
            change = status_change(tenant.id)
            started = time.monotonic()
            await publish_status_changes(producer, [change])

            async def it_arrived() -> bool:
                return change.payment_id in mine.payment_ids()

            await wait_until(it_arrived, 10, "the other tenant's event", every=0.01)
            assert time.monotonic() - started < 1.0  # the bound the issue sets: within a second
        finally:
            await producer.stop()
            for listener in [*hogs, mine]:
                await listener.stop()

    async def every_stream_given_back() -> bool:  # else a tenant would be locked out for good
        return api.metric("paysync_api_gateway_live_streams") <= open_before

    await wait_until(every_stream_given_back, 30, "api-gateway to release the closed streams' slots")


def test_api_gateway_readiness_reports_the_notifier(stack):
    ready = httpx.get(f"{stack['api-gateway'].url}/readyz", timeout=5)
    assert ready.status_code == 200
    assert ready.json()["status"] == "ready" and ready.json()["checks"]["notifier"] == "ok"


async def test_a_replica_at_its_total_stream_cap_answers_503_at_once(
    stack, tenant, migrated_database, credentials_keys, gateway_sim, tmp_path
):
    notifier = stack["notifier"]
    env = {**notifier.env, "PAYSYNC_API_GATEWAY_STREAM_MAX_TOTAL": "2"}  # the stack's wiring and token
    api = ServiceProcess("api-gateway", free_port(), env, tmp_path / "api-gateway.log")
    api.start()
    others = [create_tenant(migrated_database, credentials_keys, sim=gateway_sim) for _ in range(2)]
    tenants = [tenant, *others]  # each under its own cap: what refuses the third is the replica's
    try:
        await asyncio.to_thread(api.wait_ready)
        async with httpx.AsyncClient(timeout=httpx.Timeout(10, read=None)) as client:
            listeners = [SseListener(client, f"{api.url}/v1/stream", bearer(t)) for t in tenants]
            try:
                for listener in listeners[:2]:
                    listener.start()
                    await asyncio.wait_for(listener.opened.wait(), 10)
                    assert listener.status_code == 200
                third = listeners[2].start()
                await asyncio.wait_for(third.opened.wait(), 5)
                assert third.status_code == 503, third.error
                assert third.error["error"] == "stream_unavailable"
                assert int(third.response_headers["retry-after"]) > 0
            finally:
                for listener in listeners:
                    await listener.stop()
    finally:
        api.stop()
