"""Typed builders of the payloads gateways send, shaped after their documentation.

Shared by tests, the demo and the gateway simulator. Every builder returns a plain dict (what
the gateway's JSON decodes to) with random ids unless told otherwise; `to_body` turns it into
the bytes that travel.
"""

from __future__ import annotations

import json
import secrets
import string
from collections.abc import Callable
from typing import Any, Final

_ALNUM = string.ascii_letters + string.digits


class _Auto:
    """Marker for "generate a random id here"; pass None to leave the field null instead."""

    def __repr__(self) -> str:
        return "AUTO"


AUTO: Final = _Auto()


def to_body(payload: dict[str, Any]) -> bytes:
    """The payload as the UTF-8 JSON bytes a gateway would POST."""
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()


def random_token(length: int, alphabet: str = _ALNUM) -> str:
    """A random string for ids."""
    return "".join(secrets.choice(alphabet) for _ in range(length))


def resolve(value: object, make: Callable[[], str]) -> Any:
    """`make()` when value is AUTO, else the value as given (None stays None)."""
    return make() if value is AUTO else value
