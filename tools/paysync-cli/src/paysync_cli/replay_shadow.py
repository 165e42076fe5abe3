"""What a replay would change, read from the live tables (never written): history, payments, a shadow fold."""

from __future__ import annotations

import hashlib
import uuid
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import String, any_, bindparam, func, null, select, text, tuple_
from sqlalchemy.dialects.postgresql import ARRAY, UUID
from sqlalchemy.ext.asyncio import AsyncConnection

from paysync_core.contracts import PaymentObservation
from paysync_core.db.schema import observations, parked_observations, payment_refs, payments
from paysync_core.domain.merge import Expectation, PaymentState, apply
from paysync_core.domain.pickling import pickled_by_fields
from paysync_core.providers.modes import mode_refusal

_MAX_ID = 200  # PaymentObservation.observation_id's limit

#: (tenant, observation id): how the projector's history keys an observation.
ObservationKey = tuple[str, str]

#: (tenant, provider, reference): how `payment_refs` keys the payment a reference names.
RefKey = tuple[str, str, str]


def keyed(columns: tuple[Any, ...], keys: Iterable[tuple[str, ...]]) -> Any:
    """Rows whose `columns` are one of `keys`: each key looked up in the table's unique index.

    The keys travel as one array per column, unnested into rows; matching on all the columns (not on
    the last one alone) is what lets PostgreSQL use the index instead of reading the whole table.
    """
    rows = list(keys)
    names = [f"k{n}" for n in range(len(columns))]
    arrays = [
        bindparam(f"keys_{n}", [row[n] for row in rows], type_=ARRAY(String)) for n in range(len(columns))
    ]
    wanted = select(func.unnest(*arrays).table_valued(*names).render_derived())
    return tuple_(*columns).in_(wanted)


@dataclass(frozen=True, slots=True)
class Recorded:
    """What the history holds of one observation (the fields a mapping decides)."""

    status: str | None
    amount_minor: int | None
    currency: str | None
    verified: bool
    provider_time: datetime
    mode: str | None

    def same_as(self, obs: PaymentObservation) -> bool:
        """Whether `obs` says what this history row says."""
        return (
            self.status,
            self.amount_minor,
            self.currency,
            self.verified,
            self.provider_time,
            self.mode,
        ) == (
            obs.status.value if obs.status else None,
            obs.amount_minor,
            obs.currency,
            obs.verified,
            obs.provider_time,
            obs.mode,
        )


def replay_id(obs: PaymentObservation) -> str:
    """The id of a re-derived observation that differs from the one the history holds under its id.

    A function of the observation's content, so replaying it again finds it in the history.
    """
    content = obs.model_dump_json(exclude={"observation_id", "source", "observed_at"}).encode()
    suffix = f"~replay:{hashlib.sha256(content).hexdigest()[:20]}"
    return obs.observation_id[: _MAX_ID - len(suffix)] + suffix


async def recorded(conn: AsyncConnection, keys: set[ObservationKey]) -> dict[ObservationKey, Recorded]:
    """The history rows of these observations."""
    if not keys:
        return {}
    o = observations.c
    rows = await conn.execute(
        select(o.tenant_id, o.observation_id, o.status, o.amount_minor, o.currency, o.verified)
        .add_columns(o.provider_time, o.mode)
        .where(keyed((o.tenant_id, o.observation_id), keys))
    )
    return {(r[0], r[1]): Recorded(*r[2:]) for r in rows if (r[0], r[1]) in keys}


async def resolve_ids(
    conn: AsyncConnection, batch: list[PaymentObservation]
) -> tuple[list[PaymentObservation], int]:
    """The observations the history does not have yet, under their final ids; and how many it has.

    An observation keeps the id today's adapter gives it unless the history holds that id saying
    something else (a mapping that was wrong): then it gets `replay_id`, so the projector applies it.
    """
    keys = [(o.tenant, o.observation_id) for o in batch]
    history = await recorded(conn, set(keys))
    if history:
        batch, keys = await _corrected(conn, batch, keys, history)
    fresh = {key: obs for key, obs in zip(keys, batch, strict=True) if key not in history}
    return list(fresh.values()), len(batch) - len(fresh)


async def _corrected(
    conn: AsyncConnection,
    batch: list[PaymentObservation],
    keys: list[ObservationKey],
    history: dict[ObservationKey, Recorded],
) -> tuple[list[PaymentObservation], list[ObservationKey]]:
    """The batch and its keys with a `replay_id` for each observation the history holds saying something
    else (rare: looked up only then); `history` gains the rows it holds under those replay ids."""
    corrected = [
        obs
        if (held := history.get(key)) is None or held.same_as(obs)
        else obs.model_copy(update={"observation_id": replay_id(obs)})
        for obs, key in zip(batch, keys, strict=True)
    ]
    keys = [(o.tenant, o.observation_id) for o in corrected]
    history.update(
        await recorded(conn, {k for k, o, a in zip(keys, corrected, batch, strict=True) if o is not a})
    )
    return corrected, keys


async def still_unapplied(
    conn: AsyncConnection, keys: set[ObservationKey], *, parked_counts: bool = True
) -> set[ObservationKey]:
    """The observations neither in the history nor parked (the projector has not taken them yet);
    with `parked_counts` False, those not in the history (parked ones not applied yet included)."""
    seen: set[ObservationKey] = set()
    for table in (observations, parked_observations) if parked_counts else (observations,):
        rows = await conn.execute(
            select(table.c.tenant_id, table.c.observation_id).where(
                keyed((table.c.tenant_id, table.c.observation_id), keys)
            )
        )
        seen |= {(r[0], r[1]) for r in rows}
    return keys - seen


#: How many of the keys (two arrays) neither the history nor the parked table holds, in one statement
#: (one snapshot: an observation unparked between two reads is not lost between them). Each key is one
#: probe of each table's key (`OFFSET 0` keeps the probes subplans, not joins that may read a table
#: whole), the parked one only for a key the history lacks; one number comes back, not the keys.
_UNAPPLIED = text(
    "SELECT count(*) FROM unnest(CAST(:tenants AS varchar[]), CAST(:ids AS varchar[])) AS k(tenant, id)"
    " WHERE NOT EXISTS (SELECT 1 FROM observations o"
    " WHERE o.tenant_id = k.tenant AND o.observation_id = k.id OFFSET 0)"
    " AND NOT EXISTS (SELECT 1 FROM parked_observations p"
    " WHERE p.tenant_id = k.tenant AND p.observation_id = k.id OFFSET 0)"
)


async def count_unapplied(conn: AsyncConnection, keys: Iterable[ObservationKey]) -> int:
    """How many of these observations are neither in the history nor parked: once the projector has
    consumed them, those it dead-lettered (`still_unapplied` names them; this only counts, cheaply)."""
    tenants, ids = [], []
    for tenant, observation_id in keys:
        tenants.append(tenant)
        ids.append(observation_id)
    if not ids:
        return 0
    return (await conn.execute(_UNAPPLIED, {"tenants": tenants, "ids": ids})).scalar_one()


@pickled_by_fields  # shipped from a dry run's worker processes, one per payment
@dataclass(frozen=True, slots=True)
class Snapshot:
    """What an operator sees of a payment's state."""

    status: str
    amount_received_minor: int | None
    amount_refunded_minor: int
    flags: tuple[str, ...]

    @classmethod
    def of_state(cls, state: PaymentState) -> Snapshot:
        """A merged state as the projector would write it."""
        return cls(
            state.status.value,
            state.amount_received_minor,
            state.amount_refunded_minor,
            tuple(sorted(state.flags)),
        )

    def to_json(self) -> dict[str, Any]:
        """The snapshot as JSON."""
        return {
            "status": self.status,
            "amount_received_minor": self.amount_received_minor,
            "amount_refunded_minor": self.amount_refunded_minor,
            "flags": list(self.flags),
        }


@pickled_by_fields  # shipped from a dry run's worker processes, one per payment
@dataclass(frozen=True, slots=True)
class PaymentRow:
    """A payment as the replay reads it."""

    id: uuid.UUID
    tenant: str
    provider: str
    provider_ref: str
    domain: str | None
    entity_id: str | None
    amount_minor: int | None
    currency: str | None
    mode: str | None
    merge_state: dict[str, Any]
    snapshot: Snapshot


#: The columns a `PaymentRow` is read from, but its merge state (not the metadata, times and the rest:
#: decoding a row's every column, JSON ones included, cost more than the replay used of it).
_ROW_COLUMNS = tuple(
    payments.c[name]
    for name in (
        "id", "tenant_id", "provider", "provider_ref", "domain", "entity_id", "amount_minor", "currency",
        "mode", "status", "amount_received_minor", "amount_refunded_minor", "flags",
    )
)  # fmt: skip


async def load_payments(
    conn: AsyncConnection, ids: Iterable[uuid.UUID], *, merge_state: bool = True
) -> dict[uuid.UUID, PaymentRow]:
    """The payments with these ids, in one query.

    Without `merge_state` (a real run: it folds nothing, the projector does) the rows' merge state is
    not read (left empty): a real run read each payment's JSON for nothing.
    """
    wanted = sorted(set(ids))
    if not wanted:
        return {}
    state = payments.c.merge_state if merge_state else null().label("merge_state")
    rows = await conn.execute(
        select(*_ROW_COLUMNS, state).where(
            payments.c.id == any_(bindparam("pids", wanted, type_=ARRAY(UUID(as_uuid=True))))
        )
    )
    return {r[0]: payment_row(r) for r in rows}


async def load_snapshots(conn: AsyncConnection, ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, Snapshot]:
    """The payments' states as an operator sees them, in one query: what a real run's report compares.

    Only the columns of a `Snapshot`: the whole row (its merge state and domain columns decoded) for
    every payment replayed was most of the report's CPU, in the replay and in PostgreSQL.
    """
    wanted = sorted(set(ids))
    if not wanted:
        return {}
    p = payments.c
    rows = await conn.execute(
        select(p.id, p.status, p.amount_received_minor, p.amount_refunded_minor, p.flags).where(
            p.id == any_(bindparam("pids", wanted, type_=ARRAY(UUID(as_uuid=True))))
        )
    )
    return {r[0]: _snapshot(*r[1:]) for r in rows}


def _snapshot(status: str, received: int | None, refunded: int | None, flags: list[str] | None) -> Snapshot:
    """A payment's snapshot from its stored columns (refunded and flags may be NULL)."""
    return Snapshot(status, received, refunded or 0, tuple(sorted(flags or ())))


def payment_row(r: Sequence[Any]) -> PaymentRow:
    """A `payments` row as the replay reads it: its `_ROW_COLUMNS`, then its merge state, unpacked by
    position (a row's attributes by name cost about as much again as the rest of reading it)."""
    (pid, tenant, provider, ref, domain, entity, amount, currency, mode,
     status, received, refunded, flags, state) = r  # fmt: skip
    return PaymentRow(
        pid, tenant, provider, ref, domain, entity, amount, currency, mode, state or {},
        _snapshot(status, received, refunded, flags),
    )  # fmt: skip


async def payments_of(
    conn: AsyncConnection, batch: list[PaymentObservation], by_ref: dict[RefKey, uuid.UUID] | None = None
) -> tuple[dict[uuid.UUID, list[PaymentObservation]], list[PaymentObservation]]:
    """The observations grouped by the payment a reference of theirs names, and those that match none.

    A reference is tried in the projector's order: the observation's own, then its aliases; so the
    aliases of an observation whose own reference names a payment are never looked up (a Stripe
    session's payment intent and invoice, registered under no payment, were asked every batch).
    `by_ref` holds references found before (filled in here): a reference names one payment for good,
    so a replay looks each up once, however many records name it. One found nowhere is asked again.
    """
    by_ref = {} if by_ref is None else by_ref
    # `_value_` is what `.value` gives, read as the member's attribute (3.11's `.value` is a Python property).
    own = [(obs.tenant, obs.provider._value_, obs.provider_ref) for obs in batch]
    await _look_up_refs(conn, set(own), by_ref)
    aliased = [(obs, key) for obs, key in zip(batch, own, strict=True) if key not in by_ref and obs.aliases]
    await _look_up_refs(conn, {(t, p, alias) for obs, (t, p, _) in aliased for alias in obs.aliases}, by_ref)
    grouped: dict[uuid.UUID, list[PaymentObservation]] = defaultdict(list)
    orphans: list[PaymentObservation] = []
    for obs, key in zip(batch, own, strict=True):
        found = by_ref.get(key)
        if found is None and obs.aliases:
            tenant, provider, _ = key
            found = next((by_ref[k] for a in obs.aliases if (k := (tenant, provider, a)) in by_ref), None)
        if found is None:
            orphans.append(obs)
        else:
            grouped[found].append(obs)
    return grouped, orphans


async def _look_up_refs(conn: AsyncConnection, keys: set[RefKey], by_ref: dict[RefKey, uuid.UUID]) -> None:
    """Add to `by_ref` the payments these references name (those it does not hold yet), in one query."""
    wanted = keys - by_ref.keys()
    if not wanted:
        return
    refs = payment_refs.c
    rows = await conn.execute(
        select(refs.tenant_id, refs.provider, refs.ref, refs.payment_id).where(
            keyed((refs.tenant_id, refs.provider, refs.ref), wanted)
        )
    )
    by_ref.update({(r[0], r[1], r[2]): r[3] for r in rows})


class ShadowProjection:
    """The projector's merge, in memory, over payments as they are now: nothing is written anywhere."""

    def __init__(self) -> None:
        self._rows: dict[uuid.UUID, PaymentRow] = {}
        self._states: dict[uuid.UUID, PaymentState] = {}

    @property
    def rows(self) -> Mapping[uuid.UUID, PaymentRow]:
        """The payments folded so far, as read (a view: asked every batch, never copied)."""
        return self._rows

    def folded(self) -> dict[uuid.UUID, tuple[PaymentRow, PaymentState]]:
        """Each payment folded so far: its row as read and its shadow state."""
        rows = self._rows
        return {pid: (rows[pid], state) for pid, state in self._states.items()}

    def row(self, payment_id: uuid.UUID) -> PaymentRow:
        """A payment folded before, as it was read."""
        return self._rows[payment_id]

    def fold(self, row: PaymentRow, batch: list[PaymentObservation]) -> None:
        """Fold a payment's replayed observations into its shadow state (its stored state, the first time)."""
        self._rows.setdefault(row.id, row)
        state = self._states.get(row.id) or PaymentState.from_json(row.merge_state)
        expected = Expectation(row.amount_minor, row.currency)
        for obs in batch:
            # The projector records, but never applies, an observation of the other mode.
            if mode_refusal(row.mode, obs.mode) is None:
                state = apply(state, obs.to_domain(), expected)
        self._states[row.id] = state

    def absorb(self, other: ShadowProjection) -> None:
        """Take in another shadow's payments, folded from other records (another process's share).

        Both started from the stored state, and the merge is a join (`PaymentState.join`): joining
        the two is what folding all the records in one shadow would have given.
        """
        for pid, row in other._rows.items():
            self._rows.setdefault(pid, row)
            mine = self._states.get(pid)
            theirs = other._states[pid]
            self._states[pid] = theirs if mine is None else mine.join(theirs)

    def adopt(self, row: PaymentRow, state: PaymentState) -> None:
        """Hold a payment folded elsewhere, with its state (a share of another shadow, to be sent on)."""
        self._rows[row.id] = row
        self._states[row.id] = state

    def changed(self) -> Iterable[tuple[PaymentRow, Snapshot]]:
        """Each payment whose shadow differs from what is stored, with its shadow snapshot."""
        for pid, row in self._rows.items():
            after = Snapshot.of_state(self._states[pid])
            if after != row.snapshot:
                yield row, after
