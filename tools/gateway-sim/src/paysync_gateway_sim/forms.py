"""Stripe's form encoding: `metadata[k]=v`, `line_items[0][quantity]=1`, `expand[]=x` as nested values."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

_KEY = re.compile(r"^([^\[\]]+)((?:\[[^\[\]]*\])*)$")
_PART = re.compile(r"\[([^\[\]]*)\]")


class FormError(ValueError):
    """A key that cannot be read, or two keys that disagree about a value's shape."""

    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def decode(pairs: Iterable[tuple[str, str]]) -> dict[str, Any]:
    """Nested dicts and lists from form pairs; dicts whose keys are all indexes become lists."""
    root: dict[str, Any] = {}
    for key, value in pairs:
        match = _KEY.match(key)
        if match is None:
            raise FormError(key)
        parts = [match.group(1), *_PART.findall(match.group(2))]
        try:
            _assign(root, parts, value)
        except (TypeError, AttributeError) as exc:  # a scalar where a container was expected, or back
            raise FormError(key) from exc
    return _listify(root)


def _assign(node: dict[str, Any], parts: list[str], value: str) -> None:
    head, rest = parts[0], parts[1:]
    if head == "":
        raise TypeError("an empty index is only allowed last")
    if not rest:
        if head in node:
            raise TypeError("duplicate key")
        node[head] = value
    elif rest == [""]:
        existing = node.setdefault(head, [])
        existing.append(value)
    else:
        child = node.setdefault(head, {})
        if not isinstance(child, dict):
            raise TypeError("scalar and hash under one key")
        _assign(child, rest, value)


def _listify(value: Any) -> Any:
    if isinstance(value, list):
        return [_listify(v) for v in value]
    if not isinstance(value, dict):
        return value
    converted = {k: _listify(v) for k, v in value.items()}
    if converted and all(k.isdigit() for k in converted):
        return [converted[k] for k in sorted(converted, key=int)]
    return converted
