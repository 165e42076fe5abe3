"""One owner per table: a service's source writes only the tables docs/data.md lets it write.

The "Tables" table of docs/data.md is the one list: its owner column names the owning service,
its "also written by" column the documented exceptions. The source is read, not run: an AST walk
finds SQLAlchemy writes (`insert(t)`, `update(t)`, `delete(t)`, `t.insert()`...) and a regex finds
raw SQL (`INSERT INTO t`, `UPDATE t`, `DELETE FROM t`, `COPY t`) in string literals. Shared SQL in
paysync-core counts for the service that calls it: each core function's writes (with those of the
core functions it uses) are charged to every service module that refers to that function. A write
whose table is a run-time value counts as a write of every table the projector's built-in domain
mapping names (the one place such writes are meant to be).
"""

from __future__ import annotations

import ast
import re
import tomllib
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from paysync_core.db.schema import metadata

ROOT = Path(__file__).resolve().parents[2]
CORE = ROOT / "libs" / "paysync-core" / "src"
SERVICES = sorted(p.name for p in (ROOT / "services").iterdir() if (p / "pyproject.toml").is_file())
DOMAINS_TOML = ROOT / "libs/paysync-core/src/paysync_core/domains/domains.toml"
TABLES = frozenset(metadata.tables)
#: The target of a write the source does not name (a table object chosen at run time).
DYNAMIC = "<run time>"

_SQL_WRITE = re.compile(
    r"\b(?:INSERT\s+INTO|UPDATE|DELETE\s+FROM|COPY)\s+(?:ONLY\s+)?\"?(\w+)", re.IGNORECASE
)
_WRITE_FUNCTIONS = ("insert", "update", "delete")


@dataclass
class Module:
    """What one module writes and which other definitions it uses, per top-level definition."""

    name: str
    #: definition ("pkg.mod.func", or "pkg.mod" for module-level code) -> tables written
    writes: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    #: definition -> dotted names it refers to (resolved through the module's imports)
    uses: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))


def scan(source: str, module: str) -> Module:
    """The writes and uses of one module's source."""
    tree = ast.parse(source)
    imports = _imports(tree, module)
    local = {n: f"{module}.{n}" for n in _top_level_names(tree)}
    docstrings = _docstrings(tree)
    result = Module(module)
    for stmt in tree.body:
        unit = f"{module}.{_name_of(stmt)}" if _name_of(stmt) else module
        for node in ast.walk(stmt):
            if id(node) not in docstrings:
                result.writes[unit] |= set(_writes_of(node, imports))
            if isinstance(node, ast.Name) and node.id in local:
                result.uses[unit].add(local[node.id])
            elif (dotted := _dotted(node, imports)) is not None:
                result.uses[unit].add(dotted)
    return result


def _writes_of(node: ast.AST, imports: dict[str, str]) -> Iterator[str]:
    """The tables one node writes: a SQLAlchemy write call, or raw SQL in a string."""
    if isinstance(node, ast.Call):
        func = node.func
        if isinstance(func, ast.Name) and _is_sqlalchemy_write(imports.get(func.id)) and node.args:
            yield _table_of(node.args[0], imports) or DYNAMIC
        elif isinstance(func, ast.Attribute) and func.attr in _WRITE_FUNCTIONS and not node.args:
            table = _table_of(func.value, imports)  # `t.insert()`; `some_dict.update()` is no table
            if table is not None:
                yield table
    elif isinstance(node, ast.Constant) and isinstance(node.value, str):
        yield from (t for t in _SQL_WRITE.findall(node.value) if t in TABLES)


def _is_sqlalchemy_write(target: str | None) -> bool:
    return bool(target) and target.startswith("sqlalchemy") and target.rsplit(".", 1)[1] in _WRITE_FUNCTIONS


def _table_of(node: ast.expr, imports: dict[str, str]) -> str | None:
    """The table an expression names: a schema table (imported, or by attribute), or a same-named variable."""
    dotted = _dotted(node, imports)
    if dotted and dotted.startswith("paysync_core.db.schema.") and dotted.rsplit(".", 1)[1] in TABLES:
        return dotted.rsplit(".", 1)[1]
    if isinstance(node, ast.Name) and node.id in TABLES:
        return node.id
    return None


def _dotted(node: ast.AST, imports: dict[str, str]) -> str | None:
    """`alias` or `alias.attr` resolved through the imports (`tenant_repo.create_tenant`...)."""
    if isinstance(node, ast.Name):
        return imports.get(node.id)
    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in imports:
        return f"{imports[node.value.id]}.{node.attr}"
    return None


def _imports(tree: ast.Module, module: str) -> dict[str, str]:
    names: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                bound = alias.asname or alias.name.split(".")[0]
                names[bound] = alias.name if alias.asname else bound
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolved against this module's package
                package = module.rsplit(".", node.level)[0]
                base = f"{package}.{base}" if base else package
            for alias in node.names:
                names[alias.asname or alias.name] = f"{base}.{alias.name}"
    return names


def _docstrings(tree: ast.Module) -> set[int]:
    """The ids of docstring nodes: prose, even when it says "update payments"."""
    found = set()
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        first = body[0] if isinstance(body, list) and body else None
        if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
            found.add(id(first.value))
    return found


def _top_level_names(tree: ast.Module) -> set[str]:
    return {n for stmt in tree.body if (n := _name_of(stmt))}


def _name_of(stmt: ast.stmt) -> str | None:
    if isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
        return stmt.name
    if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name):
        return stmt.targets[0].id
    if isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name):
        return stmt.target.id
    return None


def _modules(src: Path) -> Iterator[tuple[str, str]]:
    for path in sorted(src.rglob("*.py")):
        parts = path.relative_to(src).with_suffix("").parts
        yield ".".join(parts[:-1] if parts[-1] == "__init__" else parts), path.read_text()


def core_writes() -> dict[str, set[str]]:
    """Each paysync-core definition -> the tables it writes, itself or through core definitions it uses."""
    modules = [scan(source, name) for name, source in _modules(CORE) if ".migrations." not in name]
    writes = {unit: set(t) for m in modules for unit, t in m.writes.items()}
    uses = {unit: set(u) for m in modules for unit, u in m.uses.items()}
    changed = True
    while changed:  # a fixed point: writes flow from a used definition to its user
        changed = False
        for unit, used in uses.items():
            mine = writes.setdefault(unit, set())
            before = len(mine)
            for other in used & writes.keys():
                mine |= writes[other]
            changed |= len(mine) != before
    return writes


def service_writes(sources: Iterable[tuple[str, str]], shared: dict[str, set[str]]) -> dict[str, set[str]]:
    """Table -> the service modules that write it (directly, or by calling shared core SQL)."""
    writers: dict[str, set[str]] = defaultdict(set)
    for name, source in sources:
        module = scan(source, name)
        for tables in module.writes.values():
            for table in tables:
                writers[table].add(name)
        for used in set().union(*module.uses.values()) & shared.keys():
            for table in shared[used]:
                writers[table].add(f"{name} (through {used})")
    return writers


def documented_writers() -> dict[str, set[str]]:
    """Table -> the services docs/data.md lets write it: its owner and its listed exceptions."""
    text = (ROOT / "docs" / "data.md").read_text()
    section = text.split("\n## Tables\n", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    allowed: dict[str, set[str]] = {}
    for row in rows:
        cells = [c.strip() for c in row.strip("|").split("|")]
        owners = _services_named(cells[1])
        assert len(owners) == 1, (
            f"docs/data.md: {cells[0]} must have exactly one owning service, not {owners}"
        )
        for table in re.findall(r"`(\w+)`", cells[0]):
            allowed[table] = owners | _services_named(cells[2])
    return allowed


def _services_named(cell: str) -> set[str]:
    return {s for s in SERVICES if re.search(rf"(?<![\w-]){re.escape(s)}(?![\w-])", cell)}


def violations(service: str, writers: dict[str, set[str]], allowed: dict[str, set[str]]) -> list[str]:
    """What a service writes that docs/data.md does not let it write."""
    domain_tables = _domain_tables()
    found = []
    for table, where in sorted(writers.items()):
        for real in sorted(domain_tables) if table == DYNAMIC else [table]:
            if service not in allowed.get(real, set()):
                how = " (a table chosen at run time counts as each domain table)" if table == DYNAMIC else ""
                found.append(f"{service} writes {real}{how} in {sorted(where)}")
    return found


def _domain_tables() -> set[str]:
    def tables(node: object) -> Iterator[str]:
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "table" and isinstance(value, str):
                    yield value
                yield from tables(value)

    return set(tables(tomllib.loads(DOMAINS_TOML.read_text())))


def _service_sources(service: str) -> list[tuple[str, str]]:
    return list(_modules(ROOT / "services" / service / "src"))


# -- the rule ---------------------------------------------------------------------------------


def test_every_table_has_one_documented_owner() -> None:
    allowed = documented_writers()
    assert set(allowed) == set(TABLES), f"docs/data.md misses tables: {sorted(set(TABLES) - set(allowed))}"


def test_no_service_writes_a_table_it_does_not_own() -> None:
    shared, allowed = core_writes(), documented_writers()
    found = [
        v
        for service in SERVICES
        for v in violations(service, service_writes(_service_sources(service), shared), allowed)
    ]
    assert not found, "writes docs/data.md does not list:\n" + "\n".join(found)


def test_the_scan_finds_the_writes_it_is_meant_to_find() -> None:
    """Each way of writing is seen; shared SQL counts for its caller; reading and look-alikes do not count."""
    shared = core_writes()
    assert shared["paysync_core.db.tenants.create_tenant"] == {"tenants"}
    assert shared["paysync_core.db.tenants.load_credentials"] == set()
    source = '''
from sqlalchemy import delete, select, text, update
from sqlalchemy.dialects.postgresql import insert
from paysync_core.db import schema
from paysync_core.db import tenants as tenant_repo
from paysync_core.db.schema import outbox, payments

async def f(conn, table, cache):
    """Does not UPDATE payments: a docstring is no SQL."""
    await conn.execute(insert(payments).values(id=1))
    await conn.execute(update(schema.sync_issues))
    await conn.execute(outbox.delete())
    await conn.execute(text("DELETE FROM reconcile_ticks WHERE true"))
    await conn.execute(text("SELECT 1 FROM observations FOR UPDATE OF observations"))
    await conn.execute(delete(table))
    cache.update({})
    await tenant_repo.issue_api_key(conn, "t")
    await tenant_repo.load_credentials(conn, "t", None)
    await conn.execute(select(payments))
'''
    writers = service_writes([("paysync_fake.repository", source)], shared)
    assert set(writers) == {"payments", "sync_issues", "outbox", "reconcile_ticks", DYNAMIC, "api_keys"}
    allowed = {t: {"webhook-ingest"} for t in TABLES}
    found = violations("webhook-ingest", writers, allowed)
    assert not found
    found = violations("notifier", writers, allowed)
    assert any("notifier writes payments" in v for v in found)
    assert any("notifier writes api_keys" in v and "issue_api_key" in v for v in found)
    assert any("workshop_jobs" in v and "run time" in v for v in found)
