"""Each package declares what its tests import, and what its code imports.

A package's tests may import the package itself, the standard library, and the distributions the
package declares: its `[project] dependencies` and its `test` dependency group (the workspace
root's tests: its dependencies and its `dev` group). Something reached only through another
package's dependencies (pytest through paysync-dev, sqlalchemy through paysync-core) is not declared:
the package's tests would break when that other package drops it. Modules map to distributions with
`importlib.metadata.packages_distributions()`, and the workspace's own packages with the `packages`
their pyproject builds (an editable install names no top-level module).

A package's code (`src/`) may import what its `[project] dependencies` declare and, one level down,
what a workspace package it depends on declares: a service builds on paysync-core's pinned stack
(pydantic, SQLAlchemy, structlog…), but typer, which only the CLI package declares, is not
something a service gets by depending on paysync-core.
"""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, packages_distributions, version
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MEMBER_PATTERNS = ("libs/*/pyproject.toml", "services/*/pyproject.toml", "tools/*/pyproject.toml")


def normalized(name: str) -> str:
    """A distribution name as PEP 503 compares it."""
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_name(requirement: str) -> str:
    """The distribution a requirement string names (`uvicorn[standard]==0.54.0` → `uvicorn`)."""
    match = re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", requirement.strip())
    assert match, f"not a requirement: {requirement!r}"
    return normalized(match.group())


@dataclass(frozen=True)
class Package:
    """One package of the workspace, as its pyproject declares it."""

    name: str
    directory: Path
    modules: frozenset[str]  # the top-level modules it builds
    runtime: frozenset[str]  # normalized names of its [project] dependencies
    declared: frozenset[str]  # normalized names its tests may import
    test_group: tuple[str, ...]  # the names in its test group, normalized


def load_package(directory: Path) -> Package:
    """The package whose pyproject.toml is in `directory` (the workspace root: its `dev` group)."""
    meta = tomllib.loads((directory / "pyproject.toml").read_text())
    project = meta["project"]
    group = "dev" if directory == ROOT else "test"
    test_group = tuple(
        requirement_name(r) for r in meta.get("dependency-groups", {}).get(group, []) if isinstance(r, str)
    )
    built = meta.get("tool", {}).get("hatch", {}).get("build", {}).get("targets", {}).get("wheel", {})
    modules = frozenset(Path(p).name for p in built.get("packages", []))
    runtime = {requirement_name(r) for r in project.get("dependencies", [])}
    return Package(
        name=normalized(project["name"]),
        directory=directory,
        modules=modules,
        runtime=frozenset(runtime),
        declared=frozenset(runtime | set(test_group) | {normalized(project["name"])}),
        test_group=test_group,
    )


def workspace_packages(root: Path = ROOT) -> list[Package]:
    """Every member of the workspace, then the workspace root itself."""
    members = [load_package(p.parent) for pattern in MEMBER_PATTERNS for p in sorted(root.glob(pattern))]
    return [*members, load_package(root)]


def module_distributions(packages: list[Package]) -> dict[str, frozenset[str]]:
    """Top-level module → the normalized names of the distributions that provide it."""
    found = {m: frozenset(normalized(d) for d in ds) for m, ds in packages_distributions().items()}
    for package in packages:
        for module in package.modules:
            found[module] = found.get(module, frozenset()) | {package.name}
    return found


def imported_modules(path: Path) -> Iterator[tuple[int, str]]:
    """(line, top-level module) of every absolute import in a file, wherever in the file it stands."""
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name.partition(".")[0]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.lineno, node.module.partition(".")[0]


def undeclared_imports(
    package: Package,
    distributions: Mapping[str, frozenset[str]],
    *,
    where: str = "tests",
    allowed: frozenset[str] | None = None,
) -> list[str]:
    """`file:line imports module (from dist)` for each import under `where` that `allowed` (the
    package's test declarations unless given) does not name."""
    allowed = package.declared if allowed is None else allowed
    problems = []
    for path in sorted((package.directory / where).rglob("*.py")):
        for line, module in imported_modules(path):
            if module in sys.stdlib_module_names or module == "__future__" or module in package.modules:
                continue
            where = f"{path.relative_to(package.directory)}:{line} imports {module}"
            providers = distributions.get(module)
            if not providers:
                problems.append(f"{where}, which no installed distribution provides")
            elif not providers & allowed:
                problems.append(f"{where} (from {', '.join(sorted(providers))}), not declared")
    return problems


PACKAGES = workspace_packages()


@pytest.mark.parametrize("package", PACKAGES, ids=lambda p: p.name)
def test_a_packages_tests_import_only_what_it_declares(package: Package) -> None:
    problems = undeclared_imports(package, module_distributions(PACKAGES))
    group = "the `dev` group" if package.directory == ROOT else "its `test` dependency group"
    assert not problems, f"{package.name}: declare these in {group}:\n" + "\n".join(problems)


@pytest.mark.parametrize("package", PACKAGES, ids=lambda p: p.name)
def test_what_a_test_group_names_is_installed(package: Package) -> None:
    """`uv sync` installs only the root's groups: a member's test group must name what that brings."""
    missing = []
    for name in package.test_group:
        try:
            version(name)
        except PackageNotFoundError:
            missing.append(name)
    assert not missing, f"{package.name}'s test group names what the workspace does not install: {missing}"


def code_may_import(package: Package, packages: list[Package]) -> frozenset[str]:
    """What a package's code may import: its own dependencies and theirs, for workspace packages."""
    by_name = {p.name: p for p in packages}
    allowed = set(package.runtime) | {package.name}
    for dependency in package.runtime & by_name.keys():
        allowed |= by_name[dependency].runtime
    return frozenset(allowed)


@pytest.mark.parametrize("package", PACKAGES[:-1], ids=lambda p: p.name)
def test_a_packages_code_imports_only_what_it_or_its_workspace_dependencies_declare(package: Package) -> None:
    allowed = code_may_import(package, PACKAGES)
    problems = undeclared_imports(package, module_distributions(PACKAGES), where="src", allowed=allowed)
    assert not problems, f"{package.name}: declare these in its [project] dependencies:\n" + "\n".join(
        problems
    )


def test_the_check_finds_an_undeclared_import(tmp_path: Path) -> None:
    """A package whose tests import hypothesis and paysync_dev but declare only pytest is told so."""
    (tmp_path / "pyproject.toml").write_text(
        '[project]\nname = "demo"\ndependencies = ["pydantic==2.14.3"]\n'
        '[dependency-groups]\ntest = ["pytest"]\n'
        '[tool.hatch.build.targets.wheel]\npackages = ["src/demo"]\n'
    )
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_x.py").write_text(
        "import os\nimport pytest\nimport pydantic\nfrom demo import thing\n"
        "from hypothesis import given\n\ndef test():\n    from paysync_dev.fixtures import TestTenant\n"
        "    import helpers_next_door\n"
    )
    package = load_package(tmp_path)
    problems = undeclared_imports(package, module_distributions(PACKAGES))
    assert [p.split(" (")[0].split(",")[0] for p in problems] == [
        "tests/test_x.py:5 imports hypothesis",
        "tests/test_x.py:8 imports paysync_dev",
        "tests/test_x.py:9 imports helpers_next_door",
    ]


def test_the_check_finds_code_importing_what_only_another_package_declares() -> None:
    """typer is declared by paysync-cli, not paysync-core: a service's code may not lean on it."""
    reconciler = next(p for p in PACKAGES if p.name == "paysync-reconciler")
    without_typer = Package(
        reconciler.name,
        reconciler.directory,
        reconciler.modules,
        reconciler.runtime - {"typer"},
        reconciler.declared,
        reconciler.test_group,
    )
    allowed = code_may_import(without_typer, PACKAGES)
    problems = undeclared_imports(without_typer, module_distributions(PACKAGES), where="src", allowed=allowed)
    assert [p.split(" (")[0] for p in problems] == ["src/paysync_reconciler/cli.py:9 imports typer"]
