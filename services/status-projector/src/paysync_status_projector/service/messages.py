"""What the projector's use cases put in the outbox, and the clock they read."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from paysync_core.contracts import Alert, PaymentStatusChanged, payment_key


def event_row(topic: str, key: str, message: PaymentStatusChanged | Alert) -> dict[str, Any]:
    """An outbox row for one message."""
    return {"topic": topic, "key": key, "payload": message.to_bytes().decode()}  # JSON text, stored as is


def key_of(payment: Any) -> str:
    """The Kafka key of a payment's events."""
    return payment_key(payment.tenant_id, payment.provider, payment.provider_ref)


def now() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)
