"""A real run's report, read step by step as the status-projector applies what the replay published."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Hashable, Iterable, Iterator, Mapping
from functools import partial
from typing import Generic, TypeVar

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from paysync_cli.replay_domains import (
    DomainRowChange,
    Row,
    RowKey,
    changed_rows,
    listed_row_order,
    read_rows,
    row_keys,
)
from paysync_cli.replay_outage import DatabaseRetry
from paysync_cli.replay_shadow import PaymentRow, Snapshot, load_snapshots
from paysync_core.domains import Domains

K = TypeVar("K", bound=Hashable)


class LastTouch(Generic[K]):
    """Which step touched each thing last, among the steps not yet seen applied.

    A thing is due (to be read) when the last step that touched it is applied: read then, it is in its
    final state unless a step published later touches it again, and that step makes it due once more.
    Only the steps in flight are held, never every thing touched so far.
    """

    def __init__(self) -> None:
        self._last: dict[K, int] = {}
        self._touched: dict[int, list[K]] = {}

    def touch(self, step: int, things: Iterable[K]) -> None:
        """Step `step` (published after every step touched before) touches `things`."""
        listed = self._touched.setdefault(step, [])
        for thing in things:
            self._last[thing] = step
            listed.append(thing)

    def due(self, step: int) -> list[K]:
        """What step `step`, now applied, touched last: forgotten here, read by the caller."""
        last, found = self._last, []
        for thing in self._touched.pop(step, ()):
            if last.get(thing) == step:
                del last[thing]
                found.append(thing)
        return found


class AppliedState:
    """What a real run changed: the payments and the domain rows it touched, each read and compared with
    its state before the replay once the last step that touched it is applied, while later steps are
    still being applied.

    The report used to read and compare them all after the last step was applied: seconds in which the
    projector had nothing to do. What is left to read at the end is what is matched by alias (applied by
    the projector's unpark loop after the last step).

    Each read is retried whole through a database outage (`retry`): it notes a state as it is now, so a
    read again later notes the same or a later one, and a step's reads come after the step before's.
    """

    def __init__(
        self,
        engine: AsyncEngine,
        domains: Domains | None,
        before: Mapping[uuid.UUID, PaymentRow],
        rows_before: Mapping[RowKey, Row],
        retry: DatabaseRetry,
    ) -> None:
        """`before` and `rows_before`: the payments and domain rows as read before the replay published any
        observation of them (filled in by the caller as it reads them)."""
        self._engine, self._domains, self._retry = engine, domains, retry
        self._before, self._rows_before = before, rows_before
        self.steps_applied = 0  # the steps seen applied (and read) so far: 1 to this
        self._payments: LastTouch[uuid.UUID] = LastTouch()
        self._rows: LastTouch[RowKey] = LastTouch()
        self._changed: dict[uuid.UUID, Snapshot] = {}
        self._rows_changed: dict[RowKey, DomainRowChange] = {}

    def touch(self, step: int, payments: Iterable[PaymentRow], rows: Iterable[RowKey] = ()) -> None:
        """Step `step` publishes observations of `payments` (as read before the replay published any),
        which drive the domain rows `rows` (`row_keys` of them: the caller works them out once a step,
        for its reads before publishing too)."""
        self._payments.touch(step, (row.id for row in payments))
        self._rows.touch(step, rows)

    async def applied(self, step: int, wait: Callable[[], Awaitable[None]]) -> None:
        """Wait (`wait()`) until step `step` is applied, then read what it touched last."""
        await wait()
        due = partial(self._read, payments=self._payments.due(step), rows=self._rows.due(step))
        await self._retry.read(self._engine, f"reading what step {step} changed", due)
        self.steps_applied = step

    async def read_again(self, payments: Iterable[PaymentRow]) -> None:
        """Read these payments and their domain rows again (changed after the last step: matched by alias)."""
        listed = list(payments)
        rows = row_keys(self._domains, listed) if self._domains else ()
        again = partial(self._read, payments=[row.id for row in listed], rows=rows)
        await self._retry.read(self._engine, "reading the payments matched by alias", again)

    def changed(self) -> Iterator[tuple[PaymentRow, Snapshot]]:
        """Each payment (as read before) whose state differs now, with its state now."""
        before = self._before
        for pid, now in self._changed.items():
            yield before[pid], now

    def rows_changed(self) -> list[DomainRowChange]:
        """The domain rows that differ now, in listed order."""
        return sorted(self._rows_changed.values(), key=listed_row_order)

    async def _read(self, conn: AsyncConnection, payments: list[uuid.UUID], rows: Iterable[RowKey]) -> None:
        """Read these payments and domain rows as stored now; note which differ from before."""
        for pid, now in (await load_snapshots(conn, payments)).items():
            if now != self._before[pid].snapshot:
                self._changed[pid] = now
            else:
                self._changed.pop(pid, None)  # changed as a step before left it, undone by a later one
        after = await read_rows(conn, rows)
        for key in after:
            self._rows_changed.pop(key, None)
        before = {key: self._rows_before[key] for key in after}
        self._rows_changed |= {change.key: change for change in changed_rows(before, after)}
