"""pytest plugin: `gateway_sim`, a simulator process for the session, and `webhook_receiver`.

Register with `-p paysync_gateway_sim.testing`. Set PAYSYNC_GATEWAY_SIM_URL to use a simulator
that is already running instead of starting one.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from paysync_gateway_sim.client import URL_ENV, SimulatorClient


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class SimulatorProcess:
    """The simulator running as its own OS process, logging to a file."""

    port: int
    log_path: Path
    process: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        """The server's base URL."""
        return f"http://127.0.0.1:{self.port}"

    @classmethod
    def start(
        cls, *, seed: int = 0, args: Sequence[str] = (), log_path: Path | None = None,
        ready_timeout: float = 20.0,
    ) -> SimulatorProcess:
        """Start on a free port and wait until /_sim/health answers; a lost port race is retried."""
        log_path = log_path or Path(tempfile.mkdtemp(prefix="gateway-sim-")) / "simulator.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(3):
            port = free_port()
            command = [sys.executable, "-m", "paysync_gateway_sim", "serve", "--port", str(port),
                       "--seed", str(seed), "--log-level", "warning", *args]
            with log_path.open("ab") as log:
                process = subprocess.Popen(
                    command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
            started = cls(port, log_path, process)
            if started._wait_ready(ready_timeout):
                return started
            started.stop()
        tail = log_path.read_text(errors="replace")[-2000:]
        raise RuntimeError(f"the gateway simulator did not start; its log ends:\n{tail}")

    def _wait_ready(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                return False
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.url}/_sim/health", timeout=1.0).status_code == 200:
                    return True
            time.sleep(0.05)
        return False

    def stop(self, grace: float = 5.0) -> None:
        """SIGTERM, then SIGKILL if it has not stopped within `grace` seconds."""
        if self.process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(grace)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()


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
