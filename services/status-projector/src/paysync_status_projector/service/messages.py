"""What the projector's use cases put in the outbox, and the clock they read."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from paysync_core.contracts import Alert, PaymentStatusChanged
from paysync_core.topics import TopicSpec


def event_row(spec: TopicSpec[Any], message: PaymentStatusChanged | Alert) -> dict[str, Any]:
    """An outbox row for one message, keyed as its topic keys it."""
    key = spec.key_for(message).decode()
    return {"topic": spec.name, "key": key, "payload": message.to_bytes().decode()}  # JSON text, stored as is


def now() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)
