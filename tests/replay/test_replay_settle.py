"""A dry run split over worker processes reports what one process reports (`paysync_cli.replay_settle`).

Unit tests, no broker and no database: payments folded in shares that overlap (a payment's records in
several shares), observations that name their payment only by an alias another share binds, a report
limit that cuts the lists; each share's messages go through pickle as between processes. The domain
rows, which need the database, are compared through `paysync replay` in `test_replay.py`.
"""

from __future__ import annotations

import pickle
import time
import uuid
from contextlib import asynccontextmanager
from dataclasses import asdict
from typing import Any, TypeVar, cast

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from paysync_cli.replay_report import ReplayCounts, ReplayReport
from paysync_cli.replay_run import Replayer
from paysync_cli.replay_settle import central, folded, guess, joined_report, settle
from paysync_cli.replay_shadow import PaymentRow, Snapshot
from paysync_cli.replay_source import Filters, ReplaySource
from paysync_cli.settings import ReplaySettings
from paysync_core.contracts import PaymentObservation
from paysync_core.domain.merge import PaymentState
from paysync_core.domain.status import UnifiedStatus
from paysync_dev.service_fixtures import stripe_paid

T = TypeVar("T")

STATUSES = (UnifiedStatus.SUCCEEDED, UnifiedStatus.FAILED, UnifiedStatus.PROCESSING, UnifiedStatus.REFUNDED)


class NoDatabase:
    """An engine whose connections are never used (no parked observation is read: none is matched)."""

    @asynccontextmanager
    async def connect(self) -> Any:
        yield None


def replayer(limit: int) -> Replayer:
    engine = cast(Any, NoDatabase())
    return Replayer(
        engine, ReplaySettings(report_limit=limit), ReplaySource.RAW, Filters(None, None, frozenset())
    )


def payment(n: int, mode: str | None) -> PaymentRow:
    """A pending payment `cs_<n>` (its intent `pi_<n>`), stored in `mode`."""
    pending = Snapshot.of_state(PaymentState())
    return PaymentRow(uuid.uuid4(), "acme", "stripe", f"cs_{n}", None, None, 2000, "USD", mode, {}, pending)


def observation(
    row: PaymentRow, status: UnifiedStatus, mode: str | None, by_alias: bool
) -> PaymentObservation:
    """An observation of the payment: by its own reference (binding its intent), or by its intent only."""
    n = row.provider_ref.removeprefix("cs_")
    seen = stripe_paid("acme", f"pi_{n}" if by_alias else row.provider_ref, amount_minor=2000, mode=mode)
    return seen.model_copy(update={"status": status, "aliases": () if by_alias else (f"pi_{n}",)})


def replay_into(
    target: Replayer, rows: list[PaymentRow], records: list[tuple[int, int, str | None, bool]]
) -> None:
    """Fold the records (payment, status, mode, by alias) into `target` as `Replayer.consume` does."""
    for n, status, mode, by_alias in records:
        obs = observation(rows[n], STATUSES[status], mode, by_alias)
        if by_alias:
            target.aliases.hold([obs])
            continue
        target.shadow.fold(rows[n], [obs])
        target.aliases.learn(rows[n].id, "acme", "stripe", [obs])


def sent(message: T) -> T:
    """The message as another process receives it."""
    return cast(T, pickle.loads(pickle.dumps(message)))


async def in_shares(
    rows: list[PaymentRow], records: list[tuple[int, int, str | None, bool]], shares: list[int], limit: int
) -> ReplayReport:
    """The report of the records dealt into shares (`shares[i]`: record i's), settled as workers do."""
    workers = [replayer(limit) for _ in range(3)]
    for share, record in zip(shares, records, strict=True):
        replay_into(workers[share], rows, [record])
    command, counts = replayer(limit), ReplayCounts()
    first = [sent(folded(w, ReplayCounts())) for w in workers]
    for share in first:
        command.absorb(share.counts, counts, share.aliases)
    matched = command.settle_aliases(counts)
    of = sent(central(first, matched, limit))
    settled = [sent(settle(w, await guess(w), of)) for w in workers]
    return await joined_report(command, counts, of, matched, settled, time.monotonic())


records_of = st.lists(
    st.tuples(
        st.integers(0, 7), st.integers(0, len(STATUSES) - 1), st.sampled_from([None, "test"]), st.booleans()
    ),
    max_size=30,
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    modes=st.lists(st.sampled_from([None, "live"]), min_size=8, max_size=8),
    records=records_of,
    data=st.data(),
    limit=st.integers(0, 6),
)
async def test_shares_report_what_one_process_reports(modes, records, data, limit) -> None:
    rows = [payment(n, mode) for n, mode in enumerate(modes)]
    shares = data.draw(st.lists(st.integers(0, 2), min_size=len(records), max_size=len(records)))
    alone = replayer(limit)
    replay_into(alone, rows, records)
    expected = await alone.report(ReplayCounts(), time.monotonic())

    got = await in_shares(rows, records, shares, limit)

    assert [c.to_json() for c in got.changes] == [c.to_json() for c in expected.changes]
    assert asdict(got.counts) == asdict(expected.counts)
    assert got.truncated == expected.truncated


async def test_a_payment_whose_records_are_in_two_shares_is_joined_by_the_command() -> None:
    rows = [payment(0, None)]
    # Paid in one share, refunded in the other: neither share alone knows the payment ends refunded.
    records = [(0, 0, None, False), (0, 3, None, False)]

    report = await in_shares(rows, records, [0, 1], limit=10)

    assert [(c.before.status, c.after.status) for c in report.changes] == [("pending", "refunded")]
    assert report.counts.payments_changed == 1
