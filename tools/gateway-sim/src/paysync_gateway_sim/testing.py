"""pytest plugin: `gateway_sim`, a simulator process for the session, and `webhook_receiver`.

Register with `-p paysync_gateway_sim.testing`. Set PAYSYNC_GATEWAY_SIM_URL to use a simulator
that is already running instead of starting one.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from paysync_gateway_sim.client import URL_ENV, SimulatorClient
from paysync_gateway_sim.process import SimulatorProcess, free_port

__all__ = ["SimulatorProcess", "WebhookReceiver", "free_port", "gateway_sim", "webhook_receiver"]


@pytest.fixture(scope="session")
def gateway_sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimulatorClient]:
    """A simulator for the whole session (started unless PAYSYNC_GATEWAY_SIM_URL names one).

    Tests share it: each should create its own accounts, and not reset it.
    """
    url = os.environ.get(URL_ENV)
    if url:
        with SimulatorClient(url) as client:
            client.health()
            yield client
        return
    process = SimulatorProcess.start(log_path=tmp_path_factory.mktemp("gateway-sim") / "simulator.log")
    try:
        with SimulatorClient(process.url) as client:
            yield client
    finally:
        process.stop()


# --- a webhook receiver to point accounts at ------------------------------------------------------


@dataclass(frozen=True)
class ReceivedWebhook:
    """One request as the receiver saw it (header names lower-cased)."""

    path: str
    headers: dict[str, str]
    body: bytes
    received_at: float


@dataclass
class WebhookReceiver:
    """An HTTP server on 127.0.0.1 that records every POST and answers 200 (or queued statuses)."""

    server: ThreadingHTTPServer = field(repr=False)
    received: list[ReceivedWebhook] = field(default_factory=list)
    answers: list[int] = field(default_factory=list)  # statuses to answer next, then 200
    _cond: threading.Condition = field(default_factory=threading.Condition, repr=False)

    @classmethod
    def start(cls) -> WebhookReceiver:
        """Listen on a free port in a background thread."""
        receiver: WebhookReceiver

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                status = receiver._record(ReceivedWebhook(
                    self.path, {k.lower(): v for k, v in self.headers.items()}, body, time.time()))
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(b'{"ResultCode": 0, "ResultDesc": "Accepted"}')

            def log_message(self, *_: object) -> None:
                return

        receiver = cls(ThreadingHTTPServer(("127.0.0.1", 0), Handler))
        threading.Thread(target=receiver.server.serve_forever, kwargs={"poll_interval": 0.05},
                         daemon=True, name="webhook-receiver").start()
        return receiver

    def url(self, path: str = "/hooks") -> str:
        """A URL on this receiver."""
        return f"http://127.0.0.1:{self.server.server_address[1]}{path}"

    def _record(self, webhook: ReceivedWebhook) -> int:
        with self._cond:
            self.received.append(webhook)
            self._cond.notify_all()
            return self.answers.pop(0) if self.answers else 200

    def on(self, path: str) -> list[ReceivedWebhook]:
        """What arrived at one path, in arrival order."""
        with self._cond:
            return [w for w in self.received if w.path == path]

    def wait_for(self, path: str, count: int, timeout: float = 10.0) -> list[ReceivedWebhook]:
        """Wait until `count` requests arrived at `path`; TimeoutError otherwise."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while len(found := [w for w in self.received if w.path == path]) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"{len(found)} of {count} webhooks arrived at {path}")
                self._cond.wait(left)
            return found

    def close(self) -> None:
        """Stop listening."""
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def webhook_receiver() -> Iterator[WebhookReceiver]:
    """A receiver for one test; give each account its own path (`receiver.url("/acct")`)."""
    receiver = WebhookReceiver.start()
    try:
        yield receiver
    finally:
        receiver.close()
