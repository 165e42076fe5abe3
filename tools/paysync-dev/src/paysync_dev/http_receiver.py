"""A real HTTP receiver for tests: uvicorn serving a tiny Starlette app in a background thread.

It records every request (any method, any path) and answers with the status a test chose
(`respond_with`), so a test can make a chat or webhook endpoint fail for a while and recover.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from paysync_dev.stack import free_port


@dataclass(frozen=True)
class ReceivedRequest:
    """One request as it arrived."""

    method: str
    path: str
    headers: dict[str, str]  # lower-cased names
    body: bytes


@dataclass
class _Answer:
    status: int
    headers: dict[str, str]
    times: int | None  # None: until changed


class HttpReceiver:
    """An HTTP server on 127.0.0.1 and a free port; `url` has no trailing slash."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.requests: list[ReceivedRequest] = []
        self._answers: list[_Answer] = []
        self._lock = threading.Lock()
        methods = ["GET", "POST", "PUT", "PATCH", "DELETE"]
        app = Starlette(routes=[Route("/{path:path}", self._receive, methods=methods)])
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="off")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name="http-receiver", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 30
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("the HTTP receiver did not start")
            time.sleep(0.02)

    def respond_with(
        self, status: int = 200, headers: dict[str, str] | None = None, times: int | None = None
    ) -> None:
        """Answer the next `times` requests (None: every one until changed) with `status` and `headers`."""
        with self._lock:
            self._answers = [_Answer(status, dict(headers or {}), times)]

    def _next_answer(self) -> _Answer:
        with self._lock:
            if not self._answers:
                return _Answer(200, {}, None)
            answer = self._answers[0]
            if answer.times is not None:
                answer.times -= 1
                if answer.times <= 0:
                    self._answers.pop(0)
            return answer

    async def _receive(self, request: Request) -> Response:
        body = await request.body()
        headers = {name.lower(): value for name, value in request.headers.items()}
        self.requests.append(ReceivedRequest(request.method, request.url.path, headers, body))
        answer = self._next_answer()
        return Response(status_code=answer.status, headers=answer.headers)

    async def wait_for(
        self, predicate: Callable[[list[ReceivedRequest]], bool], timeout: float = 60.0
    ) -> None:
        """Wait until `predicate(requests)` holds; fail after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while not predicate(list(self.requests)):
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"HTTP receiver: condition not met after {timeout}s; {len(self.requests)} requests"
                )
            await asyncio.sleep(0.1)

    def close(self) -> None:
        """Stop the server and its thread."""
        self._server.should_exit = True
        self._thread.join(timeout=10)
