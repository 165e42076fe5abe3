"""A real HTTP receiver for tests: a tiny Starlette app served by uvicorn on 127.0.0.1 and a free port.

It records every request it gets (in arrival order) and answers as told: 200 by default, or the
status (and headers) `respond_with` sets for the next N requests. `verify_with` makes it check each
request as a receiver of signed webhooks does: one that fails the check is answered 401.
`stop()`/`start()` take the port down and up again, so a sender sees "connection refused" in between.
The server runs in a thread of its own, so it answers while the test's event loop waits.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"]


@dataclass(frozen=True, slots=True)
class ReceivedRequest:
    """One request as it arrived: header names lower-cased; `answered` is the status it was given."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    answered: int = 200


class HttpReceiver:
    """A running HTTP server that records requests and answers as the test says."""

    def __init__(self, port: int = 0) -> None:
        """Serve on `port` of 127.0.0.1 (0: a free one)."""
        self.requests: list[ReceivedRequest] = []
        self._lock = threading.Lock()
        self._status, self._headers = 200, dict[str, str]()
        self._times: int | None = None
        self._verify: Callable[[ReceivedRequest], bool] | None = None
        listener = socket.socket()
        listener.bind(("127.0.0.1", port))
        self.port: int = listener.getsockname()[1]
        listener.close()
        self.url = f"http://127.0.0.1:{self.port}"
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self.start()

    def respond_with(
        self, status: int = 200, headers: dict[str, str] | None = None, times: int | None = None
    ) -> None:
        """Answer the next `times` requests (None: all, until changed) with `status` and `headers`."""
        with self._lock:
            self._status, self._headers, self._times = status, dict(headers or {}), times

    def verify_with(self, check: Callable[[ReceivedRequest], bool] | None) -> None:
        """Answer 401 to every request `check` refuses (None: check nothing), before `respond_with`."""
        with self._lock:
            self._verify = check

    async def wait_for(
        self, predicate: Callable[[list[ReceivedRequest]], bool], timeout: float = 60.0
    ) -> None:
        """Wait until `predicate(requests)` holds; AssertionError after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while not predicate(self.snapshot()):
            if time.monotonic() > deadline:
                raise AssertionError(f"the receiver's requests did not satisfy the condition in {timeout}s")
            await asyncio.sleep(0.05)

    def snapshot(self) -> list[ReceivedRequest]:
        """A copy of the requests so far, safe to read while more arrive."""
        with self._lock:
            return list(self.requests)

    def start(self) -> None:
        """Serve (again) on the same port; returns once it accepts connections."""
        if self._thread is not None:
            return
        config = uvicorn.Config(
            self._app(), host="127.0.0.1", port=self.port, log_level="warning", lifespan="off"
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, name=f"http-receiver-{self.port}", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + 30
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the HTTP receiver did not start on port {self.port}")
            time.sleep(0.01)

    def stop(self) -> None:
        """Stop serving: connections to the port are refused until `start()`."""
        if self._server is None or self._thread is None:
            return
        self._server.should_exit = True
        self._thread.join(timeout=30)
        self._server, self._thread = None, None

    def close(self) -> None:
        """Stop for good."""
        self.stop()

    def _answer(self) -> tuple[int, dict[str, str]]:
        if self._times is not None:
            if self._times <= 0:
                self._status, self._headers, self._times = 200, {}, None
            else:
                self._times -= 1
        return self._status, self._headers

    def _app(self) -> Starlette:
        async def receive(request: Request) -> Response:
            body = await request.body()
            received = ReceivedRequest(
                request.method, request.url.path, {k.lower(): v for k, v in request.headers.items()}, body
            )
            with self._lock:
                refused = self._verify is not None and not self._verify(received)
                status, headers = (401, {}) if refused else self._answer()
                self.requests.append(replace(received, answered=status))
            return Response(status_code=status, headers=headers)

        return Starlette(routes=[Route("/{path:path}", receive, methods=_METHODS)])


@pytest.fixture
def http_receiver() -> Iterator[HttpReceiver]:
    """A real HTTP receiver on 127.0.0.1 and a free port, for this test."""
    receiver = HttpReceiver()
    try:
        yield receiver
    finally:
        receiver.close()
