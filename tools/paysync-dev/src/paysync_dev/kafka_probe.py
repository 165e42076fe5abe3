"""Is a Kafka broker there? Free ports, open ports, the Kafka protocol, a live cluster."""

from __future__ import annotations

import contextlib
import logging
import socket
import struct
from collections.abc import Iterator
from typing import Any

from paysync_dev._aio import run_sync

log = logging.getLogger(__name__)


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_open(host: str, port: int, timeout: float = 0.2) -> bool:
    """Tell whether something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def speaks_kafka(host: str, port: int, timeout: float = 1.0) -> bool:
    """Tell whether host:port answers a Kafka ApiVersions request (cheap; no client library)."""
    client_id = b"paysync-dev"
    body = struct.pack(">hhih", 18, 0, 7, len(client_id)) + client_id
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.sendall(struct.pack(">i", len(body)) + body)
            header = _recv_exact(sock, 10)
    except OSError:
        return False
    if header is None:
        return False
    _size, correlation_id, error_code = struct.unpack(">iih", header)
    return correlation_id == 7 and error_code in (0, 35)  # 35: UNSUPPORTED_VERSION, still Kafka


def _recv_exact(sock: socket.socket, count: int) -> bytes | None:
    """Read exactly count bytes, or None if the peer closes first."""
    data = b""
    while len(data) < count:
        chunk = sock.recv(count - len(data))
        if not chunk:
            return None
        data += chunk
    return data


async def _describe_cluster(bootstrap: str, timeout: float) -> dict[str, Any]:
    """Ask the broker to describe its cluster with the aiokafka admin client."""
    from aiokafka.admin import AIOKafkaAdminClient

    timeout_ms = max(int(timeout * 1000), 500)
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=timeout_ms)
    try:
        await admin.start()
        return dict(await admin.describe_cluster())
    finally:
        await admin.close()


def probe(bootstrap: str, timeout: float = 5.0) -> dict[str, Any] | None:
    """Return the cluster description if a broker with a live node answers, else None."""
    try:
        described = run_sync(_describe_cluster(bootstrap, timeout))
    except Exception as exc:  # noqa: BLE001 - any failure means no broker answers here
        log.debug("probe of %s failed: %r", bootstrap, exc)
        return None
    return described if described.get("brokers") else None


@contextlib.contextmanager
def quiet_aiokafka() -> Iterator[None]:
    """Silence aiokafka's connection errors while a starting broker is probed."""
    logger = logging.getLogger("aiokafka")
    previous = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(previous)
