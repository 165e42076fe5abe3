"""The shared log pipeline, in a process of its own: stack traces rendered, callback tokens never shown."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from paysync_core.logging import redact, token_fingerprint

TOKEN = "cb_9f8e7d6c5b4a39281706f5e4d3c2b1a0"

PROGRAM = f"""
import logging, structlog
from paysync_core.logging import configure_logging
configure_logging("test")
try:
    raise RuntimeError("no route for /webhooks/t-1/mpesa/{TOKEN}")
except RuntimeError as exc:
    logging.getLogger("uvicorn.error").exception("Exception in ASGI application")  # how a server logs it
    structlog.get_logger().error("webhook.failed", path="/webhooks/t-1/mpesa/{TOKEN}", exc_info=exc)
"""


def test_logged_exceptions_carry_their_stack_trace_and_no_callback_token() -> None:
    run = subprocess.run(
        [sys.executable, "-c", PROGRAM], capture_output=True, text=True, timeout=60, check=True
    )
    foreign, own = (json.loads(line) for line in run.stderr.splitlines())
    shown = f"/webhooks/t-1/mpesa/[{token_fingerprint(TOKEN)}]"
    for line in (foreign, own):
        assert line["exception"].startswith("Traceback (most recent call last):")
        assert line["exception"].endswith(f"RuntimeError: no route for {shown}")
    assert own["path"] == shown
    assert TOKEN not in run.stderr and "<traceback object" not in run.stderr


@pytest.mark.parametrize(
    ("logged", "shown"),
    [
        ("254712345678", "254***678"),
        ("msisdn=254712345678 paid", "msisdn=254***678 paid"),
        ("+254712345678", "+254***678"),
        ("card 4242424242424242", "card 424***242"),
        # Identifiers keep their digits: an id of random hex is not a phone number.
        ("t-83723633106d", "t-83723633106d"),
        ("ws_CO_05122026123456789", "ws_CO_05122026123456789"),
        ("/webhooks/t-837236331065/stripe", "/webhooks/t-837236331065/stripe"),
    ],
)
def test_phone_and_card_numbers_are_masked_and_identifiers_are_not(logged: str, shown: str) -> None:
    assert redact(None, "info", {"event": "x", "detail": logged})["detail"] == shown
