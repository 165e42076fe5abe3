"""A front end listening on /v1/stream sees its payment change, and only its own tenant's."""

from __future__ import annotations

import json
import threading
import time
import uuid

import httpx
import pytest

from paysync_core.testing.builders.stripe import checkout_session, stripe_event
from paysync_dev.fixtures import create_tenant

from .test_stripe_payment_end_to_end import deliver, register

pytestmark = pytest.mark.e2e


def listen(url: str, api_key: str, into: list[dict], ready: threading.Event, stop: threading.Event) -> None:
    """Collect `payment.status` events until stopped (what an EventSource in a browser would do)."""
    headers = {"Authorization": f"Bearer {api_key}", "Accept": "text/event-stream"}
    try:
        with httpx.stream("GET", f"{url}/v1/stream", headers=headers, timeout=httpx.Timeout(5, read=30)) as response:
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
    threads = [threading.Thread(target=listen, args=(url, tenant.api_key, mine, ready_mine, stop), daemon=True),
               threading.Thread(target=listen, args=(url, other.api_key, theirs, ready_theirs, stop), daemon=True)]
    for t in threads:
        t.start()
    assert ready_mine.wait(10) and ready_theirs.wait(10)

    session_id = f"cs_test_{uuid.uuid4().hex}"
    payment = register(stack, tenant, session_id, f"job-{uuid.uuid4().hex[:6]}")
    event = stripe_event("checkout.session.completed", checkout_session(id=session_id, amount_total=12500, currency="usd"))
    assert deliver(stack, tenant, event).status_code == 200

    deadline = time.monotonic() + 15
    while not any(e.get("data", {}).get("payment_id") == payment["id"] for e in mine):
        assert time.monotonic() < deadline, f"no live event; got {mine}"
        time.sleep(0.05)
    stop.set()
    [change] = [e for e in mine if e.get("data", {}).get("payment_id") == payment["id"]]
    assert change["event"] == "payment.status"
    assert change["data"]["new_status"] == "succeeded" and change["data"]["old_status"] == "pending"
    assert change["id"]
    assert not any(e.get("data", {}).get("tenant") == tenant.id for e in theirs)
