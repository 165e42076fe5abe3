"""A sweep's report (the tick's `stats` row, its log line, the run-stat metrics): typed fields, same keys."""

from __future__ import annotations

from datetime import UTC, datetime

from paysync_reconciler.models import Phase, RunStats

_COUNTS = {
    "checked",
    "listed",
    "fixed",
    "issues_found",
    "gateway_errors",
    "gateway_calls",
    "gave_up",
    "created",
}


def test_a_sweep_that_did_nothing_reports_the_counts_alone():
    assert RunStats().as_json() == dict.fromkeys(_COUNTS, 0)


def test_what_a_sweep_did_is_reported_under_the_keys_the_tick_row_always_had():
    stats = RunStats(checked=3, enrolled=0, pages=2, observations=40, direct=1, alerts_raised=1)
    stats.window_start = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    stats.list_error = "rate_limited: slow down"
    stats.seconds = 1.5
    stats.phases[Phase.ENROLL] = 0.25
    stats.phases[Phase.UNLISTED_CHECKS] = 0.5

    report = stats.as_json()

    assert report["checked"] == 3
    assert report["enrolled"] == 0  # enrolment ran, and found nothing new: said, not left out
    assert report["pages"] == 2 and report["observations"] == 40 and report["direct"] == 1
    assert report["alerts_raised"] == 1
    assert report["window_start"] == "2026-01-02T03:04:05+00:00"
    assert report["list_error"] == "rate_limited: slow down"
    assert report["seconds"] == 1.5
    assert report["enroll_s"] == 0.25 and report["unlisted_checks_s"] == 0.5
    # Nothing that did not happen: no zero counters, no empty reasons.
    assert not {"ended_unpaid", "reason", "error", "fetch_s", "checks_s"} & report.keys()
