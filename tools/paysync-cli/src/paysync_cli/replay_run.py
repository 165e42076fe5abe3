"""A replay's work: derive observations from the records read, then fold them in a shadow or publish them."""

from __future__ import annotations

import asyncio
import gc
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import asdict, dataclass, field
from functools import partial
from typing import TYPE_CHECKING, TypeVar

from aiokafka.structs import ConsumerRecord
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from paysync_cli.replay_alias import AliasBindings, Matched, Orphan, parked_before, parked_payloads
from paysync_cli.replay_applied import AppliedState
from paysync_cli.replay_domains import (
    DomainRowChange,
    Row,
    RowKey,
    folded_changes,
    read_rows,
    row_keys,
)
from paysync_cli.replay_outage import DatabaseRetry, DatabaseUnavailable
from paysync_cli.replay_progress import ProjectorOffsets, ReplayStalled
from paysync_cli.replay_report import PaymentChange, ReplayCounts, ReplayReport, listed_order, shadow_changes
from paysync_cli.replay_shadow import (
    ObservationKey,
    PaymentRow,
    RefKey,
    ShadowProjection,
    count_unapplied,
    load_payments,
    payments_of,
    resolve_ids,
    still_unapplied,
)
from paysync_cli.replay_source import Filters, ReplaySource, derive
from paysync_cli.replay_window import AppliedWindow
from paysync_cli.settings import ReplaySettings
from paysync_core import topics
from paysync_core.contracts import PaymentObservation
from paysync_core.db import REGISTERED_CHANNEL
from paysync_core.domains import Domains

if TYPE_CHECKING:  # the real run's producer; the dry run's worker processes do not import faststream
    from paysync_core.kafka import DurableProducer

T = TypeVar("T")


async def wake_unpark(conn: AsyncConnection) -> None:
    """Wake the projectors' unpark loops (as a payment's registration does), at the commit of `conn`."""
    await conn.execute(text(f"NOTIFY {REGISTERED_CHANNEL}"))


def tune_gc(young_objects: int) -> None:
    """Collect garbage less often in this process (`PAYSYNC_REPLAY_GC_YOUNG_OBJECTS`; 0: as Python does).

    What is alive when called (imported modules, settings) is frozen: no collection walks it again.
    """
    gc.freeze()
    if young_objects:
        _, middle, old = gc.get_threshold()
        gc.set_threshold(young_objects, middle, old)


@dataclass(slots=True)
class LookedUp:
    """What a batch's observations are, as the database has them: read together, retried together."""

    fresh: list[PaymentObservation]  # those the history does not have, under their final ids
    had: int  # how many the history has
    grouped: dict[uuid.UUID, list[PaymentObservation]]  # the fresh ones by the payment they name
    orphans: list[PaymentObservation]  # the fresh ones that name no payment
    rows: dict[uuid.UUID, PaymentRow]  # the payments not read before
    step_rows: set[RowKey]  # a real run's: the domain rows the step touches
    domain_before: dict[RowKey, Row]  # a real run's: those of them not read before, as they are now


@dataclass
class Replayer:
    """Runs one replay over batches of records; `producer` None makes it a dry run.

    With `domains` (bound), the report names the domain rows changed (dry run: that would change).
    `phone_key` (`PAYSYNC_PHONE_HASH_KEY`) hashes M-Pesa payers' numbers as the normalizer does.
    A real run with `progress` waits for each step on the projector's committed offsets, not the database,
    up to `PAYSYNC_REPLAY_BATCHES_AHEAD` steps behind the one it publishes.
    Its database work is retried whole through an outage (`paysync_cli.replay_outage`), up to
    `PAYSYNC_REPLAY_DATABASE_OUTAGE_SECONDS`; `warn` tells the operator (stderr). Publishing is not retried.
    """

    engine: AsyncEngine
    settings: ReplaySettings
    source: ReplaySource
    filters: Filters
    producer: DurableProducer | None = None
    on_records: Callable[[int], None] = lambda n: None
    domains: Domains | None = None
    phone_key: str = field(default="", repr=False)
    progress: ProjectorOffsets | None = None
    warn: Callable[[str], None] | None = field(default=None, repr=False)  # None: printed to stderr
    _retry: DatabaseRetry = field(init=False)
    _shadow: ShadowProjection = field(default_factory=ShadowProjection)
    _before: dict[uuid.UUID, PaymentRow] = field(default_factory=dict)
    _applying: AppliedWindow = field(init=False)  # the batches published, not yet seen applied
    _domain_before: dict[RowKey, Row] = field(default_factory=dict)  # a real run's, read before publishing
    _after: AppliedState = field(init=False)  # a real run's, read as each step is applied
    _steps: int = 0  # a real run's steps published
    _payment_of: dict[RefKey, uuid.UUID] = field(default_factory=dict)  # references looked up so far
    _aliases: AliasBindings = field(default_factory=AliasBindings)
    _parked: list[Orphan] = field(default_factory=list)  # parked as the replay began, matched by nothing

    def __post_init__(self) -> None:
        self._applying = AppliedWindow(self.settings.batches_ahead)
        deadline = self.settings.database_outage_seconds
        self._retry = DatabaseRetry(deadline) if self.warn is None else DatabaseRetry(deadline, self.warn)
        self._after = AppliedState(self.engine, self.domains, self._before, self._domain_before, self._retry)

    async def read(self, what: str, work: Callable[[AsyncConnection], Awaitable[T]]) -> T:
        """`work(conn)` on a pooled connection, retried whole through a database outage."""
        return await self._retry.read(self.engine, what, work)

    async def run(self, batches: AsyncIterator[list[ConsumerRecord]]) -> ReplayReport:
        """Replay every batch, then report what changed."""
        started = time.monotonic()
        counts = ReplayCounts()
        try:
            await self.bind_domains()
            await self.note_parked()
            await self.consume(batches, counts)
            return await self.report(counts, started)
        except DatabaseUnavailable as exc:
            exc.done = self.stopped(counts)
            raise

    def stopped(self, counts: ReplayCounts) -> str:
        """What the replay had done when the database stopped it, and what running it again does."""
        if self.producer is None:
            return "A dry run changes nothing: run it again once the database answers"
        return (
            f"It had read {counts.records:,} record(s) and published {counts.replayed:,} observation(s) in"
            f" {self._steps} step(s), {self._after.steps_applied} of them seen applied (the status-projector"
            " applies the rest from the topic once the database is back). Running the same command again is"
            " safe: what the history has by then is counted `already seen` and not published again, the rest"
            " is published again (the projector skips an observation it already has), and its report lists"
            " only what that run changes"
        )

    async def bind_domains(self) -> None:
        """Find the domain mapping's tables and columns (if it has one) in the database."""
        if self.domains is not None:
            await self._retry("reading the domain tables", partial(self.domains.bind, self.engine))

    async def note_parked(self) -> None:
        """Read the observations parked before anything is replayed (what the replay's aliases may match)."""
        self._parked = await self.read(
            "reading the parked observations", partial(parked_before, filters=self.filters)
        )

    async def consume(self, batches: AsyncIterator[list[ConsumerRecord]], counts: ReplayCounts) -> None:
        """Replay every batch (a real run: until the projector applied the last), counting into `counts`."""
        try:
            async for records in batches:
                await self._replay_batch(records, counts)
                self.on_records(len(records))
            await self._applying.drain()
        finally:
            await self._applying.cancel()  # stopped early (dead letters, a stall): nothing left waiting

    def absorb(self, counts: ReplayCounts, into: ReplayCounts, aliases: AliasBindings) -> None:
        """Take in a dry run's share replayed elsewhere (`paysync_cli.replay_parallel`): its counts (added
        to `into`), the aliases it bound and the observations it held."""
        for name, value in asdict(counts).items():
            setattr(into, name, getattr(into, name) + value)
        self._aliases.absorb(aliases)

    @property
    def shadow(self) -> ShadowProjection:
        """The dry run's shadow projection so far."""
        return self._shadow

    @property
    def aliases(self) -> AliasBindings:
        """The aliases bound and the observations held so far."""
        return self._aliases

    async def report(self, counts: ReplayCounts, started: float) -> ReplayReport:
        """What changed (dry run: would change), for a replay begun at `started` (time.monotonic)."""
        # The shadow (a state per payment: the workers' joined, in a pooled dry run) lives until the
        # report is done: frozen, no collection walks it again while the report allocates.
        gc.freeze()
        report = ReplayReport(dry_run=self.producer is None, counts=counts)
        matched = await self._match_by_alias(counts)
        if self.producer is not None and matched:  # applied by the unpark loop, after the last step
            await self._after.read_again(self._before[pid] for pid in matched if pid in self._before)
        changes = self._shadow_changes() if self.producer is None else self._applied_changes()
        report.counts.payments_changed = len(changes)
        report.changes = changes[: self.settings.report_limit]
        rows = await self._domain_changes()
        report.counts.domain_rows_changed = len(rows)
        report.domain_rows = rows[: self.settings.report_limit]
        report.seconds = time.monotonic() - started
        return report

    async def _replay_batch(self, records: list[ConsumerRecord], counts: ReplayCounts) -> None:
        derived = derive(records, self.source, self.filters, self.phone_key)
        counts.records += len(records)
        counts.filtered_out += derived.filtered_out
        counts.unreadable += derived.unreadable
        counts.phones_unhashed += derived.phones_unhashed
        counts.observations += len(derived.observations)
        if not derived.observations:
            return
        # Counted and kept only once read whole: a read cut by an outage is read again, from the start.
        looked = await self.read(
            "looking up a batch's observations and payments",
            partial(self._look_up, batch=derived.observations),
        )
        fresh, grouped, rows, step_rows = looked.fresh, looked.grouped, looked.rows, looked.step_rows
        self._domain_before |= looked.domain_before
        counts.already_seen += looked.had
        counts.replayed += len(fresh)
        self._aliases.hold(looked.orphans)
        if self.producer is None:
            for pid, batch in grouped.items():
                row = rows.get(pid) or self._shadow.row(pid)
                self._shadow.fold(row, batch)
                self._aliases.learn(pid, row.tenant, row.provider, batch)
            return
        self._before.update(rows)
        for pid, batch in grouped.items():  # what the projector will bind, as the dry run learns it
            self._aliases.learn(pid, self._before[pid].tenant, self._before[pid].provider, batch)
        self._steps += 1
        self._after.touch(self._steps, (self._before[pid] for pid in grouped), step_rows)
        await self._publish_step(fresh)

    async def _look_up(self, conn: AsyncConnection, batch: list[PaymentObservation]) -> LookedUp:
        """Which of `batch` are new, the payments they name, and (a real run) the domain rows they drive;
        only `self._payment_of` is written (references found: each names its payment for good)."""
        fresh, had = await resolve_ids(conn, batch)
        grouped, orphans = await payments_of(conn, fresh, self._payment_of)
        # A payment folded (a real run: read) before is not read again; asked of the dict itself
        # (a copy of it every batch copied every payment touched so far).
        seen = self._shadow.rows if self.producer is None else self._before
        unseen = [pid for pid in grouped if pid not in seen]
        rows = await load_payments(conn, unseen, merge_state=self.producer is None)
        step_rows: set[RowKey] = set()
        domain_before: dict[RowKey, Row] = {}
        if self.producer is not None and self.domains is not None:
            # The step's domain rows, once: those not read before are read now; it touches them all.
            step_rows = row_keys(self.domains, (rows.get(pid) or self._before[pid] for pid in grouped))
            domain_before = await read_rows(conn, [k for k in step_rows if k not in self._domain_before])
        return LookedUp(fresh, had, grouped, orphans, rows, step_rows, domain_before)

    async def _publish_step(self, fresh: list[PaymentObservation]) -> None:
        """Publish a step's observations (what it touched is noted); the projector applies them while the
        next steps are read and published, and the report reads what they changed once they are applied."""
        ends = await self._publish(fresh)
        keys = {(o.tenant, o.observation_id) for o in fresh}
        wait = (
            partial(self._wait_until_applied, keys)
            if self.progress is None
            else partial(self._wait_consumed, ends, keys)
        )
        await self._applying.add(partial(self._after.applied, self._steps, wait))

    async def _publish(self, batch: list[PaymentObservation]) -> dict[int, int]:
        """Publish `batch`; per partition, the offset after its last observation."""
        if self.producer is None:
            raise RuntimeError("a dry run publishes nothing")
        spec = topics.PAYMENT_OBSERVATIONS
        return await self.producer.send_many(spec.name, [(spec.key_for(o), o.to_bytes()) for o in batch])

    async def _wait_consumed(self, ends: dict[int, int], keys: set[ObservationKey]) -> None:
        """Wait until the projector's group committed past `ends`, then read the database once: what is
        neither in the history nor parked then was consumed without being applied (dead-lettered)."""
        if self.progress is None:
            raise RuntimeError("no projector offsets to wait on")
        topic, timeout = topics.PAYMENT_OBSERVATIONS.name, self.settings.apply_timeout_seconds
        if not await self.progress.wait_reached(topic, ends, timeout):
            raise self._stalled(len(keys), "replayed")
        missing = await self.read("counting what the projector applied", partial(count_unapplied, keys=keys))
        if missing:
            raise ReplayStalled(
                f"the status-projector consumed {missing} replayed observation(s) without applying"
                " them: it dead-lettered them (see its log and the dead-letter topic)"
            )

    def _stalled(self, count: int, what: str) -> ReplayStalled:
        unanswered = None if self.progress is None else self.progress.unanswered
        return ReplayStalled.unapplied(count, what, self.settings.apply_timeout_seconds, unanswered)

    async def _wait_until_applied(self, keys: set[ObservationKey], *, parked_counts: bool = True) -> None:
        """Wait until the projector recorded (or, `parked_counts`, parked) every observation of `keys`."""
        deadline = time.monotonic() + self.settings.apply_timeout_seconds
        while keys:
            unapplied = partial(still_unapplied, keys=keys, parked_counts=parked_counts)
            keys = await self.read("looking up what the projector applied", unapplied)
            if not keys:
                return
            if time.monotonic() > deadline:
                what = "replayed" if parked_counts else "parked (named by an alias the replay binds)"
                raise self._stalled(len(keys), what)
            await asyncio.sleep(0.1)

    async def _match_by_alias(self, counts: ReplayCounts) -> set[uuid.UUID]:
        """Match what named no payment against the aliases the replay binds; count both. A dry run folds
        those matched; a real run waits until the projector's unpark loop has applied them. The payments
        they were matched to."""
        matched = self.settle_aliases(counts)
        if not matched.payment_of:
            return set()
        if self.producer is None:
            await self.fold_matched(matched)
        else:
            # The bindings are committed: wake the unpark loop now (twice, after an outage: harmless).
            await self._retry("waking the projectors' unpark loops", self._wake_unpark)
            await self._wait_until_applied(set(matched.payment_of), parked_counts=False)
        return set(matched.payment_of.values())

    async def _wake_unpark(self) -> None:
        async with self.engine.begin() as conn:
            await wake_unpark(conn)

    def settle_aliases(self, counts: ReplayCounts) -> Matched:
        """Match what named no payment against the aliases the replay binds, and count both."""
        held = len(self._aliases.held)
        matched = self._aliases.settle(self._parked)
        counts.unmatched = held - len(matched.replayed)
        counts.matched_by_alias = len(matched.payment_of)
        return matched

    async def fold_matched(self, matched: Matched) -> None:
        """Fold the observations matched by alias into their payments' shadow states (a dry run)."""
        parked = set(matched.payment_of.keys() - matched.replayed.keys())
        read = await self.read(
            "reading the parked observations matched", partial(parked_payloads, keys=parked)
        )
        found = [*matched.replayed.values(), *read]
        by_payment: dict[uuid.UUID, list[PaymentObservation]] = {}
        for obs in found:
            by_payment.setdefault(matched.payment_of[(obs.tenant, obs.observation_id)], []).append(obs)
        for pid, batch in by_payment.items():
            self._shadow.fold(self._shadow.row(pid), batch)

    def _shadow_changes(self) -> list[PaymentChange]:
        return shadow_changes(self._shadow)

    def _applied_changes(self) -> list[PaymentChange]:
        """A real run's changed payments: each as read once the last step that touched it was applied."""
        found = [PaymentChange(row, row.snapshot, now) for row, now in self._after.changed()]
        return sorted(found, key=listed_order)

    async def _domain_changes(self) -> list[DomainRowChange]:
        """The domain rows changed: a dry run's as the projector would write them, a real run's as read."""
        if self.domains is None:
            return []
        if self.producer is not None:
            return self._after.rows_changed()
        folded = self._shadow.folded()
        keys = row_keys(self.domains, (row for row, _ in folded.values()))
        changes = partial(folded_changes, domains=self.domains, folded=folded, keys=keys)
        return await self.read("reading the domain rows", changes)
