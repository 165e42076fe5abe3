"""The unified payment status model every provider maps onto."""

from __future__ import annotations

from enum import StrEnum


class UnifiedStatus(StrEnum):
    """A payment's status, the same words for every gateway."""

    PENDING = "pending"
    REQUIRES_ACTION = "requires_action"
    PROCESSING = "processing"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELED = "canceled"
    EXPIRED = "expired"
    PARTIALLY_REFUNDED = "partially_refunded"
    REFUNDED = "refunded"
    DISPUTED = "disputed"

    @property
    def money_moved(self) -> bool:
        """True when this status can only follow a successful capture of money."""
        return self in MONEY_MOVED

    @property
    def settled(self) -> bool:
        """True when no further check with the gateway is expected to change it by itself."""
        return self in SETTLED


#: Statuses before money moved; among these the newest provider time wins.
OPEN_OR_UNPAID = frozenset(
    {
        UnifiedStatus.PENDING,
        UnifiedStatus.REQUIRES_ACTION,
        UnifiedStatus.PROCESSING,
        UnifiedStatus.FAILED,
        UnifiedStatus.CANCELED,
        UnifiedStatus.EXPIRED,
    }
)

MONEY_MOVED = frozenset(
    {
        UnifiedStatus.SUCCEEDED,
        UnifiedStatus.PARTIALLY_REFUNDED,
        UnifiedStatus.REFUNDED,
        UnifiedStatus.DISPUTED,
    }
)

SETTLED = frozenset(
    {
        UnifiedStatus.SUCCEEDED,
        UnifiedStatus.FAILED,
        UnifiedStatus.CANCELED,
        UnifiedStatus.EXPIRED,
        UnifiedStatus.REFUNDED,
    }
)

#: Tie-break between observations of equal provider time: the later a status sits in a
#: payment's life, the higher its rank.
OPEN_RANK: dict[UnifiedStatus, int] = {
    UnifiedStatus.PENDING: 0,
    UnifiedStatus.REQUIRES_ACTION: 1,
    UnifiedStatus.PROCESSING: 2,
    UnifiedStatus.FAILED: 3,
    UnifiedStatus.EXPIRED: 4,
    UnifiedStatus.CANCELED: 5,
}
