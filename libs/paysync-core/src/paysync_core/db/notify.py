"""PostgreSQL LISTEN/NOTIFY: cheap wake-ups between services that share the database."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import asyncpg
import structlog

log = structlog.get_logger()

#: Called with the notification's payload.
Listener = Callable[[str], None]


def asyncpg_dsn(sqlalchemy_url: str) -> str:
    """The plain libpq URL asyncpg wants, from a SQLAlchemy `postgresql+asyncpg://` URL.

    SQLAlchemy hands the URL's query to `asyncpg.connect` as keyword arguments, so its TLS choice is
    spelt `ssl=…`; in a DSN asyncpg reads libpq's `sslmode=…` and would send any other key to the
    server as a setting. The one spelling is turned into the other, so both ways of connecting make
    the same choice.
    """
    parts = urlsplit(sqlalchemy_url)
    query = [("sslmode" if key == "ssl" else key, value) for key, value in parse_qsl(parts.query)]
    return urlunsplit(parts._replace(scheme=parts.scheme.split("+", 1)[0], query=urlencode(query)))


async def listen(
    dsn: str, listeners: Mapping[str, Listener], *, on_connect: Callable[[], None] | None = None
) -> None:
    """LISTEN on each channel until cancelled, reconnecting when the connection drops.

    `on_connect` runs after every (re)connection: notifications sent while not listening are
    lost, so the caller catches up then.
    """
    while True:
        try:
            conn = await asyncpg.connect(dsn)
            # asyncpg calls termination listeners when the connection is lost or closed.
            closed = asyncio.Event()
            conn.add_termination_listener(lambda _conn, event=closed: event.set())
            try:
                for channel, listener in listeners.items():
                    await conn.add_listener(channel, lambda _c, _pid, _ch, payload, f=listener: f(payload))
                if on_connect is not None:
                    on_connect()
                await closed.wait()
            finally:
                await conn.close()
        except (OSError, asyncpg.PostgresError) as exc:
            log.warning("listen.reconnecting", error=str(exc))
            await asyncio.sleep(1)
