"""Status tables as data: each row maps a gateway value to a unified status and cites its source.

The adapters read these tables; `libs/paysync-core/docs/status-tables.md` is rendered from them
(`python -m paysync_core.providers.status_docs > libs/paysync-core/docs/status-tables.md`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal

from paysync_core.domain.status import UnifiedStatus

DisputeState = Literal["open", "won", "lost"]


@dataclass(frozen=True, slots=True)
class StatusRow:
    """One gateway value, what it means there, and the unified status it maps to."""

    key: str
    status: UnifiedStatus | None  # None: the status cannot be determined, never overwrite
    meaning: str
    source: str  # the documentation section, without a link, so a reader can find and check it
    dispute: DisputeState | None = None


@dataclass(frozen=True, slots=True)
class StatusTable:
    """A named table of rows keyed by one gateway field."""

    name: str
    title: str
    key_label: str
    rows: tuple[StatusRow, ...]
    notes: tuple[str, ...] = ()
    # Built once: the adapters look a row up for every webhook and every replayed record.
    _index: Mapping[str, StatusRow] = field(init=False, repr=False, compare=False)
    _mapping: Mapping[str, UnifiedStatus | None] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        keys = [row.key for row in self.rows]
        if len(keys) != len(set(keys)):
            raise ValueError(f"duplicate keys in status table {self.name}")
        object.__setattr__(self, "_index", MappingProxyType({row.key: row for row in self.rows}))
        object.__setattr__(self, "_mapping", MappingProxyType({row.key: row.status for row in self.rows}))

    def row(self, key: str) -> StatusRow | None:
        """The row for `key`, or None for a value the table does not know."""
        return self._index.get(key)

    def index(self) -> Mapping[str, StatusRow]:
        """Rows by key."""
        return self._index

    def mapping(self) -> Mapping[str, UnifiedStatus | None]:
        """Unified status by key: the plain form of the table."""
        return self._mapping


def render_markdown(sections: Iterable[tuple[str, Iterable[StatusTable]]]) -> str:
    """The tables as Markdown, one section per gateway."""
    lines = [
        "# Provider status tables",
        "",
        "How each gateway's own words map onto paysync's unified statuses. Generated from the",
        "tables in `paysync_core/providers/` by",
        "`python -m paysync_core.providers.status_docs > libs/paysync-core/docs/status-tables.md`;",
        "a unit test fails when this file and the code disagree. Each row names the documentation",
        "section it comes from, so it can be checked against the gateway's docs.",
        "",
        "A status of `(none)` means the value says nothing certain about the payment: the",
        "observation is kept for history but never overwrites a known status.",
    ]
    for title, tables in sections:
        lines += ["", f"## {title}"]
        for table in tables:
            lines += ["", *_render_table(table)]
    return "\n".join(lines) + "\n"


def _render_table(table: StatusTable) -> list[str]:
    with_dispute = any(row.dispute for row in table.rows)
    dispute = ["dispute"] if with_dispute else []
    head = [table.key_label, "unified status", *dispute, "meaning at the gateway", "source"]
    lines = [f"### {table.title} (`{table.name}`)", "", _cells(head), _cells(["---"] * len(head))]
    for row in table.rows:
        cells = [f"`{row.key}`", row.status.value if row.status else "(none)"]
        if with_dispute:
            cells.append(row.dispute or "")
        lines.append(_cells([*cells, row.meaning, row.source]))
    if table.notes:
        lines.append("")
        lines += [f"- {note}" for note in table.notes]
    return lines


def _cells(values: Iterable[str]) -> str:
    return "| " + " | ".join(v.replace("|", "\\|") for v in values) + " |"
