"""`make bench-e2e`'s harness, run tiny so it cannot rot: every webhook of the three gateways is
answered, read back through the API and seen on the stream clients, and the report has its columns.

Nothing here is a timing assertion: the benchmark's figures are printed, only counts are checked.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from paysync_dev import go_tools, paths

pytestmark = pytest.mark.e2e

ROOT = paths.repo_root()
#: Columns of the report's main table that bench/README.md's report relies on.
COLUMNS = ("sent / accepted", "due→200 p50 / p99 ms", "sustained", "deliveries (missing)", "not applied")


@pytest.fixture(scope="module")
def loadgen() -> Path:
    """bench/loadgen in .cache/bin (where `make bench-e2e` puts it), built if missing or stale."""
    source = ROOT / "bench" / "loadgen"
    target = go_tools.binary("loadgen")
    newest = max(f.stat().st_mtime for f in source.iterdir())
    if not target.is_file() or target.stat().st_mtime < newest:
        target.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(["go", "build", "-o", str(target), "."], cwd=source, check=True, timeout=600)
    return target


def test_the_bench_sees_every_webhook_through_to_the_api_and_the_stream(
    loadgen: Path, kafka_topics: str, migrated_database: str, tmp_path: Path
) -> None:
    out = tmp_path / "e2e.json"
    run = subprocess.run(
        [
            sys.executable,
            "bench/e2e/run.py",
            *("--preset", "smoke", "--tenants", "2", "--seconds", "3", "--no-warm-up"),
            *("--mix", "stripe=1,paystack=1,mpesa=1", "--drain-seconds", "60"),
            *("--kafka-bootstrap", kafka_topics, "--database-url", migrated_database, "--out", str(out)),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-5000:]

    header = next(line for line in run.stdout.splitlines() if line.startswith("| phase | clients"))
    columns = [c.strip() for c in header.strip("|").split("|")]
    assert set(COLUMNS) <= set(columns), columns
    assert any(c.startswith("due→readable") for c in columns) and any(
        c.startswith("due→event") for c in columns
    )
    [smoke] = json.loads(out.read_text())["results"]
    answers, stream, readable = smoke["answers"], smoke["stream"], smoke["readable"]
    assert answers["planned"] == answers["sent"] == answers["accepted"] == 60, answers
    # Each tenant's console gets its 30 webhooks; each of the two entity pages its one.
    assert stream["clients"] == {"console": 2, "entity": 2}
    assert stream["deliveries_expected"] == 62
    assert stream["deliveries_missing"] == 0
    assert stream["duplicates"] == stream["not_theirs"] == 0
    assert set(stream["per_gateway_due_to_event_ms"]) == {"stripe", "paystack", "mpesa"}
    assert smoke["not_applied"] == 0
    assert readable["polled"] == 60 and readable["missing"] == 0 and readable["errors"] == 0
    assert readable["not_modified"] > 0  # polled with If-None-Match: unchanged reads were 304s
    assert {"webhook-ingest", "status-projector", "notifier", "api-gateway", "reconciler", "postgres"} <= set(
        smoke["cpu_ms_per_webhook"]
    )
