"""A TCP proxy in front of PostgreSQL that a test can make look like a server restarting (a failover).

Tests share one PostgreSQL cluster, so none may restart it. What a client meets while a server
restarts or fails over is what this proxy plays instead: the sessions it had are cut, and new ones
are refused as PostgreSQL refuses them while it shuts down or starts up (FATAL, SQLSTATE 57P03,
"the database system is starting up": `restarting()`), or the port is closed ("connection refused":
`down()`), until the test lets them through again (`back()`).
It runs in the test's event loop: a client in that loop, or in a process of its own, connects to
`url` instead of the database's URL.
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
from urllib.parse import urlsplit, urlunsplit

#: The code a client sends instead of a startup message to ask for TLS (answered "N": no TLS here).
_SSL_REQUEST = 80877103


def _error_response(sqlstate: str, message: str) -> bytes:
    """A FATAL ErrorResponse message of the PostgreSQL protocol."""
    fields = b"SFATAL\0VFATAL\0C" + sqlstate.encode() + b"\0M" + message.encode() + b"\0\0"
    return b"E" + struct.pack("!I", len(fields) + 4) + fields


#: What PostgreSQL answers a new session while it starts up (or shuts down: the same SQLSTATE).
STARTING_UP = _error_response("57P03", "the database system is starting up")


class PostgresProxy:
    """Forwards connections to the database of `url` until told to play a restart."""

    def __init__(self, url: str) -> None:
        self._upstream = urlsplit(url)
        self._server: asyncio.Server | None = None
        self._port = 0
        self._sessions: set[asyncio.StreamWriter] = set()
        self._refusing = False
        self.refused = 0  # new sessions refused so far, for a test to wait until a client tried

    async def start(self) -> None:
        """Listen on a free loopback port (the same one again after `down()`)."""
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self._port)
        self._port = self._server.sockets[0].getsockname()[1]

    @property
    def url(self) -> str:
        """The database's URL, through this proxy."""
        if not self._port:
            raise RuntimeError("start() the proxy first")
        netloc = self._upstream.netloc.rsplit("@", 1)
        host = f"127.0.0.1:{self._port}"
        return urlunsplit(self._upstream._replace(netloc=f"{netloc[0]}@{host}" if len(netloc) == 2 else host))

    def restarting(self) -> None:
        """Cut every session, and refuse new ones as a server starting up does, until `back()`."""
        self._refusing = True
        for writer in list(self._sessions):
            writer.transport.abort()
        self._sessions.clear()

    async def down(self) -> None:
        """Cut every session and close the port (connections refused), until `back()`."""
        self.restarting()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def back(self) -> None:
        """Let new sessions through again."""
        self._refusing = False
        if self._server is None:
            await self.start()

    async def close(self) -> None:
        """Stop listening and cut every session."""
        await self.down()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._refusing:
            await self._refuse(reader, writer)
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(
                self._upstream.hostname, self._upstream.port or 5432
            )
        except OSError:
            writer.transport.abort()
            return
        self._sessions.update((writer, up_writer))
        try:
            await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
        finally:
            self._sessions.difference_update((writer, up_writer))

    async def _refuse(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Read the startup message (after answering a TLS request "N"), answer 57P03, hang up."""
        with contextlib.suppress(OSError, asyncio.IncompleteReadError):
            while True:
                length, code = struct.unpack("!II", await reader.readexactly(8))
                await reader.readexactly(length - 8)
                if code != _SSL_REQUEST:
                    break
                writer.write(b"N")
            self.refused += 1
            writer.write(STARTING_UP)
            await writer.drain()
        writer.close()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Copy bytes until either side closes; then close both."""
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except OSError:
        pass
    finally:
        writer.transport.abort()
