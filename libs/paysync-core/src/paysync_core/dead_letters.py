"""Bounded retries, then the dead-letter topic: a failing record never blocks its partition."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import TypeVar

import structlog
from aiokafka.structs import ConsumerRecord

from paysync_core.contracts import DeadLetter
from paysync_core.errors import PaysyncError

log = structlog.get_logger()
T = TypeVar("T")

#: PostgreSQL's answers (SQLSTATE) of a server that is not there for the session, whatever it was
#: asked: a connection failure (class 08, but not 08P01, a protocol violation: the statement's own
#: fault, such as too many parameters), the server shutting down or restarting (57P01 terminated by
#: the administrator, 57P02 crash, 57P03 "the database system is starting up" or "shutting down":
#: what a restart or failover answers new sessions), no free connection slot (53300).
_UNAVAILABLE_SQLSTATES = frozenset(
    {"08000", "08001", "08003", "08004", "08006", "08007", "57P01", "57P02", "57P03", "53300"}
)


class DeadLettered(Exception):
    """The record went to its dead-letter topic; the caller moves on."""


async def with_retries(
    record: ConsumerRecord,
    work: Callable[[], Awaitable[T]],
    *,
    send_dead_letter: Callable[[bytes | None, bytes], Awaitable[object]],
    service: str,
    max_attempts: int,
    base_delay: float = 0.05,
) -> T:
    """Run `work`; retry what may pass next time, then dead-letter it (raises DeadLettered).

    Errors that retrying cannot fix (`retryable=False`) are dead-lettered at once. An outage
    of the broker or the database is not the record's fault: it propagates, so the batch is
    redelivered rather than dead-lettered.
    """
    attempt = 0
    while True:
        attempt += 1
        try:
            return await work()
        except Exception as exc:  # every failure ends retried or dead-lettered
            if is_outage(exc):
                raise
            retryable = exc.retryable if isinstance(exc, PaysyncError) else not _is_data_error(exc)
            if retryable and attempt < max_attempts:
                await asyncio.sleep(base_delay * 2 ** (attempt - 1) * (0.5 + random.random()))  # noqa: S311 - retry jitter, not a secret
                continue
            letter = DeadLetter(
                source_topic=record.topic,
                partition=record.partition,
                offset=record.offset,
                key=record.key,
                value=record.value or b"",
                error_type=type(exc).__name__,
                error=str(exc)[:2000],
                attempts=attempt,
                service=service,
                failed_at=datetime.now(UTC),
            )
            await send_dead_letter(record.key, letter.to_bytes())
            log.warning(
                "dead_letter.sent",
                topic=record.topic,
                partition=record.partition,
                offset=record.offset,
                error_type=letter.error_type,
                attempts=attempt,
            )
            raise DeadLettered(letter.error) from exc


def is_outage(exc: BaseException) -> bool:
    """True for failures of the infrastructure (connection lost, broker or database away)."""
    from aiokafka.errors import KafkaConnectionError, KafkaTimeoutError
    from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

    if isinstance(
        exc,
        (
            OSError,
            ConnectionError,
            asyncio.TimeoutError,
            KafkaConnectionError,
            KafkaTimeoutError,
            OperationalError,
            InterfaceError,
        ),
    ):
        return True
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    return _database_unavailable(exc)


def _database_unavailable(exc: BaseException) -> bool:
    """Whether PostgreSQL refused for want of a server (SQLAlchemy's error or asyncpg's own).

    SQLAlchemy flags a statement on a dropped connection as a disconnect, but a new connection refused
    while the server restarts ("the database system is starting up") reaches the caller as a plain
    `DBAPIError`: only its SQLSTATE tells that the next try may pass.
    """
    sqlstate = getattr(getattr(exc, "orig", exc), "sqlstate", None)
    return sqlstate in _UNAVAILABLE_SQLSTATES


def _is_data_error(exc: Exception) -> bool:
    # Bad bytes stay bad: pydantic/JSON/value errors will fail the same way every time.
    from pydantic import ValidationError

    return isinstance(exc, (ValidationError, ValueError, KeyError, TypeError, UnicodeDecodeError))
