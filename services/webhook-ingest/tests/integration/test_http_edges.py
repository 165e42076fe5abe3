"""The server's edges, over raw sockets against webhook-ingest as its own process.

Every service is served by `paysync_core.web.serve`, so these limits hold for all of them; the
fixture sets the header deadline and keep-alive timeout to 1 s (`QUICK_SERVER_LIMITS`).
"""

from __future__ import annotations

import contextlib
import select
import socket
import time

import httpx
import pytest

from paysync_dev.stack import ServiceProcess

pytestmark = pytest.mark.integration

#: Far above the 1 s limits the fixture sets: only a connection that is never closed misses it.
BOUND = 20.0


def connect(service: ServiceProcess) -> socket.socket:
    return socket.create_connection(("127.0.0.1", service.port), timeout=BOUND)


def read_until_closed(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection; fails if it stays open past BOUND."""
    received, deadline = b"", time.monotonic() + BOUND
    while time.monotonic() < deadline:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            break
        except ConnectionResetError:
            return received
        if not chunk:
            return received
        received += chunk
    raise AssertionError(f"the server kept the connection open for {BOUND}s (got {received[:200]!r})")


def test_a_connection_that_never_sends_a_request_is_closed(webhook_ingest) -> None:
    with connect(webhook_ingest) as sock:
        assert read_until_closed(sock) == b""


def test_headers_sent_a_byte_at_a_time_are_cut_off(webhook_ingest) -> None:
    """Slow loris: the request keeps coming, but its headers are not complete by the deadline."""
    with connect(webhook_ingest) as sock:
        sock.sendall(b"POST /webhooks/t-x/stripe HTTP/1.1\r\nHost: ingest\r\n")
        deadline = time.monotonic() + BOUND
        while time.monotonic() < deadline:
            try:
                sock.sendall(b"X-Slow: a\r\n")
            except (BrokenPipeError, ConnectionResetError):
                return
            readable, _, _ = select.select([sock], [], [], 0.2)
            if readable:
                assert read_until_closed(sock) == b""
                return
        raise AssertionError(f"a request whose headers never end was kept for {BOUND}s")


@pytest.mark.parametrize("header_bytes", [20 * 1024, 1024 * 1024])
def test_headers_over_the_cap_get_431(webhook_ingest, header_bytes: int) -> None:
    with connect(webhook_ingest) as sock:
        request = b"GET /healthz HTTP/1.1\r\nHost: ingest\r\nX-Big: " + b"a" * header_bytes + b"\r\n\r\n"
        # The server may close while the rest is still being sent: its answer was written first.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall(request)
        answer = read_until_closed(sock)
    assert answer.startswith(b"HTTP/1.1 431 "), answer[:200]
    assert b'"error":"headers_too_large"' in answer


def test_ordinary_headers_and_a_slow_body_after_them_are_served(webhook_ingest) -> None:
    """The deadline is on headers only: what follows them (a body, a long-lived stream) may take longer."""
    assert httpx.get(f"{webhook_ingest.url}/healthz", headers={"X-Big": "a" * 8000}).status_code == 200
    with connect(webhook_ingest) as sock:
        body = b'{"not": "a webhook"}'
        head = b"POST /webhooks/t-nobody/stripe HTTP/1.1\r\nHost: i\r\nContent-Type: application/json\r\n"
        sock.sendall(head + b"Content-Length: %d\r\n\r\n" % len(body) + body[:5])
        readable, _, _ = select.select([sock], [], [], 2.5)  # past the 1 s header deadline
        assert readable == [], "the server answered or closed before the body was complete"
        sock.sendall(body[5:])
        sock.settimeout(BOUND)
        assert sock.recv(65536).startswith(b"HTTP/1.1 404 ")


def test_an_idle_keep_alive_connection_is_closed(webhook_ingest) -> None:
    with connect(webhook_ingest) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: ingest\r\n\r\n")
        answer = read_until_closed(sock)
    assert answer.startswith(b"HTTP/1.1 200 ")


def test_metrics_are_served_on_their_own_port_only(webhook_ingest) -> None:
    metrics_port = webhook_ingest.env["PAYSYNC_HTTP_METRICS_PORT"]
    assert httpx.get(f"{webhook_ingest.url}/metrics").status_code == 404
    metrics = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics")
    assert metrics.status_code == 200 and "paysync_webhooks_total" in metrics.text
