"""The task runner's turns: lanes with jobs waiting are served round robin, within their own limit."""

from __future__ import annotations

import asyncio

from paysync_reconciler.runner import TaskRunner


class Jobs:
    """Jobs that run until released, recording the order in which they started."""

    def __init__(self) -> None:
        self.started: list[str] = []
        self._gates: dict[str, asyncio.Event] = {}

    def job(self, name: str):
        gate = self._gates[name] = asyncio.Event()

        async def work() -> None:
            self.started.append(name)
            await gate.wait()

        return work

    def release(self, name: str) -> None:
        self._gates[name].set()


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_another_lanes_job_goes_before_a_busy_lanes_backlog():
    runner, jobs = TaskRunner(2, "test"), Jobs()
    for name in ("a1", "a2", "a3", "a4"):
        assert runner.start(name, jobs.job(name), lane="a")
    assert runner.start("b1", jobs.job("b1"), lane="b")
    await settle()
    assert jobs.started == ["a1", "a2"]  # the limit is full

    jobs.release("a1")
    await settle()
    assert jobs.started == ["a1", "a2", "b1"]  # lane b's turn, before a3

    jobs.release("a2")
    await settle()
    assert jobs.started[-1] == "a3"
    await runner.close()


async def test_a_lane_never_takes_more_than_its_share_and_a_key_runs_once():
    runner, jobs = TaskRunner(4, "test"), Jobs()
    for name in ("a1", "a2"):
        runner.start(name, jobs.job(name), lane="a", lane_limit=1)
    runner.start("b1", jobs.job("b1"), lane="b", lane_limit=1)
    assert not runner.start("a1", jobs.job("a1-again"), lane="a")
    await settle()
    assert sorted(jobs.started) == ["a1", "b1"]

    jobs.release("a1")
    await settle()
    assert sorted(jobs.started) == ["a1", "a2", "b1"]
    await runner.close()


async def test_while_waiting_runs_until_the_turn_comes_and_a_cancelled_waiter_gives_up_its_place():
    runner, jobs = TaskRunner(1, "test"), Jobs()
    waiting: list[str] = []
    stopped = asyncio.Event()

    async def keep_lease() -> None:
        waiting.append("b1")
        try:
            await asyncio.Event().wait()
        finally:
            stopped.set()

    runner.start("a1", jobs.job("a1"), lane="a")
    runner.start("b1", jobs.job("b1"), lane="b", while_waiting=keep_lease)
    runner.start("c1", jobs.job("c1"), lane="c")
    await settle()
    assert waiting == ["b1"] and jobs.started == ["a1"]

    runner._running["c1"].cancel()  # e.g. shutdown of one job: its place goes to the next
    jobs.release("a1")
    await settle()
    assert stopped.is_set() and jobs.started == ["a1", "b1"]
    jobs.release("b1")
    await settle()
    assert not runner.busy("c1") and jobs.started == ["a1", "b1"]
    await runner.close()


async def test_a_failing_job_frees_its_slot():
    runner, jobs = TaskRunner(1, "test"), Jobs()

    async def fails() -> None:
        raise RuntimeError("boom")

    runner.start("x", fails, lane="a")
    runner.start("y", jobs.job("y"), lane="a")
    await settle()
    assert jobs.started == ["y"]
    await runner.close()
