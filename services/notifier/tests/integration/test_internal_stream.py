"""The notifier's internal live stream, over HTTP against the notifier as its own process."""

from __future__ import annotations

import asyncio
import secrets
import socket
from datetime import UTC, datetime

import httpx
import pytest

from paysync_core import topics
from paysync_core.contracts import Alert, AlertKind, PaymentStatusChanged
from paysync_core.contracts.observation import Evidence
from paysync_core.kafka import DurableProducer
from paysync_dev.live_stream import SseListener, publish_status_changes, status_change
from paysync_dev.service_fixtures import publish, service_env, unique, wait_until
from paysync_dev.stack import ServiceProcess, free_port

from .conftest import QUEUE, Notifier

pytestmark = pytest.mark.integration


@pytest.fixture
async def notifier(notifier_process: Notifier, producer: DurableProducer) -> Notifier:
    """The notifier, once an event published now reaches a stream opened now."""
    tenant = unique("warmup")
    async with httpx.AsyncClient(timeout=httpx.Timeout(5, read=None)) as client:
        probe = SseListener(client, notifier_process.stream_url(tenant), notifier_process.auth()).start()

        async def probe_arrived() -> bool:
            await publish_status_changes(producer, [status_change(tenant)])
            return bool(probe.events)

        await wait_until(probe_arrived, 60, "the notifier's live consumer to receive", every=0.5)
        await probe.stop()
    return notifier_process


async def test_the_internal_stream_refuses_a_caller_without_the_internal_token(notifier: Notifier) -> None:
    tenant = unique("tenant")
    async with httpx.AsyncClient(timeout=httpx.Timeout(5, read=None)) as client:
        wrong = ({}, {"Authorization": "Bearer a-guess"}, {"Authorization": f"Bearer {notifier.token}x"})
        for headers in wrong:
            async with client.stream("GET", notifier.stream_url(tenant), headers=headers) as response:
                assert response.status_code == 401, headers
                assert "text/event-stream" not in response.headers.get("content-type", "")
        async with client.stream("GET", notifier.stream_url(tenant), headers=notifier.auth()) as response:
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")


def bulky_change(tenant: str) -> PaymentStatusChanged:
    """A status change of about 4 kB, so a stalled client's socket buffers fill with fewer events."""
    return status_change(tenant, evidence=Evidence(detail="x" * 4000))


async def test_a_notifier_without_an_internal_token_refuses_internal_requests(
    kafka_topics: str, migrated_database: str, credentials_keys: str, tmp_path
) -> None:
    env = {**service_env(kafka_topics, migrated_database, credentials_keys), "PAYSYNC_INTERNAL_TOKEN": ""}
    process = ServiceProcess("notifier", free_port(), env, tmp_path / "notifier.log")
    process.start()
    try:
        await asyncio.to_thread(process.wait_ready)
        async with httpx.AsyncClient(timeout=httpx.Timeout(5, read=None)) as client:
            for headers in ({}, {"Authorization": "Bearer anything"}):
                url = f"{process.url}/internal/stream/{unique('tenant')}"
                async with client.stream("GET", url, headers=headers) as response:
                    assert response.status_code == 403, headers
                    assert "no internal token" in (await response.aread()).decode()
    finally:
        process.stop()


def open_and_never_read(url: str, path: str, token: str) -> socket.socket:
    """A client that sends its request, reads until the stream has opened, then never reads again."""
    host, port = url.removeprefix("http://").split(":")
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # small, so the backlog moves upstream
    sock.connect((host, int(port)))
    sock.settimeout(10)
    sock.sendall(
        f"GET {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\n"
        "Accept: text/event-stream\r\n\r\n".encode()
    )
    received = b""
    while b"paysync live status" not in received:  # subscribed from here on
        chunk = sock.recv(4096)
        assert chunk, f"the stream closed before it opened: {received!r}"
        received += chunk
    return sock


async def test_a_client_that_never_reads_costs_no_other_client_an_event(
    notifier: Notifier, producer: DurableProducer
) -> None:
    tenant = unique("tenant")
    stuck = open_and_never_read(notifier.url, f"/internal/stream/{tenant}", notifier.token)
    limits = httpx.Limits(max_connections=None)
    async with httpx.AsyncClient(timeout=httpx.Timeout(5, read=None), limits=limits) as client:
        readers = [SseListener(client, notifier.stream_url(tenant), notifier.auth()) for _ in range(50)]
        try:
            for reader in readers:
                reader.start()
            await asyncio.gather(*(r.opened.wait() for r in readers))
            sent: set[str] = set()

            async def every_reader_has_all() -> bool:
                return all(r.payment_ids() >= sent for r in readers)

            async def publish_batch() -> None:
                # Smaller than the queue: a reader that keeps up never has a full one.
                batch = [bulky_change(tenant) for _ in range(QUEUE // 2)]
                await publish_status_changes(producer, batch)
                sent.update(c.payment_id for c in batch)
                await wait_until(every_reader_has_all, 30, "every reader to get every event", every=0.02)

            # The client that never reads fills its socket buffers, then its queue; then it is dropped.
            cut_off_before = notifier.service.metric("paysync_notifier_stream_cut_off_total")
            for _ in range(400):
                await publish_batch()
                if notifier.service.metric("paysync_notifier_stream_cut_off_total") > cut_off_before:
                    break
            else:
                raise AssertionError("the client that never reads was never cut off")
            await publish_batch()  # and after it was dropped, the others still get everything
        finally:
            for reader in readers:
                await reader.stop()
    # When the stalled client reads again, its stream tells it to resync, then ends.
    stuck.settimeout(30)
    tail = b""
    while b"event: stream.resync" not in tail and (chunk := stuck.recv(65536)):
        tail += chunk
    stuck.close()
    assert b"event: stream.resync" in tail


async def test_ping_answers_only_a_caller_with_the_internal_token(notifier: Notifier) -> None:
    async with httpx.AsyncClient(timeout=5) as client:
        url = f"{notifier.url}/internal/ping"
        assert (await client.get(url)).status_code == 401
        assert (await client.get(url, headers={"Authorization": "Bearer a-guess"})).status_code == 401
        answer = await client.get(url, headers=notifier.auth())
        assert answer.status_code == 200 and answer.json() == {"status": "ok"}


async def test_a_stream_carries_only_its_tenants_changes_and_resumes_after_last_event_id(
    notifier: Notifier, producer: DurableProducer
) -> None:
    shop, other = unique("tenant"), unique("tenant")
    changes = [status_change(shop) for _ in range(3)]
    async with httpx.AsyncClient(timeout=httpx.Timeout(5, read=None)) as client:
        mine = SseListener(client, notifier.stream_url(shop), notifier.auth()).start()
        theirs = SseListener(client, notifier.stream_url(other), notifier.auth()).start()
        await asyncio.gather(mine.opened.wait(), theirs.opened.wait())
        await publish_status_changes(producer, [*changes, status_change(other)])

        async def both_have_theirs() -> bool:
            return len(mine.events) == 3 and len(theirs.events) == 1

        await wait_until(both_have_theirs, 30, "each stream to get its tenant's changes")
        await asyncio.gather(mine.stop(), theirs.stop())
        # Changes of different payments have different keys, so they may arrive in any order.
        assert mine.payment_ids() == {c.payment_id for c in changes}
        assert {e["data"]["tenant"] for e in mine.events} == {shop}
        assert [e["event"] for e in mine.events] == ["payment.status"] * 3
        assert theirs.payment_ids().isdisjoint(mine.payment_ids())

        # Reconnecting after the first event replays the two it missed, from the notifier's buffer.
        headers = notifier.auth() | {"Last-Event-ID": mine.events[0]["id"]}
        resumed = SseListener(client, notifier.stream_url(shop), headers).start()

        async def replayed() -> bool:
            return len(resumed.events) >= 2

        await wait_until(replayed, 30, "the resumed stream to replay what it missed")
        await resumed.stop()
    assert [e["id"] for e in resumed.events] == [e["id"] for e in mine.events[1:]]


async def test_an_alert_on_the_alerts_topic_is_received_and_logged(
    notifier: Notifier, kafka_topics: str
) -> None:
    tenant = unique("tenant")
    alert = Alert(
        alert_id=f"al_{secrets.token_hex(8)}",
        kind=AlertKind.AMOUNT_MISMATCH,
        tenant=tenant,
        detail="paid 4000 USD, expected 5000 USD",
        raised_at=datetime.now(UTC),
    )
    await publish(kafka_topics, topics.ALERTS.name, tenant.encode(), alert.to_bytes())
    log = notifier.service.process.log_path

    async def logged() -> bool:
        return any("alert.received" in line and tenant in line for line in log.read_text().splitlines())

    await wait_until(logged, 60, "the notifier to log the alert", every=0.5)
