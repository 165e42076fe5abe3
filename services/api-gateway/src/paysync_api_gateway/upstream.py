"""The notifier's event stream read as plain bytes: one socket read relayed as one write.

httpx reads a streamed body one chunk at a time, each through h11 and a fresh timeout scope; with
each change going to many clients that per-chunk work was most of api-gateway's cost per event.
The stream is relayed unparsed anyway, so here it is only de-chunked: whatever one read brought,
all complete chunks of it, goes to the client as one piece.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator

import httpx

#: The longest status line and headers accepted from the notifier.
_HEAD_LIMIT = 64 * 1024
_READ = 64 * 1024


class UpstreamRefused(Exception):
    """The notifier answered, but not with a stream (`status` is what it answered)."""

    def __init__(self, status: int) -> None:
        super().__init__(f"the notifier answered {status}")
        self.status = status


def safe_header_value(value: str) -> bool:
    """Whether a value may go into a request line as is (no control characters: no header injection)."""
    return all(" " <= char <= "~" for char in value)


async def open_stream(request: httpx.Request, timeout: float) -> AsyncIterator[bytes]:
    """Send `request` (a GET) and return its body's data, de-chunked; `UpstreamRefused` unless 200.

    `OSError` or `TimeoutError` when the notifier cannot be reached within `timeout`.
    """
    url = request.url
    port = url.port or (443 if url.scheme == "https" else 80)
    context = ssl.create_default_context() if url.scheme == "https" else None
    async with asyncio.timeout(timeout):
        reader, writer = await asyncio.open_connection(url.host, port, ssl=context, limit=_HEAD_LIMIT)
        try:
            writer.write(_request_bytes(request))
            status, chunked = _status_of(await reader.readuntil(b"\r\n\r\n"))
        except BaseException:
            writer.close()
            raise
    if status != 200 or not chunked:
        writer.close()
        raise UpstreamRefused(status)
    return _body(reader, writer)


def _request_bytes(request: httpx.Request) -> bytes:
    skipped = {"accept-encoding", "connection", "host"}
    lines = [f"GET {request.url.raw_path.decode('ascii')} HTTP/1.1", f"Host: {request.url.netloc.decode()}"]
    for name, value in request.headers.items():
        if name.lower() not in skipped:
            if not safe_header_value(value):
                raise ValueError(f"unsafe value for header {name}")
            lines.append(f"{name}: {value}")
    # Identity: the body is relayed as the client's own SSE bytes, never compressed.
    lines += ["Accept-Encoding: identity", "Connection: close", "", ""]
    return "\r\n".join(lines).encode("latin-1")


def _status_of(head: bytes) -> tuple[int, bool]:
    """The status code, and whether the body is chunked (a stream is: no length is known)."""
    status_line, *headers = head.decode("latin-1").split("\r\n")
    status = int(status_line.split(" ", 2)[1])
    chunked = any(
        name.strip().lower() == "transfer-encoding" and "chunked" in value.lower()
        for name, _, value in (header.partition(":") for header in headers)
    )
    return status, chunked


async def _body(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> AsyncIterator[bytes]:
    """The body's data as it arrives: every complete chunk of a read, joined; ends with the body."""
    buffer = b""
    try:
        while data := await reader.read(_READ):
            pieces, buffer, ended = _complete_chunks(buffer + data)
            if pieces:
                yield pieces
            if ended:
                return
    finally:
        writer.close()


def _complete_chunks(buffer: bytes) -> tuple[bytes, bytes, bool]:
    """(the data of the complete chunks at the start of `buffer`, what is left, whether the last came)."""
    pieces: list[bytes] = []
    at = 0
    while (line_end := buffer.find(b"\r\n", at)) >= 0:
        size = int(buffer[at:line_end].split(b";", 1)[0], 16)
        if size == 0:
            return b"".join(pieces), b"", True
        start, end = line_end + 2, line_end + 2 + size
        if len(buffer) < end + 2:
            break
        pieces.append(buffer[start:end])
        at = end + 2
    return b"".join(pieces), buffer[at:], False
