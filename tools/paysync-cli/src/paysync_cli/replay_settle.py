"""Which payments a dry run's worker process settles alone, and how the command joins the rest.

A payment's report line (status before → after) depends on its state alone; its entity's domain row on
the states of all the entity's payments. A worker that folded a payment knows its final state unless
another worker folded records of it too (its references spread over partitions: aliases) or the
command folds more into it at the end (observations matched by alias, `paysync_cli.replay_alias`);
it knows an entity's row unless another worker folded a payment of that entity too. So a share goes in
two steps:

1. after reading, each worker sends what it folded (`Folded`: counts, payment ids, entity rows, the
   aliases it bound and the observations it held), then works out every change of its shadow
   (`Guess`) while the others still read;
2. the command names what it must settle itself (`Central`: the payments folded in several shares or
   matched by alias, the entities driven from several shares); each worker drops those from its
   guess and sends its counts, the first `limit` changes of each list in listed order and the shadow
   of what the command settles (those payments, and the other payments of those entities);
3. the command joins those shadows, folds what alias matching found, works out their changes, and
   merges them with the workers' lists (each sorted alike): the report one process would make.

What travels is a payment id and an entity key per payment, and the report's first lines: not a state
per payment, and the command's own work grows with what spans shares, not with all payments.
"""

from __future__ import annotations

import dataclasses
import heapq
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import partial
from itertools import islice
from typing import Any, TypeVar

from paysync_cli.replay_alias import AliasBindings, Matched
from paysync_cli.replay_domains import (
    DomainRowChange,
    RowKey,
    entity_row_key,
    folded_changes,
    listed_row_order,
    payment_row_key,
)
from paysync_cli.replay_report import PaymentChange, ReplayCounts, ReplayReport, listed_order, shadow_changes
from paysync_cli.replay_run import Replayer
from paysync_cli.replay_shadow import ShadowProjection
from paysync_core.domains import Domains

T = TypeVar("T")

#: An entity's row: (domain, tenant, key as its column's type); the same in every process.
EntityKey = tuple[str, str, Any]

#: A domain row change as it travels between processes (its table named, not the bound table itself):
#: (domain, main table or not, tenant, key, change, columns).
SentRowChange = tuple[str, bool, str, Any, str, tuple[tuple[str, Any, Any], ...]]


@dataclass(slots=True)
class Folded:
    """A share once read: its counts, the payments it folded and the entity rows they drive, its aliases."""

    counts: ReplayCounts
    payments: set[int]  # the ids' 128-bit numbers: cheaper to send and compare than UUIDs
    entities: set[EntityKey]
    aliases: AliasBindings


@dataclass(frozen=True, slots=True)
class Central:
    """What the command settles itself, and how many changes of each kind a report lists."""

    payments: frozenset[int]  # folded in several shares, or matched by alias at the end
    entities: frozenset[EntityKey]  # driven by payments folded in several shares
    limit: int


@dataclass(slots=True)
class Guess:
    """A worker's changes as if every payment it folded were its alone, in listed order."""

    payments: list[PaymentChange]
    domain_rows: list[DomainRowChange]


@dataclass(slots=True)
class Settled:
    """What a worker settled alone (counts and the first listed of each), and the shadow it leaves over."""

    payments_changed: int
    changes: list[PaymentChange]
    domain_rows_changed: int
    domain_rows: list[SentRowChange]
    shadow: ShadowProjection


def _entity(domains: Domains | None, row: Any) -> EntityKey | None:
    key = entity_row_key(domains, row) if domains is not None else None
    return None if key is None else (key.domain, key.tenant, key.key)


def folded(replayer: Replayer, counts: ReplayCounts) -> Folded:
    """In a worker, once its share is read: what it folded."""
    rows = replayer.shadow.rows
    entities = {e for row in rows.values() if (e := _entity(replayer.domains, row)) is not None}
    return Folded(counts, {pid.int for pid in rows}, entities, replayer.aliases)


def central(shares: Sequence[Folded], matched: Matched, limit: int) -> Central:
    """In the command: the payments and entities more than one share (or alias matching) touches."""
    payments, entities = _in_several([s.payments for s in shares]), _in_several([s.entities for s in shares])
    payments |= {pid.int for pid in matched.payment_of.values()}
    return Central(frozenset(payments), frozenset(entities), limit)


def _in_several(sets: Iterable[set[T]]) -> set[T]:
    seen: set[T] = set()
    several: set[T] = set()
    for each in sets:
        several |= seen & each
        seen |= each
    return several


async def guess(replayer: Replayer) -> Guess:
    """In a worker: every change of its shadow, as if nothing it folded were folded elsewhere too."""
    payments = shadow_changes(replayer.shadow)
    if replayer.domains is None:
        return Guess(payments, [])
    domains, shadow = replayer.domains, replayer.shadow.folded()
    rows = [row for row, _ in shadow.values()]
    keys = {k for row in rows for k in _row_keys(domains, row, own=True)}
    changes = partial(folded_changes, domains=domains, folded=shadow, keys=keys)
    return Guess(payments, await replayer.read("reading the domain rows", changes))


def _row_keys(domains: Domains, row: Any, *, own: bool) -> Iterable[RowKey]:
    """The payment's entity row, and with `own` its per-payment row (those it has)."""
    keys = (entity_row_key(domains, row), payment_row_key(domains, row) if own else None)
    return [k for k in keys if k is not None]


def settle(replayer: Replayer, guessed: Guess, of: Central) -> Settled:
    """In a worker: its guess without what the command settles, and the shadow the command needs."""
    shadow, domains = replayer.shadow, replayer.domains
    mine = {pid: row for pid, row in shadow.rows.items() if pid.int in of.payments}
    entities = set(of.entities) | {e for row in mine.values() if (e := _entity(domains, row)) is not None}
    left = ShadowProjection()
    for pid, (row, state) in shadow.folded().items():
        if pid in mine or _entity(domains, row) in entities:
            left.adopt(row, state)
    skipped: set[RowKey] = set()
    if domains is not None:
        skipped = {k for row in left.rows.values() for k in _row_keys(domains, row, own=row.id in mine)}
    changes = [c for c in guessed.payments if c.row.id not in mine]
    rows = [r for r in guessed.domain_rows if r.key not in skipped]
    listed = [_sent(domains, r) for r in rows[: of.limit]] if domains is not None else []
    return Settled(len(changes), [_listed(c) for c in changes[: of.limit]], len(rows), listed, left)


def _listed(change: PaymentChange) -> PaymentChange:
    """The change as the report shows it: its row's merge state (not shown) left behind."""
    return dataclasses.replace(change, row=dataclasses.replace(change.row, merge_state={}))


def _sent(domains: Domains, change: DomainRowChange) -> SentRowChange:
    key = change.key
    domain = domains.get(key.domain)
    main = domain is not None and domain.main is key.table
    return (key.domain, main, key.tenant, key.key, change.change, change.columns)


def _received(domains: Domains, sent: SentRowChange) -> DomainRowChange:
    domain_name, main, tenant, key, change, columns = sent
    domain = domains.get(domain_name)
    table = None if domain is None else domain.main if main else domain.per_payment
    if table is None:
        raise RuntimeError(f"a worker's domain row names {domain_name!r}, which is not bound here")
    return DomainRowChange(RowKey(domain_name, table, tenant, key), change, columns)


async def joined_report(
    replayer: Replayer,
    counts: ReplayCounts,
    of: Central,
    matched: Matched,
    settled: Sequence[Settled],
    started: float,
) -> ReplayReport:
    """In the command: what it settles itself (the workers' shadows of it joined, what alias matching
    found folded in), merged with what the workers settled; for a dry run begun at `started`."""
    shadow = replayer.shadow
    for share in settled:
        shadow.absorb(share.shadow)
    if matched.payment_of:
        await replayer.fold_matched(matched)
    changes = [c for c in shadow_changes(shadow) if c.row.id.int in of.payments]
    rows = await _central_rows(replayer, of)
    counts.payments_changed = len(changes) + sum(s.payments_changed for s in settled)
    counts.domain_rows_changed = len(rows) + sum(s.domain_rows_changed for s in settled)
    report = ReplayReport(dry_run=True, counts=counts)
    report.changes = _first(of.limit, listed_order, changes, *(s.changes for s in settled))
    if replayer.domains is not None:
        sent = [[_received(replayer.domains, r) for r in s.domain_rows] for s in settled]
        report.domain_rows = _first(of.limit, listed_row_order, rows, *sent)
    report.seconds = time.monotonic() - started
    return report


async def _central_rows(replayer: Replayer, of: Central) -> list[DomainRowChange]:
    """The domain rows of what the command settles: the entities of every payment it holds (each such
    entity's payments folded anywhere are among them), the per-payment rows of its own payments."""
    domains, shadow = replayer.domains, replayer.shadow
    if domains is None or not shadow.rows:
        return []
    keys = {k for row in shadow.rows.values() for k in _row_keys(domains, row, own=row.id.int in of.payments)}
    changes = partial(folded_changes, domains=domains, folded=shadow.folded(), keys=keys)
    return await replayer.read("reading the domain rows", changes)


def _first(limit: int, order: Any, *lists: list[T]) -> list[T]:
    """The first `limit` of lists each sorted by `order`, merged."""
    return list(islice(heapq.merge(*lists, key=order), limit))
