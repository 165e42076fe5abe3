"""A replay yields the host's cores to the live services: `paysync_cli.replay.yield_cores`.

Each case runs in a fresh Python process (the priority is the process's own and not to be changed in the
test runner's), as `paysync replay` calls it first thing: the value the process, a thread it starts
afterwards and a worker process it forks afterwards run at.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

PROBE = """
import os, threading
from paysync_cli.replay import yield_cores

def nice():
    return os.getpriority(os.PRIO_PROCESS, 0)

yield_cores({niceness})
seen = [nice()]
thread = threading.Thread(target=lambda: seen.append(nice()))
thread.start()
thread.join()
child = os.fork()
if child == 0:
    os._exit(nice())
seen.append(os.waitstatus_to_exitcode(os.waitpid(child, 0)[1]))
print(*seen)
"""


#: The test runner's own nice value: a process it starts begins there (it may itself run under `nice`).
RUNNER = os.getpriority(os.PRIO_PROCESS, 0)


def priorities(niceness: int, started_at: int = RUNNER) -> list[int]:
    """The nice values of the process, a thread and a forked child after `yield_cores(niceness)`, for a
    process started at `started_at` (at least the runner's)."""
    command = [sys.executable, "-c", PROBE.format(niceness=niceness)]
    done = subprocess.run(
        ["nice", "-n", str(started_at - RUNNER), *command],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return [int(n) for n in done.stdout.split()]


@pytest.mark.parametrize("niceness", [10, 19])
def test_the_replay_and_what_it_starts_run_at_its_niceness(niceness: int) -> None:
    assert priorities(niceness) == [max(niceness, RUNNER)] * 3


def test_a_replay_started_at_a_lower_priority_keeps_it() -> None:
    started_at = max(RUNNER, 15)
    assert priorities(10, started_at) == [started_at] * 3


def test_niceness_zero_leaves_the_priority_as_it_was() -> None:
    assert priorities(0) == [RUNNER] * 3
