"""Read and validate domain mapping files: DomainConfigError names the first problem."""

from __future__ import annotations

import re
import string
import tomllib
from pathlib import Path
from typing import Any

from paysync_core.domain.status import MONEY_MOVED, UnifiedStatus
from paysync_core.domains.spec import (
    FIELDS,
    SUMMABLE,
    Counter,
    DomainConfigError,
    DomainSpec,
    PaidMarker,
    TableMapping,
)

_IDENT = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
_MAIN_KEYS = {
    "table",
    "schema",
    "key_column",
    "tenant_column",
    "default",
    "on",
    "keep",
    "counters",
    "paid",
    "per_payment",
}
_CHILD_KEYS = {"table", "schema", "key_column", "tenant_column", "entity_column", "default", "on", "keep"}
_OPEN = tuple(s for s in UnifiedStatus if s not in MONEY_MOVED)
_MOVED = tuple(s for s in UnifiedStatus if s in MONEY_MOVED)


def load_domains(*paths: Path) -> dict[str, DomainSpec]:
    """Read and validate mapping files (later ones add domains); DomainConfigError names the first problem."""
    specs: dict[str, DomainSpec] = {}
    for path in paths:
        try:
            raw = tomllib.loads(path.read_text())
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise DomainConfigError(f"{path}: {exc}") from exc
        for name, body in raw.items():
            if name in specs:
                raise DomainConfigError(f"{path}: domain {name!r} is defined twice")
            specs[name] = _spec(name, body, f"{path}: domain {name!r}")
    return specs


def _spec(name: str, body: Any, where: str) -> DomainSpec:
    if not _IDENT.match(name) or not isinstance(body, dict):
        raise DomainConfigError(f"{where}: a domain is a [name] table with a lower-case name")
    _known_keys(body, _MAIN_KEYS, where)
    main = _table_mapping(body, where, child=False)
    counters = _counters(body.get("counters", {}), where)
    if clash := sorted(set(counters) & (main.columns - {main.key_column, main.tenant_column})):
        raise DomainConfigError(f"{where}: {clash} are counters and also written by templates")
    per_payment = None
    if "per_payment" in body:
        child = body["per_payment"]
        if not isinstance(child, dict):
            raise DomainConfigError(f"{where}: per_payment must be a table")
        _known_keys(child, _CHILD_KEYS, f"{where}, per_payment")
        per_payment = _table_mapping(child, f"{where}, per_payment", child=True)
    paid = _paid_marker(body.get("paid"), main, where)
    return DomainSpec(name, main, counters, per_payment, paid)


def _known_keys(body: dict[str, Any], allowed: set[str], where: str) -> None:
    if unknown := sorted(set(body) - allowed):
        raise DomainConfigError(f"{where}: unknown key(s) {unknown}; allowed: {sorted(allowed)}")


def _table_mapping(body: dict[str, Any], where: str, *, child: bool) -> TableMapping:
    required = ("table", "key_column", "tenant_column", *(("entity_column",) if child else ()))
    for key in required:
        _ident(body.get(key), f"{where}: {key}")
    if body.get("schema") is not None:
        _ident(body["schema"], f"{where}: schema")
    default = _templates(body.get("default", {}), f"{where}, default")
    on: dict[UnifiedStatus, dict[str, str]] = {}
    raw_on = body.get("on", {})
    if not isinstance(raw_on, dict):
        raise DomainConfigError(f"{where}: on must be a table of [on.<status>] tables")
    for status_name, templates in raw_on.items():
        try:
            status = UnifiedStatus(status_name)
        except ValueError:
            raise DomainConfigError(
                f"{where}: {status_name!r} is not a unified status; known: {[s.value for s in UnifiedStatus]}"
            ) from None
        on[status] = _templates(templates, f"{where}, on.{status_name}")
    keep = {}
    for column, values in body.get("keep", {}).items():
        _ident(column, f"{where}, keep: column {column!r}")
        if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
            raise DomainConfigError(
                f"{where}, keep.{column}: a list of the values the app sets and paysync keeps"
            )
        keep[column] = tuple(values)
    mapping = TableMapping(
        table=body["table"],
        key_column=body["key_column"],
        tenant_column=body["tenant_column"],
        schema=body.get("schema"),
        entity_column=body.get("entity_column"),
        default=default,
        on=on,
        keep=keep,
    )
    for reserved in filter(None, (mapping.key_column, mapping.tenant_column, mapping.entity_column)):
        if any(reserved in t for t in (default, *on.values())):
            raise DomainConfigError(f"{where}: {reserved!r} is filled by paysync; do not template it")
    _check_path_independent(mapping, where, child=child)
    return mapping


def _check_path_independent(mapping: TableMapping, where: str, *, child: bool) -> None:
    """Refuse mappings under which a row could show a column left over from an earlier status."""
    rows = [s for s in UnifiedStatus if not child or mapping.has_row(s)]
    written = {s: set(mapping.templates_for(s)) for s in rows}
    everything = set().union(*written.values()) if written else set()
    before_money = (
        set().union(*(written[s] for s in rows if s in _OPEN)) if any(s in _OPEN for s in rows) else set()
    )
    for column in sorted(everything):
        if column in before_money:
            open_missing = [s.value for s in rows if s in _OPEN and column not in written[s]]
            if open_missing:
                raise DomainConfigError(
                    f"{where}: column {column!r} is written before money moves but not for {open_missing}, "
                    f"so it could keep a value from an earlier status; give it a value in [default]"
                )
        moved_missing = [s.value for s in rows if s in _MOVED and column not in written[s]]
        if moved_missing:
            raise DomainConfigError(
                f"{where}: column {column!r} is not written for {moved_missing}, so it could keep a value "
                f"from an earlier status; write it in [on.succeeded] (refunds and disputes inherit it) "
                f"or in [default]"
            )


def _templates(templates: Any, where: str) -> dict[str, str]:
    if not isinstance(templates, dict):
        raise DomainConfigError(f'{where}: expected a table of column = "template"')
    for column, template in templates.items():
        if not _IDENT.match(column):
            raise DomainConfigError(f"{where}: column {column!r} is not a lower-case SQL identifier")
        _check_template(template, f"{where}.{column}")
    return dict(templates)


def _counters(body: Any, where: str) -> dict[str, Counter]:
    if not isinstance(body, dict):
        raise DomainConfigError(f"{where}: counters must be a table")
    counters = {}
    for column, spec in body.items():
        at = f"{where}, counters.{column}"
        _ident(column, at)
        if not isinstance(spec, dict) or len({"count", "sum"} & set(spec)) != 1:
            raise DomainConfigError(f'{at}: write {{ count = "payments" }} or {{ sum = "<amount field>" }}')
        _known_keys(spec, {"count", "sum", "statuses"}, at)
        if "count" in spec and spec["count"] != "payments":
            raise DomainConfigError(f'{at}: count = "payments" is the only count')
        if "sum" in spec and spec["sum"] not in SUMMABLE:
            raise DomainConfigError(f"{at}: can sum one of {list(SUMMABLE)}")
        statuses = _statuses(spec.get("statuses"), at)
        counters[column] = Counter(column, "count" if "count" in spec else "sum", spec.get("sum"), statuses)
    return counters


def _statuses(names: Any, where: str) -> frozenset[UnifiedStatus]:
    if names is None:
        return frozenset(UnifiedStatus)
    try:
        return frozenset(UnifiedStatus(n) for n in names)
    except (TypeError, ValueError):
        raise DomainConfigError(f"{where}: statuses must be unified statuses") from None


def _paid_marker(body: Any, main: TableMapping, where: str) -> PaidMarker | None:
    if body is None:
        return None
    if not isinstance(body, dict) or set(body) != {"column", "values"}:
        raise DomainConfigError(f'{where}: paid = {{ column = "...", values = ["..."] }}')
    column, values = body["column"], body["values"]
    _ident(column, f"{where}: paid.column")
    written = main.templates_for(UnifiedStatus.SUCCEEDED).get(column)
    if written is None or written not in values:
        raise DomainConfigError(
            f"{where}: on.succeeded must write {column!r} as one of the paid values {values} "
            f"(it writes {written!r})"
        )
    return PaidMarker(column, tuple(values))


def _ident(value: Any, where: str) -> None:
    if not isinstance(value, str) or not _IDENT.match(value):
        raise DomainConfigError(f"{where} must be a lower-case SQL identifier (got {value!r})")


def _check_template(template: Any, where: str) -> None:
    if not isinstance(template, str):
        raise DomainConfigError(f"{where}: values are strings (templates)")
    try:
        parts = [(f, spec, conversion) for _, f, spec, conversion in string.Formatter().parse(template)]
    except ValueError as exc:
        raise DomainConfigError(f"{where}: {exc}") from exc
    names = {f for f, _, _ in parts if f is not None}
    if any(spec or conversion for f, spec, conversion in parts if f is not None):
        raise DomainConfigError(f"{where}: write plain {{name}}, without a format spec or conversion")
    if unknown := sorted(names - set(FIELDS)):
        raise DomainConfigError(f"{where}: unknown name(s) {unknown}; known: {sorted(FIELDS)}")
