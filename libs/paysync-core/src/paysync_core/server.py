"""The HTTP server's own limits, shared by every service: idle and header-read deadlines, header size.

uvicorn closes idle keep-alive connections, but not one that never sends a request or sends its headers
a byte at a time (slow loris), and httptools accepts headers of any size. `bounded_http_protocol`
adds both limits to uvicorn's httptools protocol with one timer handle per request (no task), and
nothing once the headers are in: long-lived responses such as the SSE stream are unaffected.

It also writes each response of known length in one write, head and body together
(`OneWriteResponses`): a short answer is one TCP segment and one wake-up of the client, not two.
"""

from __future__ import annotations

import asyncio
from typing import Any

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

_TOO_LARGE = (
    b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-type: application/json\r\n"
    b"connection: close\r\ncontent-length: %d\r\n\r\n%s"
)
_TOO_LARGE_BODY = (
    b'{"error":"headers_too_large","message":"request headers over the server\'s limit","problems":[]}'
)


class ServerSettings(BaseSettings):
    """Limits of every service's HTTP server. Env prefix `PAYSYNC_HTTP_`."""

    model_config = SettingsConfigDict(env_prefix="PAYSYNC_HTTP_", extra="ignore")

    keep_alive_seconds: float = Field(
        default=5.0, gt=0, description="An idle keep-alive connection is closed after this long"
    )
    header_timeout_seconds: float = Field(
        default=10.0,
        gt=0,
        description="A connection whose request headers are not complete this long after it opened "
        "(or after the request's first byte) is closed: idle and slow-loris connections",
    )
    max_header_bytes: int = Field(
        default=16 * 1024, ge=1024, description="Request line and headers over this size get 431 and a close"
    )
    metrics_port: int | None = Field(
        default=None,
        description="Serve /metrics on this port only (not on the service's port), so the service's "
        "port can be published without its metrics; unset: /metrics on the service's port",
    )


class _BoundedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a header-read deadline and a header size cap."""

    limits: ServerSettings  # set on the subclass `bounded_http_protocol` makes

    _header_deadline: asyncio.TimerHandle | None = None
    _awaiting_headers = True  # from the connection's start until a request's headers are complete
    _raw_header_bytes = 0  # bytes read while headers were incomplete (one huge header, still unparsed)
    _parsed_header_bytes = 0  # request target and headers the parser has handed over
    _headers_too_large = False
    _writes: OneWriteResponses  # the connection's transport, as uvicorn's code writes to it

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        """Start the header-read deadline: a connection that never sends a request is closed too; write
        through `OneWriteResponses`."""
        super().connection_made(transport)
        self.transport = self._writes = OneWriteResponses(transport, self)
        self._arm_header_deadline()

    def connection_lost(self, exc: Exception | None) -> None:
        """Drop the deadline with the connection."""
        self._disarm_header_deadline()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        """Count raw bytes while headers are incomplete: the parser buffers a header until it ends."""
        if self._awaiting_headers:
            self._raw_header_bytes += len(data)
        super().data_received(data)
        if self._awaiting_headers and self._raw_header_bytes > self.limits.max_header_bytes:
            self._refuse_large_headers()

    def on_message_begin(self) -> None:
        """A request starts: its headers must be complete within the deadline, and under the cap."""
        super().on_message_begin()
        self._awaiting_headers, self._parsed_header_bytes = True, 0
        if self._header_deadline is None:
            self._arm_header_deadline()

    def on_url(self, url: bytes) -> None:
        """Count the request target towards the header cap."""
        self._count_header_bytes(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        """Count each header towards the cap."""
        self._count_header_bytes(len(name) + len(value) + 4)
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        """Headers are in: no deadline from here on (the body and response may take as long as they do)."""
        self._awaiting_headers, self._raw_header_bytes = False, 0
        self._disarm_header_deadline()
        super().on_headers_complete()

    def on_response_complete(self) -> None:
        """A response is complete: anything of it still held goes out (a HEAD's head, say)."""
        self._writes.flush()
        super().on_response_complete()

    def handle_websocket_upgrade(self) -> None:
        """A WebSocket takes the connection's own transport, not ours."""
        self.transport = self._writes.transport
        super().handle_websocket_upgrade()

    def send_400_response(self, msg: str) -> None:
        """uvicorn's answer to a parser error; 431 when the error was our header cap."""
        if self._headers_too_large:
            self._refuse_large_headers()
        else:
            super().send_400_response(msg)

    def _count_header_bytes(self, size: int) -> None:
        # Exact, for headers that arrive whole in one read (the raw count never sees them incomplete).
        self._parsed_header_bytes += size
        if self._parsed_header_bytes > self.limits.max_header_bytes:
            self._headers_too_large = True
            raise ValueError("request headers too large")  # stops the parser: uvicorn answers it

    def _refuse_large_headers(self) -> None:
        self._awaiting_headers = False
        self._disarm_header_deadline()
        if not self.transport.is_closing():
            self.transport.write(_TOO_LARGE % (len(_TOO_LARGE_BODY), _TOO_LARGE_BODY))
            self.transport.close()

    def _arm_header_deadline(self) -> None:
        deadline = self.limits.header_timeout_seconds
        self._header_deadline = self.loop.call_later(deadline, self._headers_too_slow)

    def _disarm_header_deadline(self) -> None:
        if self._header_deadline is not None:
            self._header_deadline.cancel()
            self._header_deadline = None

    def _headers_too_slow(self) -> None:
        self._header_deadline = None
        if self.cycle is not None and not self.cycle.response_complete:
            return  # a request is being answered (its successor's bytes are pipelined): not idle
        if not self.transport.is_closing():
            self.transport.close()


def bounded_http_protocol(limits: ServerSettings) -> type[HttpToolsProtocol]:
    """uvicorn's `http=` protocol class with `limits` applied."""
    return type("BoundedHttpToolsProtocol", (_BoundedHttpToolsProtocol,), {"limits": limits})


class OneWriteResponses(asyncio.Transport):
    """A connection's transport that writes a response's head and its body together, in one write.

    uvicorn writes the head when the app starts the response and the body when it sends it: two
    writes, two TCP segments and two wake-ups of the client for a short answer. The head of a response
    of known length (`Content-Length`) is held until the first bytes of its body, the response's end
    or the connection's close, whichever comes first; a streamed response's (no length: SSE, say) is
    written at once.
    """

    __slots__ = ("_held", "_protocol", "_seen", "transport")

    def __init__(self, transport: asyncio.Transport, protocol: HttpToolsProtocol) -> None:
        super().__init__()
        self.transport, self._protocol = transport, protocol
        self._held = b""
        self._seen: object = None  # the last response whose head was written or held

    def write(self, data: bytes | bytearray | memoryview) -> None:
        """Write `data` after the head held, if any; hold it instead if it is a head to hold."""
        if self._held:
            data, self._held = self._held + data, b""
        elif self._holds():
            self._held = bytes(data)
            return
        self.transport.write(data)

    def _holds(self) -> bool:
        """Whether this write is the head of the current response, and that response has a length."""
        cycle = self._protocol.cycle
        if cycle is self._seen or cycle is None or not cycle.response_started:
            return False
        self._seen = cycle
        return cycle.chunked_encoding is False

    def flush(self) -> None:
        """Write the head held, if any."""
        if self._held:
            data, self._held = self._held, b""
            self.transport.write(data)

    def close(self) -> None:
        """Close, after writing the head held if the connection is still open."""
        if not self.transport.is_closing():
            self.flush()
        self.transport.close()

    def is_closing(self) -> bool:
        """Whether the connection is closing or closed."""
        return self.transport.is_closing()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        """The connection's own (peer, socket, TLS)."""
        return self.transport.get_extra_info(name, default)

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        """Hand the connection to another protocol."""
        self.transport.set_protocol(protocol)
