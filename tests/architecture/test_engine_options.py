"""Every SQLAlchemy engine paysync creates is given `ENGINE_OPTIONS` (parameters kept out of errors).

SQLAlchemy appends a failed statement's parameters to its error (`[parameters: ...]`), and logs print
errors; `ENGINE_OPTIONS` (`paysync_core.db.engine`) hides them. The source is read, not run: an AST
walk finds each `create_async_engine(...)` / `create_engine(...)` call outside tests and requires
`**ENGINE_OPTIONS` among its arguments.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SOURCES = ("libs", "services", "tools", "bench")
FACTORIES = frozenset({"create_async_engine", "create_engine"})


def _engine_calls() -> Iterator[tuple[str, ast.Call]]:
    for top in SOURCES:
        for path in sorted((ROOT / top).rglob("*.py")):
            relative = path.relative_to(ROOT)
            if "tests" in relative.parts or ".venv" in relative.parts:
                continue
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if isinstance(node, ast.Call):
                    name = getattr(node.func, "id", None) or getattr(node.func, "attr", None)
                    if name in FACTORIES:
                        yield f"{relative}:{node.lineno}", node


def _given_engine_options(call: ast.Call) -> bool:
    return any(
        keyword.arg is None and ast.unparse(keyword.value).endswith("ENGINE_OPTIONS")
        for keyword in call.keywords
    )


def test_every_engine_hides_statement_parameters() -> None:
    calls = dict(_engine_calls())
    assert len(calls) >= 3, "the walk missed engines (make_engine, the projector, alembic)"
    assert [where for where, call in calls.items() if not _given_engine_options(call)] == []
