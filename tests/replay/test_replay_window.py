"""How far a real run runs ahead of the projector: `paysync_cli.replay_window.AppliedWindow`.

Unit tests (no broker, no database): each "batch" is a wait the test ends when it likes. The integration
tests in `test_replay.py` show the same through `paysync replay` against the projector (its dead letters
stop the replay, a group that consumes nothing times it out).
"""

from __future__ import annotations

import asyncio

import pytest

from paysync_cli.replay_window import AppliedWindow


class Batch:
    """A published batch: its wait starts when the window calls it and ends when the test applies it."""

    def __init__(self, log: list[str], name: str, fails: bool = False) -> None:
        self.log, self.name, self.fails = log, name, fails
        self.applied = asyncio.Event()

    async def wait(self) -> None:
        self.log.append(f"{self.name} waited on")
        await self.applied.wait()
        if self.fails:
            raise RuntimeError(f"{self.name} dead-lettered")
        self.log.append(f"{self.name} applied")


async def test_the_replay_runs_up_to_depth_batches_ahead_and_waits_on_them_one_at_a_time_in_order() -> None:
    log: list[str] = []
    window = AppliedWindow(depth=2)
    first, second, third = (Batch(log, name) for name in ("first", "second", "third"))
    await window.add(first.wait)
    await window.add(second.wait)  # two unapplied: the replay goes on reading and publishing
    third_added = asyncio.create_task(window.add(third.wait))
    await asyncio.sleep(0.05)
    assert not third_added.done()  # three unapplied: it waits for the oldest
    assert log == ["first waited on"]  # the second's wait starts once the first's is over
    second.applied.set()
    await asyncio.sleep(0.05)
    assert not third_added.done()
    first.applied.set()
    await third_added
    third.applied.set()
    await window.drain()
    assert log == [
        "first waited on",
        "first applied",
        "second waited on",
        "second applied",
        "third waited on",
        "third applied",
    ]


async def test_a_batch_dead_lettered_stops_the_replay_there_and_nothing_is_left_waiting() -> None:
    log: list[str] = []
    window = AppliedWindow(depth=3)
    first, second = Batch(log, "first", fails=True), Batch(log, "second")
    await window.add(first.wait)
    await window.add(second.wait)
    first.applied.set()
    with pytest.raises(RuntimeError, match="first dead-lettered"):
        await window.drain()
    await window.cancel()  # the replay stops: the second batch's wait is stopped, not left running
    second.applied.set()
    await asyncio.sleep(0.05)
    assert "second applied" not in log
    await window.drain()  # nothing left to wait on
