"""Every service's HTTP protocol (`paysync_core.server`), driven through uvicorn's own parser and
cycle on a transport that records each write: what a client receives, and in how many writes."""

from __future__ import annotations

import asyncio
from typing import Any

import uvicorn
from starlette.responses import JSONResponse, Response
from starlette.types import Receive, Scope, Send
from uvicorn.server import ServerState

from paysync_core.server import ServerSettings, bounded_http_protocol

GET = b"GET /thing HTTP/1.1\r\nHost: api\r\n\r\n"


class RecordedTransport(asyncio.Transport):
    """A connection whose writes are kept, one item a write, as the kernel would get them."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: Any) -> None:
        self.writes.append(bytes(data))

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 50000), "sockname": ("127.0.0.1", 8000)}.get(name, default)

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


async def served(app: Any, request: bytes) -> tuple[RecordedTransport, Any]:
    """`request` fed to a new connection of the services' protocol serving `app`; its transport and
    protocol, once the request's task started."""
    config = uvicorn.Config(
        app, http=bounded_http_protocol(ServerSettings()), log_config=None, proxy_headers=False
    )
    config.load()
    protocol = config.http_protocol_class(config=config, server_state=ServerState(), app_state={})
    transport = RecordedTransport()
    protocol.connection_made(transport)
    protocol.data_received(request)
    return transport, protocol


async def until(condition: Any) -> None:
    """Let the loop run until `condition()` holds (the app's task is on this loop, nothing else waits)."""
    for _ in range(1000):
        if condition():
            return
        await asyncio.sleep(0)
    raise AssertionError("the condition never held")


async def test_an_answer_of_known_length_is_one_write_head_and_body() -> None:
    app = JSONResponse({"id": "p-1", "status": "paid"})
    transport, protocol = await served(app, GET)
    await until(lambda: protocol.cycle.response_complete)
    assert len(transport.writes) == 1
    (written,) = transport.writes
    assert written.startswith(b"HTTP/1.1 200 OK\r\n")
    assert written.endswith(b'\r\n\r\n{"id":"p-1","status":"paid"}')


async def test_each_answer_on_a_kept_connection_is_one_write() -> None:
    app = Response(b"ok", media_type="text/plain")
    transport, protocol = await served(app, GET)
    await until(lambda: protocol.cycle.response_complete)
    protocol.data_received(GET)
    await until(lambda: len(transport.writes) == 2)
    assert all(w.startswith(b"HTTP/1.1 200 OK\r\n") and w.endswith(b"\r\n\r\nok") for w in transport.writes)


async def test_a_head_answer_has_its_head_written_when_complete() -> None:
    app = Response(b"0123456789", media_type="text/plain")
    transport, protocol = await served(app, b"HEAD /thing HTTP/1.1\r\nHost: api\r\n\r\n")
    await until(lambda: protocol.cycle.response_complete)
    assert len(transport.writes) == 1
    assert transport.writes[0].startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"content-length: 10\r\n" in transport.writes[0]
    assert transport.writes[0].endswith(b"\r\n\r\n")


async def test_a_streamed_answer_has_its_head_written_before_its_body_is_ready() -> None:
    """A live stream (SSE) shows its client the head at once, whenever its first event comes."""
    first_event = asyncio.Event()

    async def stream(scope: Scope, receive: Receive, send: Send) -> None:
        headers = [(b"content-type", b"text/event-stream")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await first_event.wait()
        await send({"type": "http.response.body", "body": b"data: 1\n\n", "more_body": False})

    transport, protocol = await served(stream, GET)
    await until(lambda: transport.writes)
    assert transport.writes[0].startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"data: 1" not in b"".join(transport.writes)
    first_event.set()
    await until(lambda: protocol.cycle.response_complete)
    assert b"data: 1" in b"".join(transport.writes[1:])


async def test_an_app_failing_after_its_head_still_sends_that_head_then_closes() -> None:
    async def failing(scope: Scope, receive: Receive, send: Send) -> None:
        headers = [(b"content-length", b"5"), (b"content-type", b"text/plain")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        raise RuntimeError("the body could not be made")

    transport, _ = await served(failing, GET)
    await until(lambda: transport.closed)
    assert b"".join(transport.writes).startswith(b"HTTP/1.1 200 OK\r\n")
