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


@pytest.mark.parametrize(
    ("logged", "shown"),
    [
        (
            'duplicate key value violates unique constraint "keys_pkey"\n'
            "DETAIL:  Key (key)=(sk_live_4f2a) already exists.\n",
            'duplicate key value violates unique constraint "keys_pkey"\nDETAIL:  Key (key)=([hidden])\n',
        ),
        (
            'DETAIL:  Key (tenant_id, lower(email))=(t-1, a(b)c) is not present in table "tenants".',
            "DETAIL:  Key (tenant_id, lower(email))=([hidden])",
        ),
        (
            'new row for relation "keys" violates check constraint "short"\n'
            "DETAIL:  Failing row contains (sk_live_4f2a, 254712345678).",
            'new row for relation "keys" violates check constraint "short"\n'
            "DETAIL:  Failing row contains ([hidden])",
        ),
        (
            'invalid input syntax for type integer: "sk_live_4f2a"\n[SQL: SELECT $1]',
            "invalid input syntax for type integer: [hidden]\n[SQL: SELECT $1]",
        ),
        (
            "invalid input for query argument $1: 'sk_live_4f2a' (invalid UUID 'sk_live_4f2a': length)",
            "invalid input for query argument $1: [hidden]",
        ),
        ("ValueError: invalid UUID 'sk_live_4f2a': length must be", "ValueError: invalid UUID [hidden]"),
        (
            "ValueError: 'sk_live_4f2a' does not appear to be an IPv4 or IPv6 address",
            "[hidden] does not appear to be an IPv4 or IPv6 address",
        ),
        ("total (minor units)=(5000)", "total (minor units)=(5000)"),  # not a database's error
    ],
)
def test_values_a_database_error_repeats_are_hidden(logged: str, shown: str) -> None:
    assert redact(None, "error", {"event": "x", "error": logged})["error"] == shown
