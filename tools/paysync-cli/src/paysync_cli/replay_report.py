"""What a replay reports: its counts, and payment by payment what it changed (dry run: would change)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from paysync_cli.replay_domains import DomainRowChange
from paysync_cli.replay_shadow import PaymentRow, ShadowProjection, Snapshot


@dataclass(slots=True)
class ReplayCounts:
    """What a replay read, skipped and replayed."""

    records: int = 0
    filtered_out: int = 0
    unreadable: int = 0
    observations: int = 0
    already_seen: int = 0  # in the history already, or repeated among the records replayed
    replayed: int = 0
    # Distinct; no payment has their reference, nor does the replay bind one: the projector parks them
    unmatched: int = 0
    # Name their payment only by an alias the replay binds (replayed, or parked before the replay):
    # the projector parks them, then applies them
    matched_by_alias: int = 0
    phones_unhashed: int = 0  # M-Pesa payers not findable by phone: no PAYSYNC_PHONE_HASH_KEY was given
    payments_changed: int = 0
    domain_rows_changed: int = 0


@dataclass(frozen=True, slots=True)
class PaymentChange:
    """One payment whose state the replay changes (dry run: would change)."""

    row: PaymentRow
    before: Snapshot
    after: Snapshot

    def to_json(self) -> dict[str, Any]:
        """The change as JSON: the payment, the domain row it drives, its state before and after."""
        row = self.row
        return {
            "payment_id": str(row.id),
            "tenant": row.tenant,
            "provider": row.provider,
            "provider_ref": row.provider_ref,
            "domain": row.domain,
            "entity_id": row.entity_id,
            "before": self.before.to_json(),
            "after": self.after.to_json(),
        }


def listed_order(change: PaymentChange) -> tuple[str, int]:
    """Changes are listed by tenant, then payment id as text: the same order as the id's 128-bit
    number (the text is its fixed-width lowercase hex), which is read where the text is formatted."""
    return change.row.tenant, change.row.id.int


def shadow_changes(shadow: ShadowProjection) -> list[PaymentChange]:
    """The payments whose shadow state differs from what is stored, in listed order."""
    found = [PaymentChange(row, row.snapshot, after) for row, after in shadow.changed()]
    return sorted(found, key=listed_order)


@dataclass(slots=True, repr=False)
class ReplayReport:
    """The outcome of a replay, payment by payment (up to the report limit) and in counts."""

    dry_run: bool
    counts: ReplayCounts = field(default_factory=ReplayCounts)
    changes: list[PaymentChange] = field(default_factory=list)
    domain_rows: list[DomainRowChange] = field(default_factory=list)
    seconds: float = 0.0

    def __repr__(self) -> str:
        # Short: asyncio.run reprs its finished main task (whose result this is) when it restores the
        # SIGINT handler, and a repr of every listed change cost seconds of CPU at the end of a run.
        listed = f"{len(self.changes)} payments, {len(self.domain_rows)} domain rows listed"
        return f"ReplayReport(dry_run={self.dry_run}, counts={self.counts}, {listed})"

    @property
    def truncated(self) -> bool:
        """Whether some changed payments are counted but not listed."""
        return self.counts.payments_changed > len(self.changes) or self.counts.domain_rows_changed > len(
            self.domain_rows
        )

    def to_json(self) -> dict[str, Any]:
        """The report as JSON (what `--json` prints)."""
        return {
            "dry_run": self.dry_run,
            "counts": asdict(self.counts),
            "seconds": round(self.seconds, 3),
            "payments": [c.to_json() for c in self.changes],
            "domain_rows": [c.to_json() for c in self.domain_rows],
            "truncated": self.truncated,
        }
