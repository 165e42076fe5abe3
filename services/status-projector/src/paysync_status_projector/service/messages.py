"""What the projector's use cases put in the outbox, and the clock they read."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from paysync_core.contracts import Alert, PaymentStatusChanged
from paysync_core.topics import TopicSpec


def event_row(
    spec: TopicSpec[Any], message: PaymentStatusChanged | Alert, traceparent: str | None = None
) -> dict[str, Any]:
    """An outbox row for one message, keyed as its topic keys it, with the trace it continues (if traced)."""
    key = spec.key_for(message).decode()
    payload = message.to_bytes().decode()  # JSON text, stored as is
    return {"topic": spec.name, "key": key, "payload": payload, "traceparent": traceparent}


def now() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)
