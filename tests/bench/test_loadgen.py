"""The benchmarks' load generator (`bench/loadgen`, Go) passes its own tests: its lean HTTP/1.1 client
reads every framing a real server answers with (length, chunked, 304, `Connection: close`), keeps
connections, drops idle ones, and reports an answer it cannot read as an error, not a status."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

LOADGEN = Path(__file__).resolve().parents[2] / "bench" / "loadgen"


def test_the_load_generators_go_tests_pass() -> None:
    go = shutil.which("go")
    if go is None:
        pytest.fail("Go is needed to build bench/loadgen (`make test` builds it too)")
    done = subprocess.run(
        [go, "test", "-count=1", "."], cwd=LOADGEN, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stdout + done.stderr
