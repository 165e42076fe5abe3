"""The status merge: every observation of a payment folds into one state, in any order.

The state is a join-semilattice: each part is combined by max, min, union or "or". So
applying the same observations in any order, any number of times, gives the same state,
and the unified status is a pure function of that state. Rules (docs/status-model.md):

- only verified observations with a determinable status change anything;
- among statuses before money moved, the newest provider time wins;
- money that has moved is never un-seen: success outranks every open or unpaid status;
- refunds and disputes move forward from success;
- a success whose amount or currency differs from the registered one is flagged, not accepted;
- a refund of everything that was received is a full refund, however the gateway worded it;
- an operator's override (the newest one) is the status shown; gateway facts older than it never
  undo it, and a newer gateway fact whose status disagrees marks it contradicted (the projector
  opens a sync issue) without changing the status.

Each fact also keeps the gateway's words that came with it (a failure's reason, a success's
receipt and session ids), so what is shown about a payment is a function of the state too.

The merge reads observations as the domain value `paysync_core.domain.observation.Observation`,
not as the wire message (`PaymentObservation.to_domain()` converts).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from paysync_core.domain.observation import Observation
from paysync_core.domain.pickling import pickled_by_fields
from paysync_core.domain.status import OPEN_OR_UNPAID, OPEN_RANK, UnifiedStatus

AMOUNT_MISMATCH = "amount_mismatch"
CURRENCY_MISMATCH = "currency_mismatch"

_DISPUTE_RANK = {"open": 0, "won": 1, "lost": 2}


@pickled_by_fields
@dataclass(frozen=True, slots=True, order=True)
class OpenFact:
    """The newest status seen before money moved; fields in comparison order."""

    provider_time: datetime
    rank: int
    observation_id: str
    status: UnifiedStatus
    #: The gateway's own words (e.g. M-Pesa's ResultDesc); one observation id, one detail.
    detail: str | None = field(default=None, compare=False)


@pickled_by_fields
@dataclass(frozen=True, slots=True, order=True)
class SuccessFact:
    """The earliest accepted success: when money moved, and how much."""

    provider_time: datetime
    observation_id: str
    amount_minor: int | None
    currency: str | None
    #: The success's evidence (session, intent, charge, receipt ids), as sorted (name, value) pairs.
    evidence: tuple[tuple[str, str], ...] = field(default=(), compare=False)

    def evidence_of(self, name: str) -> str | None:
        """One piece of the success's evidence, or None."""
        return dict(self.evidence).get(name)


@pickled_by_fields
@dataclass(frozen=True, slots=True, order=True)
class OverrideFact:
    """The newest operator override: the status it set, and when; fields in comparison order."""

    provider_time: datetime
    observation_id: str
    status: UnifiedStatus


@dataclass(frozen=True, slots=True)
class Expectation:
    """What the payment was registered for; None where nothing was registered."""

    amount_minor: int | None = None
    currency: str | None = None


@pickled_by_fields
@dataclass(frozen=True, slots=True)
class PaymentState:
    """Everything the merge knows about one payment."""

    latest_open: OpenFact | None = None
    success: SuccessFact | None = None
    refunded_minor: int = 0
    fully_refunded: bool = False
    disputes: tuple[tuple[str, str], ...] = ()  # sorted (dispute_id, state)
    flags: frozenset[str] = field(default_factory=frozenset)
    #: A partial refund was reported, even if without its amount.
    refund_seen: bool = False
    #: The newest provider time of any verified gateway observation that established something.
    as_of: datetime | None = None
    #: The newest operator override; it never moves `as_of`, which stays the gateway's.
    override: OverrideFact | None = None

    @property
    def status(self) -> UnifiedStatus:
        """The unified status this state stands for: an override's, else the gateway facts'."""
        return self.override.status if self.override is not None else self.gateway_status

    @property
    def override_contradicted(self) -> bool:
        """A gateway fact newer than the override says something else than the override set."""
        if self.override is None or self.as_of is None:
            return False
        return self.as_of > self.override.provider_time and self.gateway_status is not self.override.status

    @property
    def gateway_status(self) -> UnifiedStatus:
        """The status the gateways' facts alone stand for, whatever an operator set."""
        states = {state for _, state in self.disputes}
        if states & {"open", "lost"}:
            return UnifiedStatus.DISPUTED
        if self.fully_refunded or self._refunded_everything_received:
            return UnifiedStatus.REFUNDED
        if self.refunded_minor > 0 or self.refund_seen:
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

    @property
    def amount_received_minor(self) -> int | None:
        """How much the accepted success brought in, if one was accepted."""
        return self.success.amount_minor if self.success else None

    @property
    def amount_refunded_minor(self) -> int:
        """What was refunded: the reported total, or all that was received if a full refund gave none."""
        if self.refunded_minor == 0 and self.fully_refunded and self.success is not None:
            return self.success.amount_minor or 0
        return self.refunded_minor

    @property
    def failure_detail(self) -> str | None:
        """The gateway's words for why the payment failed, while failed, canceled or expired is its status."""
        status = self.status
        if self.latest_open is None or status.money_moved or status is not self.latest_open.status:
            return None
        if status in (UnifiedStatus.FAILED, UnifiedStatus.CANCELED, UnifiedStatus.EXPIRED):
            return self.latest_open.detail
        return None

    @property
    def _refunded_everything_received(self) -> bool:
        received = self.success.amount_minor if self.success else None
        return received is not None and received != 0 and self.refunded_minor >= received

    def join(self, other: PaymentState) -> PaymentState:
        """The least state that knows everything both states know."""
        return PaymentState(
            latest_open=_max(self.latest_open, other.latest_open),
            success=_min(self.success, other.success),
            refunded_minor=max(self.refunded_minor, other.refunded_minor),
            fully_refunded=self.fully_refunded or other.fully_refunded,
            disputes=_join_disputes(self.disputes, other.disputes),
            flags=self.flags | other.flags,
            refund_seen=self.refund_seen or other.refund_seen,
            as_of=_max(self.as_of, other.as_of),
            override=_max(self.override, other.override),
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
            "refund_seen": self.refund_seen,
            "as_of": self.as_of.isoformat() if self.as_of else None,
            "override": _fact_json(self.override),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> PaymentState:
        """Rebuild a state stored with `to_json`."""
        if not data:
            return cls()
        lo, su, ov = data.get("latest_open"), data.get("success"), data.get("override")
        return cls(
            latest_open=OpenFact(
                datetime.fromisoformat(lo["provider_time"]),
                lo["rank"],
                lo["observation_id"],
                UnifiedStatus(lo["status"]),
                lo.get("detail"),
            )
            if lo
            else None,
            success=SuccessFact(
                datetime.fromisoformat(su["provider_time"]),
                su["observation_id"],
                su["amount_minor"],
                su["currency"],
                tuple(sorted((k, v) for k, v in (su.get("evidence") or {}).items())),
            )
            if su
            else None,
            refunded_minor=data.get("refunded_minor", 0),
            fully_refunded=data.get("fully_refunded", False),
            disputes=tuple(sorted((d[0], d[1]) for d in data.get("disputes", []))),
            flags=frozenset(data.get("flags", [])),
            refund_seen=data.get("refund_seen", False),
            as_of=datetime.fromisoformat(data["as_of"]) if data.get("as_of") else None,
            override=OverrideFact(
                datetime.fromisoformat(ov["provider_time"]), ov["observation_id"], UnifiedStatus(ov["status"])
            )
            if ov
            else None,
        )


def observe(obs: Observation, expected: Expectation) -> PaymentState:
    """The state that one observation alone establishes."""
    if not obs.verified:
        return _NOTHING  # a hint: recorded in history, never enough to change status
    if obs.override:
        if obs.status is None:
            return _NOTHING
        return PaymentState(override=OverrideFact(obs.provider_time, obs.observation_id, obs.status))
    facts = _establish(obs, expected)
    return PaymentState(**facts, as_of=obs.provider_time) if facts else _NOTHING


def _establish(obs: Observation, expected: Expectation) -> dict[str, Any]:
    """The fields of the state one verified observation establishes (none: it establishes nothing)."""
    facts: dict[str, Any] = {}
    if obs.dispute is not None:
        facts["disputes"] = ((obs.dispute.dispute_id, obs.dispute.state),)
    status = obs.status
    if status is None:
        return facts
    if status in OPEN_OR_UNPAID:
        facts["latest_open"] = OpenFact(
            obs.provider_time, OPEN_RANK[status], obs.observation_id, status, obs.detail
        )
    elif status is UnifiedStatus.SUCCEEDED:
        flags = _mismatches(obs, expected)
        if flags:
            facts["flags"] = flags
        else:
            facts["success"] = SuccessFact(
                obs.provider_time, obs.observation_id, obs.amount_minor, obs.currency, obs.evidence
            )
    elif status in (UnifiedStatus.PARTIALLY_REFUNDED, UnifiedStatus.REFUNDED):
        facts["refunded_minor"] = obs.amount_refunded_minor or 0
        facts["fully_refunded"] = status is UnifiedStatus.REFUNDED
        facts["refund_seen"] = True
    elif status is UnifiedStatus.DISPUTED and obs.dispute is None:
        # A dispute without its id still proves money moved and is under dispute.
        facts["disputes"] = ((f"unknown:{obs.observation_id}", "open"),)
    return facts


_NOTHING = PaymentState()


def apply(state: PaymentState, obs: Observation, expected: Expectation) -> PaymentState:
    """Fold one more observation into a payment's state."""
    if obs.status is UnifiedStatus.SUCCEEDED and obs.verified and obs.dispute is None and not obs.override:
        return _join_success(state, obs, expected)  # the usual observation: the same join, built directly
    seen = observe(obs, expected)
    return state if seen is _NOTHING else state.join(seen)  # joining nothing is the identity


def _join_success(state: PaymentState, obs: Observation, expected: Expectation) -> PaymentState:
    """`state.join(observe(obs, expected))` for a verified success without a dispute or an override.

    What that observation establishes is a success (or, when it is not what was registered, mismatch
    flags) as of its provider time; the join is taken field by field here, as `join` takes it, without
    building that state and a dict of its facts first (the projector and the replay fold every
    observation through here: a success is most of them).
    """
    flags = _mismatches(obs, expected)
    success = state.success
    if not flags:
        time, oid = obs.provider_time, obs.observation_id
        success = _min(success, SuccessFact(time, oid, obs.amount_minor, obs.currency, obs.evidence))
    return PaymentState(
        state.latest_open,
        success,
        max(state.refunded_minor, 0),
        state.fully_refunded or False,
        state.disputes,
        state.flags | flags,
        state.refund_seen or False,
        _max(state.as_of, obs.provider_time),
        state.override,
    )


def merge_all(
    observations: Iterable[Observation], expected: Expectation, start: PaymentState | None = None
) -> PaymentState:
    """Fold many observations; the result does not depend on their order or repetition."""
    state = start or PaymentState()
    for obs in observations:
        state = apply(state, obs, expected)
    return state


def _join_disputes(
    mine: tuple[tuple[str, str], ...], theirs: tuple[tuple[str, str], ...]
) -> tuple[tuple[str, str], ...]:
    """Both sorted lists of (dispute id, state), each dispute at its furthest state."""
    if not theirs or mine == theirs:
        return mine  # most joins: no dispute on either side (a fold joins once per observation)
    disputes = dict(mine)
    for dispute_id, state in theirs:
        known = disputes.get(dispute_id)
        if known is None or _DISPUTE_RANK[state] > _DISPUTE_RANK[known]:
            disputes[dispute_id] = state
    return tuple(sorted(disputes.items()))


_NO_FLAGS: frozenset[str] = frozenset()


def _mismatches(obs: Observation, expected: Expectation) -> frozenset[str]:
    currency = bool(expected.currency and obs.currency and obs.currency != expected.currency)
    amount = (
        expected.amount_minor is not None
        and obs.amount_minor is not None
        and obs.amount_minor != expected.amount_minor
    )
    if not (currency or amount):
        return _NO_FLAGS  # the usual success: what was registered
    return frozenset(f for f, found in ((CURRENCY_MISMATCH, currency), (AMOUNT_MISMATCH, amount)) if found)


def _max(a, b):  # Optional-aware max of two facts
    return b if a is None else a if b is None else max(a, b)


def _min(a, b):  # Optional-aware min of two facts
    return b if a is None else a if b is None else min(a, b)


def _fact_json(fact: OpenFact | SuccessFact | OverrideFact | None) -> dict[str, Any] | None:
    if fact is None:
        return None
    out = {name: getattr(fact, name) for name in fact.__slots__}
    out["provider_time"] = fact.provider_time.isoformat()
    if isinstance(fact, SuccessFact):
        out["evidence"] = dict(fact.evidence)
    return out
