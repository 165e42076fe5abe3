"""structlog set-up shared by every service, with secrets and phone numbers kept out."""

from __future__ import annotations

import hashlib
import logging
import re
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog
from structlog.typing import Processor

_SECRET_KEYS = re.compile(
    r"(secret|password|passkey|token|api_key|authorization|signature|card|cvc|pan)", re.I
)
#: A run of 10+ digits standing on its own (a phone or card number as a value), not one inside an
#: identifier such as a hex tenant id `t-83723633106d`, which the mask would otherwise mangle.
_PHONE = re.compile(r"(?<![\w-])(\+?\d{3})\d{4,}(\d{3})(?![\w-])")
#: The M-Pesa callback URL's last segment is the tenant's callback token, a secret.
_CALLBACK_TOKEN = re.compile(r"(/mpesa/)(?!\[sha256:)([^/?#\s\"'<>]+)")  # (not one already replaced)
#: Values PostgreSQL and asyncpg repeat in their own error texts, which the engines' `hide_parameters`
#: does not reach (a logged stack trace shows the driver's error, DETAIL included): a key that exists
#: already or is missing (`Key (api_key)=(...) already exists.`), a row failing a constraint, text that is
#: no valid value of its type, an argument asyncpg could not encode. Each is hidden to the end of its
#: line: a value's own end cannot be told (it may hold parentheses and quotes).
_ECHOED_VALUES = (
    (re.compile(r"(Key \([^\n]*?\)=\()[^\n]*"), r"\1[hidden])"),
    (re.compile(r"(Failing row contains \()[^\n]*"), r"\1[hidden])"),
    (re.compile(r"(invalid input (?:syntax|value) for (?:type|enum) [^:\n]+: )[^\n]*"), r"\1[hidden]"),
    (re.compile(r"(invalid input for query argument \$\d+: )[^\n]*"), r"\1[hidden]"),
    # what asyncpg's codecs raised, the cause of that (in a stack trace): the uuid's, the inet's
    (re.compile(r"(invalid UUID )[^\n]*"), r"\1[hidden]"),
    (re.compile(r"[^\n]*( does not appear to be an IPv4 or IPv6 )"), r"[hidden]\1"),
)
_ECHO_CLUES = ("=(", "Failing row", "invalid input", "invalid UUID", "does not appear to be an IPv")


def token_fingerprint(token: str) -> str:
    """A short, stable name for a secret: the first 4 hex digits of its SHA-256 (never the secret)."""
    return "sha256:" + hashlib.sha256(token.encode()).hexdigest()[:4]


def redact_callback_tokens(text: str) -> str:
    """`text` with every M-Pesa callback token in a URL path replaced by its fingerprint."""
    if "/mpesa/" not in text:
        return text
    return _CALLBACK_TOKEN.sub(lambda m: f"{m[1]}[{token_fingerprint(m[2])}]", text)


def hide_echoed_values(text: str) -> str:
    """`text` (a database error's) without the values PostgreSQL or asyncpg repeated in it."""
    if not any(clue in text for clue in _ECHO_CLUES):
        return text  # most log values: no regular expression run
    for pattern, replacement in _ECHOED_VALUES:
        text = pattern.sub(replacement, text)
    return text


def _redact_value(value: Any) -> Any:
    if isinstance(value, str):
        return _PHONE.sub(r"\1***\2", hide_echoed_values(redact_callback_tokens(value)))
    if isinstance(value, dict):
        return {
            k: "[redacted]" if _SECRET_KEYS.search(str(k)) else _redact_value(v) for k, v in value.items()
        }
    if isinstance(value, (list, tuple)):
        return type(value)(_redact_value(v) for v in value)
    return value


def redact(_: Any, __: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """Drop secret-looking fields, fingerprint callback tokens in paths, mask digit runs (phones, cards)."""
    for key in list(event_dict):
        if key != "event" and _SECRET_KEYS.search(key):
            event_dict[key] = "[redacted]"
        else:
            event_dict[key] = _redact_value(event_dict[key])
    return event_dict


def configure_logging(service: str, level: str = "INFO", json: bool = True) -> None:
    """Route stdlib and structlog logs through one redacting pipeline to stderr; start tracing if the
    `OTEL_*` variables ask for it (`paysync_core.tracing`), so that log lines carry the trace id."""
    from paysync_core import tracing  # it imports this module's redaction

    shared: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        # The stack trace as text before redaction, so it is redacted too (and rendered, not repr'd).
        structlog.processors.format_exc_info,
        redact,
        tracing.add_trace_ids,  # after `redact`: a trace id is never mistaken for a number to mask
    ]
    renderer = structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer()
    structlog.configure(
        # A debug line costs one level check at INFO, not the whole pipeline (stdlib would drop it last).
        processors=[
            structlog.stdlib.filter_by_level,
            *shared,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                renderer,
            ],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # sse_starlette's debug lines repeat every chunk a stream sends (payment data, pings).
    for noisy in ("aiokafka", "kafka", "faststream", "uvicorn.access", "httpx", "sse_starlette"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
    structlog.contextvars.bind_contextvars(service=service)
    tracing.configure_tracing(service)
