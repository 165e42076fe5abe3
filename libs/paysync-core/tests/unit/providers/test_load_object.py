"""`load_object` reads a body with orjson where it can, and gives exactly what the stdlib gave before.

The adapters' answers (observations, or MalformedPayload with its reason) must not depend on which
JSON parser read the body: integers beyond 64 bits, NaN, lone surrogates, a byte order mark, UTF-16,
deep nesting all decide as `json.loads` decides.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from paysync_core.errors import MalformedPayload
from paysync_core.providers._common import load_object


def stdlib_load(body: bytes) -> Any:
    """What `load_object` answered when it read every body with the stdlib: a value or the error."""
    try:
        value = json.loads(body, parse_constant=_reject)
    except (ValueError, RecursionError):
        return ("MalformedPayload", "invalid_json")
    if not isinstance(value, dict):
        return ("MalformedPayload", "not_a_json_object")
    return value


def _reject(name: str) -> object:
    raise ValueError(name)


def answer(body: bytes) -> Any:
    try:
        return load_object(body)
    except MalformedPayload as exc:
        return ("MalformedPayload", exc.reason)


def same(a: Any, b: Any) -> bool:
    """Equal, and of the same types all the way down (1 and 1.0 are equal, but not the same JSON)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, tuple):  # the error and its reason
        return a == b
    if isinstance(a, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


EDGES = [
    b'{"amount": 123456789012345678901234567890}',
    b'{"amount": 18446744073709551616}',
    b'{"amount": -9223372036854775809}',
    b'{"amount": 9223372036854775807, "other": -9223372036854775808}',
    b'{"note": "12345678901234567890"}',
    b'{"amount": 1e400}',
    b'{"amount": NaN}',
    b'{"amount": -Infinity}',
    b'{"note": "\\ud800"}',
    b'\xef\xbb\xbf{"a": 1}',
    '{"a": 1}'.encode("utf-16"),
    '{"a": 1}'.encode("utf-32"),
    b'{"a": 1, "a": 2}',
    b'{"a": "\xff"}',
    b'{"a": 1}\x00',
    b"[1, 2]",
    b"",
    b"[" * 5000 + b"]" * 5000,
    b'{"a": ' * 2000 + b"1" + b"}" * 2000,
    b'{"a": 0.1, "b": 1E2, "c": -0, "d": -0.0, "e": 5e-324}',
]


@pytest.mark.parametrize("body", EDGES, ids=range(len(EDGES)))
def test_load_object_answers_the_edges_as_the_stdlib_did(body: bytes) -> None:
    assert same(answer(body), stdlib_load(body))


JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**80), max_value=2**80)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(st.text(max_size=8), JSON, max_size=6))
def test_load_object_reads_any_json_object_as_the_stdlib_does(document: dict[str, Any]) -> None:
    body = json.dumps(document).encode()
    assert same(answer(body), stdlib_load(body))


@settings(max_examples=2_000, deadline=None)
@given(st.binary(max_size=200))
def test_load_object_answers_any_bytes_as_the_stdlib_does(body: bytes) -> None:
    assert same(answer(body), stdlib_load(body))
