"""The notifier's internal live stream, over HTTP against the notifier as its own process."""

from __future__ import annotations

import asyncio
import secrets
import socket
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import httpx
import pytest

from paysync_core.contracts import PaymentStatusChanged
from paysync_core.contracts.observation import Evidence
from paysync_core.kafka import DurableProducer
from paysync_dev.live_stream import SseListener, publish_status_changes, status_change
from paysync_dev.service_fixtures import Service, service_env, unique, wait_until
from paysync_dev.stack import ServiceProcess, free_port

pytestmark = pytest.mark.integration

#: Small, so a client that stops reading fills its queue after a modest number of events.
QUEUE = 20


@dataclass
class Notifier:
    """A running notifier and the internal token it accepts."""

    service: Service
    token: str

    @property
    def url(self) -> str:
        return self.service.process.url

    def stream_url(self, tenant: str) -> str:
        return f"{self.url}/internal/stream/{tenant}"

    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


@pytest.fixture(scope="module")
def notifier_process(
    kafka_topics: str, migrated_database: str, credentials_keys: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Notifier]:
    """A notifier with an internal token and a small subscriber queue, ready."""
    token = secrets.token_urlsafe(32)
    env = {
        **service_env(kafka_topics, migrated_database, credentials_keys),
        "PAYSYNC_INTERNAL_TOKEN": token,
        "PAYSYNC_NOTIFIER_SUBSCRIBER_QUEUE": str(QUEUE),
        # Long, so that what cuts a stalled client off here is its full queue, not its blocked send.
        "PAYSYNC_NOTIFIER_SEND_TIMEOUT_SECONDS": "600",
    }
    log_path = tmp_path_factory.mktemp("notifier") / "notifier.log"
    process = ServiceProcess("notifier", free_port(), env, log_path)
    process.start()
    try:
        process.wait_ready()
        yield Notifier(Service(process, "paysync-notifier"), token)
    finally:
        process.stop()


@pytest.fixture
async def producer(kafka_topics: str) -> AsyncIterator[DurableProducer]:
    """A producer of status changes, as the projector's relay."""
    producer = DurableProducer(kafka_topics, client_id="paysync-tests")
    await producer.start()
    yield producer
    await producer.stop()


@pytest.fixture
async def notifier(notifier_process: Notifier, producer: DurableProducer) -> Notifier:
    """The notifier once its live consumer has its partitions (it reads from the latest offset)."""
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
