"""The status merge: every observation of a payment folds into one state, in any order.

The state is a join-semilattice: each part is combined by max, min, union or "or". So
applying the same observations in any order, any number of times, gives the same state,
and the unified status is a pure function of that state. Rules (DESIGN.md):

- only verified observations with a determinable status change anything;
- among statuses before money moved, the newest provider time wins;
- money that has moved is never un-seen: success outranks every open or unpaid status;
- refunds and disputes move forward from success;
- a success whose amount or currency differs from the registered one is flagged, not accepted.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from paysync_core.contracts.observation import PaymentObservation
from paysync_core.domain.status import OPEN_OR_UNPAID, OPEN_RANK, UnifiedStatus

AMOUNT_MISMATCH = "amount_mismatch"
CURRENCY_MISMATCH = "currency_mismatch"

_DISPUTE_RANK = {"open": 0, "won": 1, "lost": 2}


@dataclass(frozen=True, slots=True, order=True)
class OpenFact:
    """The newest status seen before money moved; fields in comparison order."""

    provider_time: datetime
    rank: int
    observation_id: str
    status: UnifiedStatus


@dataclass(frozen=True, slots=True, order=True)
class SuccessFact:
    """The earliest accepted success: when money moved, and how much."""

    provider_time: datetime
    observation_id: str
    amount_minor: int | None
    currency: str | None


@dataclass(frozen=True, slots=True)
class Expectation:
    """What the payment was registered for; None where nothing was registered."""

    amount_minor: int | None = None
    currency: str | None = None


@dataclass(frozen=True, slots=True)
class PaymentState:
    """Everything the merge knows about one payment."""

    latest_open: OpenFact | None = None
    success: SuccessFact | None = None
    refunded_minor: int = 0
    fully_refunded: bool = False
    disputes: tuple[tuple[str, str], ...] = ()  # sorted (dispute_id, state)
    flags: frozenset[str] = field(default_factory=frozenset)

    @property
    def status(self) -> UnifiedStatus:
        """The unified status this state stands for."""
        states = {state for _, state in self.disputes}
        if states & {"open", "lost"}:
            return UnifiedStatus.DISPUTED
        if self.fully_refunded:
            return UnifiedStatus.REFUNDED
        if self.refunded_minor > 0:
            return UnifiedStatus.PARTIALLY_REFUNDED
        if self.success is not None or self.disputes:
            return UnifiedStatus.SUCCEEDED
        if self.latest_open is not None:
            return self.latest_open.status
        return UnifiedStatus.PENDING

    @property
    def paid_at(self) -> datetime | None:
        """When money first moved, if it has."""
        return self.success.provider_time if self.success else None

    def join(self, other: PaymentState) -> PaymentState:
        """The least state that knows everything both states know."""
        disputes = dict(self.disputes)
        for dispute_id, state in other.disputes:
            known = disputes.get(dispute_id)
            if known is None or _DISPUTE_RANK[state] > _DISPUTE_RANK[known]:
                disputes[dispute_id] = state
        return PaymentState(
            latest_open=_max(self.latest_open, other.latest_open),
            success=_min(self.success, other.success),
            refunded_minor=max(self.refunded_minor, other.refunded_minor),
            fully_refunded=self.fully_refunded or other.fully_refunded,
            disputes=tuple(sorted(disputes.items())),
            flags=self.flags | other.flags,
        )

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready form, stored beside the payment row."""
        return {
            "latest_open": _fact_json(self.latest_open),
            "success": _fact_json(self.success),
            "refunded_minor": self.refunded_minor,
            "fully_refunded": self.fully_refunded,
            "disputes": [list(d) for d in self.disputes],
            "flags": sorted(self.flags),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> PaymentState:
        """Rebuild a state stored with `to_json`."""
        if not data:
            return cls()
        lo, su = data.get("latest_open"), data.get("success")
        return cls(
            latest_open=OpenFact(
                datetime.fromisoformat(lo["provider_time"]), lo["rank"], lo["observation_id"],
                UnifiedStatus(lo["status"]),
            ) if lo else None,
            success=SuccessFact(
                datetime.fromisoformat(su["provider_time"]), su["observation_id"],
                su["amount_minor"], su["currency"],
            ) if su else None,
            refunded_minor=data.get("refunded_minor", 0),
            fully_refunded=data.get("fully_refunded", False),
            disputes=tuple(sorted((d[0], d[1]) for d in data.get("disputes", []))),
            flags=frozenset(data.get("flags", [])),
        )


def observe(obs: PaymentObservation, expected: Expectation) -> PaymentState:
    """The state that one observation alone establishes."""
    if not obs.verified:
        return PaymentState()  # a hint: recorded in history, never enough to change status
    state = PaymentState()
    if obs.dispute is not None:
        state = replace(state, disputes=((obs.dispute.dispute_id, obs.dispute.state),))
    status = obs.status
    if status is None:
        return state
    if status in OPEN_OR_UNPAID:
        return replace(
            state,
            latest_open=OpenFact(obs.provider_time, OPEN_RANK[status], obs.observation_id, status),
        )
    if status is UnifiedStatus.SUCCEEDED:
        flags = _mismatches(obs, expected)
        if flags:
            return replace(state, flags=flags)
        return replace(
            state,
            success=SuccessFact(obs.provider_time, obs.observation_id, obs.amount_minor, obs.currency),
        )
    if status in (UnifiedStatus.PARTIALLY_REFUNDED, UnifiedStatus.REFUNDED):
        return replace(
            state,
            refunded_minor=obs.amount_refunded_minor or 0,
            fully_refunded=status is UnifiedStatus.REFUNDED,
        )
    if status is UnifiedStatus.DISPUTED and obs.dispute is None:
        # A dispute without its id still proves money moved and is under dispute.
        return replace(state, disputes=((f"unknown:{obs.observation_id}", "open"),))
    return state


def apply(state: PaymentState, obs: PaymentObservation, expected: Expectation) -> PaymentState:
    """Fold one more observation into a payment's state."""
    return state.join(observe(obs, expected))


def merge_all(
    observations: Iterable[PaymentObservation], expected: Expectation, start: PaymentState | None = None
) -> PaymentState:
    """Fold many observations; the result does not depend on their order or repetition."""
    state = start or PaymentState()
    for obs in observations:
        state = apply(state, obs, expected)
    return state


def _mismatches(obs: PaymentObservation, expected: Expectation) -> frozenset[str]:
    flags: set[str] = set()
    if expected.currency and obs.currency and obs.currency != expected.currency:
        flags.add(CURRENCY_MISMATCH)
    if (
        expected.amount_minor is not None
        and obs.amount_minor is not None
        and obs.amount_minor != expected.amount_minor
    ):
        flags.add(AMOUNT_MISMATCH)
    return frozenset(flags)


def _max(a, b):  # noqa: ANN001, ANN202 - Optional-aware max of two facts
    return b if a is None else a if b is None else max(a, b)


def _min(a, b):  # noqa: ANN001, ANN202 - Optional-aware min of two facts
    return b if a is None else a if b is None else min(a, b)


def _fact_json(fact: OpenFact | SuccessFact | None) -> dict[str, Any] | None:
    if fact is None:
        return None
    out = {name: getattr(fact, name) for name in fact.__slots__}
    out["provider_time"] = fact.provider_time.isoformat()
    return out
