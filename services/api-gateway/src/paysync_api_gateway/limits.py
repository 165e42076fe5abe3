"""Bounds on what one client can make the API do: body size, failed API-key checks."""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from paysync_core.ratelimit import KeyedBuckets


class BodySizeLimit:
    """ASGI middleware: a body over `max_bytes` is a 413, found while reading, so it is never held whole.

    A declared `Content-Length` over the limit is refused before any byte is read; a chunked body
    is counted as it arrives. The 413 is raised where the route reads the body, so the API's
    error handler answers it in the one error shape.
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass the request on with a `receive` that stops at the limit."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length", b"")
        too_large = declared.isdigit() and int(declared) > self.max_bytes
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            if too_large:
                raise self._too_large()
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise self._too_large()
            return message

        await self.app(scope, limited_receive, send)

    def _too_large(self) -> HTTPException:
        return HTTPException(413, f"the body is larger than {self.max_bytes} bytes")


class FailedKeyThrottle:
    """Failed API-key checks per client address: a burst, then a steady rate; past that, refuse unchecked.

    A flood of guessed keys then costs no database query, and clients elsewhere are not affected.
    """

    def __init__(self, rate: float, burst: float) -> None:
        self._failures = KeyedBuckets(rate, burst)

    def retry_after(self, address: str) -> float:
        """Seconds until `address` may have a key checked again (0: now)."""
        return self._failures.wait_time(address)

    def failed(self, address: str) -> None:
        """Count a failed check against `address`."""
        self._failures.try_take(address)
