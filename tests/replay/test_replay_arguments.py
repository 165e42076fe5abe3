"""`paysync replay` refuses a range it cannot read, with a reason, and replays nothing."""

from __future__ import annotations

import pytest


@pytest.mark.parametrize(
    ("args", "complaint"),
    [
        ([], "say where to start"),
        (["--since", "2026-01-01T00:00:00Z", "--partition", "1", "--from-offset", "0"], "not both"),
        (["--partition", "1"], "one --from-offset per --partition"),
        (["--partition", "1", "--from-offset", "5", "--to-offset", "4"], "before --from-offset"),
        (["--since", "yesterday"], "not an ISO 8601 time"),
        (["--since", "2026-01-01", "--gateway", "paypal"], "paypal"),
    ],
)
def test_a_range_that_cannot_be_read_is_refused_with_a_reason(
    paysync, args: list[str], complaint: str
) -> None:
    done = paysync("replay", *args)
    assert done.returncode == 2
    assert complaint in " ".join(done.stderr.replace("│", " ").split())


def test_a_partition_the_topic_does_not_have_is_refused(paysync) -> None:
    done = paysync("replay", "--partition", "99", "--from-offset", "0", "--dry-run")
    assert done.returncode == 1
    assert "has no partition [99]" in done.stderr
