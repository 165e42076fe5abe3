"""The references a replay's own observations bind, and the parked observations those bindings match.

The status-projector binds the aliases of each verified observation it applies to that observation's
payment (`payment_refs`; a reference already bound keeps its binding), parks an observation none of
whose references names a payment, and applies a parked one once a reference of it is bound (its
unpark loop). So a record that names its payment only by a reference another record of the same
replay binds, read before or after it, ends up in that payment; so does an observation parked before
the replay. Looking references up in the database alone, a replay would count those `unmatched`
(dry run) or report before the projector applied them (real run).

`AliasBindings` follows the projector: the aliases of each verified observation the replay folds
(or publishes for a payment) are learnt; the observations that name no payment are held; at the end
the held ones and the database's parked ones are matched against what was learnt, until nothing more
matches (an applied observation binds its own aliases in turn). What it holds grows with the payments'
aliases and the observations that name no payment, never with all the records replayed.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from paysync_cli.replay_shadow import ObservationKey, RefKey, keyed
from paysync_cli.replay_source import Filters
from paysync_core.contracts import PaymentObservation
from paysync_core.db.parked import payment_unregistered
from paysync_core.db.schema import parked_observations


@dataclass(frozen=True, slots=True)
class Orphan:
    """An observation no payment's reference names (the projector parks it): what matching it reads."""

    key: ObservationKey
    provider: str
    refs: tuple[str, ...]  # its own reference, then its aliases, as the projector tries them
    verified: bool

    @classmethod
    def of(cls, obs: PaymentObservation) -> Orphan:
        """The orphan an observation of the replay is."""
        return cls((obs.tenant, obs.observation_id), obs.provider.value, obs.refs, obs.verified)


@dataclass(frozen=True, slots=True)
class Matched:
    """The held and parked observations the learnt bindings match, with the payment each goes to."""

    payment_of: dict[ObservationKey, uuid.UUID]
    replayed: dict[ObservationKey, PaymentObservation]  # those of the replay (the rest: parked before it)


@dataclass(slots=True)
class AliasBindings:
    """What the replay binds (tenant, provider, alias → payment) and what it held for want of a payment."""

    learnt: dict[RefKey, uuid.UUID] = field(default_factory=dict)
    held: dict[ObservationKey, PaymentObservation] = field(default_factory=dict)

    def learn(
        self, payment_id: uuid.UUID, tenant: str, provider: str, batch: list[PaymentObservation]
    ) -> None:
        """Bind the aliases of the verified observations applied to a payment, unless bound before."""
        learnt = self.learnt
        for obs in batch:
            if obs.verified and obs.aliases:
                for alias in obs.aliases:
                    learnt.setdefault((tenant, provider, alias), payment_id)

    def hold(self, orphans: Iterable[PaymentObservation]) -> None:
        """Keep observations no payment's reference names (once each), as the projector parks them."""
        for obs in orphans:
            self.held.setdefault((obs.tenant, obs.observation_id), obs)

    def absorb(self, other: AliasBindings) -> None:
        """Take in another process's bindings and held observations (its share of the records)."""
        for ref, payment_id in other.learnt.items():
            self.learnt.setdefault(ref, payment_id)
        for key, obs in other.held.items():
            self.held.setdefault(key, obs)

    def settle(self, parked: Iterable[Orphan]) -> Matched:
        """Match the held observations and `parked` (the database's) against the bindings, as the
        projector's unpark loop would, until nothing more matches; what matched binds its aliases too.

        A held observation was looked up in the database and named no payment there, so whatever a
        binding learnt says of its references is what the projector will find.
        """
        if not self.learnt:  # nothing can match (a replay of payments without aliases)
            return Matched({}, {})
        waiting = {key: Orphan.of(obs) for key, obs in self.held.items()}
        waiting |= {o.key: o for o in parked if o.key not in waiting}
        payment_of: dict[ObservationKey, uuid.UUID] = {}
        while found := {key: pid for key, o in waiting.items() if (pid := self._payment_named(o))}:
            for key, payment_id in found.items():
                orphan = waiting.pop(key)
                if orphan.verified:
                    for alias in orphan.refs[1:]:
                        self.learnt.setdefault((key[0], orphan.provider, alias), payment_id)
            payment_of |= found
        replayed = {key: self.held[key] for key in payment_of if key in self.held}
        return Matched(payment_of, replayed)

    def _payment_named(self, orphan: Orphan) -> uuid.UUID | None:
        tenant, provider = orphan.key[0], orphan.provider
        return next((pid for ref in orphan.refs if (pid := self.learnt.get((tenant, provider, ref)))), None)


async def parked_before(conn: AsyncConnection, filters: Filters) -> list[Orphan]:
    """The observations parked now (of the replay's tenant and gateway, if it has them) that no binding
    matches yet: what the replay's bindings may make the projector apply. Read before it publishes."""
    p = parked_observations.c
    query = select(p.tenant_id, p.provider, p.observation_id, p.refs, p.payload["verified"].as_boolean())
    # Those a reference names a payment of already: the unpark loop takes them anyway.
    query = query.where(payment_unregistered())
    if filters.tenant is not None:
        query = query.where(p.tenant_id == filters.tenant)
    if filters.gateway is not None:
        query = query.where(p.provider == filters.gateway)
    rows = await conn.stream(query.execution_options(yield_per=5000))
    return [Orphan((r[0], r[2]), r[1], tuple(r[3]), bool(r[4])) async for r in rows]


async def parked_payloads(conn: AsyncConnection, keys: set[ObservationKey]) -> list[PaymentObservation]:
    """The parked observations with these keys (those still parked)."""
    if not keys:
        return []
    p = parked_observations.c
    rows = await conn.execute(select(p.payload).where(keyed((p.tenant_id, p.observation_id), keys)))
    return [PaymentObservation.model_validate(r.payload) for r in rows]
