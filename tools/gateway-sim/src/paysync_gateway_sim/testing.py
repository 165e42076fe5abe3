"""pytest plugin: `gateway_sim`, a simulator process for the session, and `webhook_receiver`.

Register with `-p paysync_gateway_sim.testing`. Set PAYSYNC_GATEWAY_SIM_URL to use a simulator
that is already running instead of starting one.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, TypeVar

import pytest

from paysync_gateway_sim.client import URL_ENV, SimulatorClient
from paysync_gateway_sim.process import SimulatorProcess, free_port

_S = TypeVar("_S", bound="_LocalServer")

__all__ = [
    "ScriptedGateway",
    "SimulatorProcess",
    "WebhookReceiver",
    "free_port",
    "gateway_sim",
    "scripted_gateway",
    "webhook_receiver",
]


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


@dataclass
class _LocalServer:
    """An http.server on 127.0.0.1 serving from a background thread until `close`."""

    server: ThreadingHTTPServer = field(repr=False)

    def _serve(self, name: str) -> None:
        threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True, name=name
        ).start()

    def close(self) -> None:
        """Stop listening."""
        self.server.shutdown()
        self.server.server_close()


@contextmanager
def _running(server: _S) -> Iterator[_S]:
    try:
        yield server
    finally:
        server.close()


@dataclass(frozen=True)
class ReceivedWebhook:
    """One request as the receiver saw it (header names lower-cased)."""

    path: str
    headers: dict[str, str]
    body: bytes
    received_at: float


@dataclass
class WebhookReceiver(_LocalServer):
    """An HTTP server on 127.0.0.1 that records every POST and answers 200 (or queued statuses)."""

    received: list[ReceivedWebhook] = field(default_factory=list)
    answers: list[int] = field(default_factory=list)  # statuses to answer next, then 200
    _cond: threading.Condition = field(default_factory=threading.Condition, repr=False)

    @classmethod
    def start(cls) -> WebhookReceiver:
        """Listen on a free port in a background thread."""
        receiver: WebhookReceiver

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # http.server's naming
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                status = receiver._record(
                    ReceivedWebhook(
                        self.path, {k.lower(): v for k, v in self.headers.items()}, body, time.time()
                    )
                )
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(b'{"ResultCode": 0, "ResultDesc": "Accepted"}')

            def log_message(self, *_: object) -> None:
                return

        receiver = cls(ThreadingHTTPServer(("127.0.0.1", 0), Handler))
        receiver._serve("webhook-receiver")
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


@pytest.fixture
def webhook_receiver() -> Iterator[WebhookReceiver]:
    """A receiver for one test; give each account its own path (`receiver.url("/acct")`)."""
    with _running(WebhookReceiver.start()) as receiver:
        yield receiver


# --- a gateway that answers exactly what a test scripts ------------------------------------------


@dataclass(frozen=True)
class ScriptedAnswer:
    """One canned HTTP answer: status, JSON body (or raw bytes) and headers."""

    status: int
    body: Any
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class ScriptedGateway(_LocalServer):
    """An HTTP server on 127.0.0.1 answering each (method, path) with what the test scripted.

    For answers the simulator never gives on purpose (an independent mock's, a proxy's), so a
    client is tested over real HTTP with nothing of ours faked. Unscripted paths get a bare 404.
    """

    answers: dict[tuple[str, str], list[ScriptedAnswer]] = field(default_factory=dict)
    requests: list[tuple[str, str, bytes]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @classmethod
    def start(cls) -> ScriptedGateway:
        """Listen on a free port in a background thread."""
        gateway: ScriptedGateway

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                answer = gateway._next(self.command, self.path, body)
                raw = answer.body if isinstance(answer.body, bytes) else json.dumps(answer.body).encode()
                self.send_response(answer.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                for name, value in answer.headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(raw)

            do_GET = do_POST = _answer  # http.server's naming

            def log_message(self, *_: object) -> None:
                return

        gateway = cls(ThreadingHTTPServer(("127.0.0.1", 0), Handler))
        gateway._serve("scripted-gateway")
        return gateway

    @property
    def url(self) -> str:
        """The server's base URL (no trailing slash)."""
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def script(
        self,
        method: str,
        path: str,
        status: int,
        body: Any,
        headers: dict[str, str] | None = None,
        *,
        times: int = 1,
    ) -> None:
        """Answer the next `times` requests to `method path` (query string ignored); the last repeats."""
        with self._lock:
            queue = self.answers.setdefault((method.upper(), path), [])
            queue.extend([ScriptedAnswer(status, body, dict(headers or {}))] * times)

    def count(self, method: str, path: str) -> int:
        """Requests received for `method path`."""
        with self._lock:
            return sum(1 for m, p, _ in self.requests if (m, p) == (method.upper(), path))

    def _next(self, method: str, target: str, body: bytes) -> ScriptedAnswer:
        path = target.split("?", 1)[0]
        with self._lock:
            self.requests.append((method, path, body))
            queue = self.answers.get((method, path))
            if not queue:
                return ScriptedAnswer(404, b"")
            return queue.pop(0) if len(queue) > 1 else queue[0]


@pytest.fixture
def scripted_gateway() -> Iterator[ScriptedGateway]:
    """A scripted gateway for one test."""
    with _running(ScriptedGateway.start()) as gateway:
        yield gateway
