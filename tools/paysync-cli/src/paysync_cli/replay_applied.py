"""A real run's report, read step by step as the status-projector applies what the replay published."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Hashable, Iterable, Iterator, Mapping
from typing import Generic, TypeVar

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from paysync_cli.replay_domains import Row, RowKey, read_rows, row_keys
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
    """The payments' snapshots and the domain rows a real run touched, each read once the last step that
    touched it is applied, while later steps are still being applied.

    The report used to read them all after the last step was applied: seconds in which the projector had
    nothing to do. What is left to read at the end is what is matched by alias (applied by the
    projector's unpark loop after the last step).
    """

    def __init__(self, engine: AsyncEngine, domains: Domains | None) -> None:
        self._engine, self._domains = engine, domains
        self._payments: LastTouch[uuid.UUID] = LastTouch()
        self._rows: LastTouch[RowKey] = LastTouch()
        self._snapshots: dict[uuid.UUID, Snapshot] = {}
        self.rows: dict[RowKey, Row] = {}

    def touch(self, step: int, payments: Iterable[PaymentRow]) -> None:
        """Step `step` publishes observations of `payments` (as read before the replay published any)."""
        listed = list(payments)
        self._payments.touch(step, (row.id for row in listed))
        self._rows.touch(step, row_keys(self._domains, listed) if self._domains else ())

    async def applied(self, step: int, wait: Callable[[], Awaitable[None]]) -> None:
        """Wait (`wait()`) until step `step` is applied, then read what it touched last."""
        await wait()
        async with self._engine.connect() as conn:
            await self._read(conn, self._payments.due(step), self._rows.due(step))

    async def read_again(self, payments: Iterable[PaymentRow]) -> None:
        """Read these payments and their domain rows again (changed after the last step: matched by alias)."""
        listed = list(payments)
        rows = row_keys(self._domains, listed) if self._domains else ()
        async with self._engine.connect() as conn:
            await self._read(conn, [row.id for row in listed], rows)

    def changed(self, before: Mapping[uuid.UUID, PaymentRow]) -> Iterator[tuple[PaymentRow, Snapshot]]:
        """Each payment (as read `before`) whose snapshot read since differs, with that snapshot."""
        after = self._snapshots
        for pid, row in before.items():
            if (now := after.get(pid)) is not None and now != row.snapshot:
                yield row, now

    async def _read(self, conn: AsyncConnection, payments: list[uuid.UUID], rows: Iterable[RowKey]) -> None:
        self._snapshots |= await load_snapshots(conn, payments)
        self.rows |= await read_rows(conn, rows)
