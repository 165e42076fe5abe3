"""Report modules over a line limit and functions over a line limit (issue 12: no god modules).

    .venv/bin/python -m paysync_dev.code_size [--module-lines 400] [--function-lines 60] PATH...

A function's length runs from its `def` (decorators excluded) to its last line, docstring included;
nested functions are reported on their own and count in their parent too. Migrations and benchmarks
are skipped. Exits 1 when something is over, so it can gate CI.
"""

from __future__ import annotations

import argparse
import ast
import sys
from pathlib import Path

SKIPPED_PARTS = {"migrations", "bench", ".venv", "tests"}


def python_files(paths: list[str]) -> list[Path]:
    """The Python files under the paths, migrations, benchmarks and tests left out."""
    found: list[Path] = []
    for path in map(Path, paths):
        candidates = [path] if path.is_file() else sorted(path.rglob("*.py"))
        found += [p for p in candidates if not SKIPPED_PARTS & set(p.parts)]
    return found


def oversized(path: Path, module_limit: int, function_limit: int) -> list[str]:
    """One line per module or function of this file that is over its limit."""
    source = path.read_text()
    lines = source.count("\n") + (not source.endswith("\n"))
    problems = [f"{path}: module has {lines} lines (limit {module_limit})"] if lines > module_limit else []
    for node in ast.walk(ast.parse(source, str(path))):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            length = (node.end_lineno or node.lineno) - node.lineno + 1
            if length > function_limit:
                problems.append(
                    f"{path}:{node.lineno}: {node.name} has {length} lines (limit {function_limit})"
                )
    return problems


def main() -> int:
    """Print what is over its limit; 1 if anything is."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="+")
    parser.add_argument("--module-lines", type=int, default=400)
    parser.add_argument("--function-lines", type=int, default=60)
    args = parser.parse_args()
    problems = [
        problem
        for path in python_files(args.paths)
        for problem in oversized(path, args.module_lines, args.function_lines)
    ]
    print("\n".join(problems) if problems else "nothing over the limits")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
