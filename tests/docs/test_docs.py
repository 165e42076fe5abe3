"""docs/ and the service READMEs, checked against the checkout and the code (no servers needed).

Every repository path they name exists, every link stays inside the checkout and its `#anchor` names a
heading there, every topic, table, NOTIFY channel and HTTP route the code has is documented, and the
settings table is the one the settings classes render. So a rename, a new topic or a new setting fails
here, not in a reader's head.
"""

from __future__ import annotations

import importlib.util
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr

from paysync_api_gateway import overrides
from paysync_core import db, topics
from paysync_core.db.schema import metadata
from paysync_notifier.endpoints import stream_router
from paysync_notifier.service import LiveStream
from paysync_notifier.settings import NotifierSettings
from paysync_webhook_ingest.endpoints import routes as webhook_routes

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
SERVICES = sorted(p for p in (ROOT / "services").iterdir() if (p / "pyproject.toml").is_file())
#: Where repository paths are named; the root README only for its links (it names local state too).
NAMING_PATHS = sorted(DOCS.glob("*.md")) + [s / "README.md" for s in SERVICES]
LINKING = [*NAMING_PATHS, ROOT / "README.md"]
#: A path in backticks or a code block is a repository path when it starts with one of these.
TOP_LEVEL = tuple(
    f"{p.name}/" if p.is_dir() else p.name for p in ROOT.iterdir() if not p.name.startswith(".")
)
_CODE = re.compile(r"```.*?```|`[^`\n]+`", re.DOTALL)
_LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
_ROUTE = re.compile(r"`(GET|POST|PUT|PATCH|DELETE) (/[^`?\s]*)")
#: The api-gateway modules whose `router` its `create_app` includes (`_include_routers`, `_include_console`).
API_GATEWAY_ROUTERS = (
    "endpoints",
    "checkout",
    "stream",
    "stream_tokens",
    "sync_issues",
    "admin",
    "cors_admin",
    "evidence",
    "overrides",
    "app_webhooks",
    "admin_sweeps",
    "admin_dead_letters",
    "admin_topics",
    "alert_admin",
    "own_key",
    "console",
)


def named_paths(text: str) -> Iterator[str]:
    """Repository paths named in code spans and blocks: placeholders (`<name>`, `{id}`, `…`) skipped."""
    for span in _CODE.findall(text):
        for token in re.split(r"[\s`,()]+", span):
            token = token.rstrip(".:;")
            if token.startswith(TOP_LEVEL) and not re.search(r"[<>{}*…]", token):
                yield token


def links(text: str) -> Iterator[str]:
    """Markdown link targets that are not web addresses or anchors, without their anchor."""
    for target in _LINK.findall(text):
        if not re.match(r"[a-z]+:", target) and not target.startswith("#"):
            yield target.split("#", 1)[0]


def test_every_service_has_a_readme_linking_the_docs() -> None:
    for service in SERVICES:
        readme = service / "README.md"
        assert readme.is_file(), f"{service.name} has no README.md"
        assert "docs/architecture.md" in readme.read_text(), f"{readme} does not link docs/architecture.md"


@pytest.mark.parametrize("doc", NAMING_PATHS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_path_named_exists(doc: Path) -> None:
    missing = sorted({p for p in named_paths(doc.read_text()) if not (ROOT / p).exists()})
    assert not missing, f"{doc.relative_to(ROOT)} names paths that do not exist: {missing}"


@pytest.mark.parametrize("doc", LINKING, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_link_resolves_inside_the_checkout(doc: Path) -> None:
    for target in links(doc.read_text()):
        resolved = (doc.parent / target).resolve()
        assert resolved.is_relative_to(ROOT), f"{doc.relative_to(ROOT)} links outside the checkout: {target}"
        assert resolved.exists(), f"{doc.relative_to(ROOT)} links to a missing file: {target}"


def anchors(doc: Path) -> set[str]:
    """The `#anchors` GitHub gives a Markdown file's headings (lower case, punctuation dropped, spaces
    to hyphens, `-1`, `-2` after repeats); headings inside code blocks are not headings."""
    text = re.sub(r"```.*?```", "", doc.read_text(), flags=re.DOTALL)
    found: set[str] = set()
    repeats: dict[str, int] = {}
    for heading in re.findall(r"^#+\s+(.+?)\s*$", text, flags=re.MULTILINE):
        slug = re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-")
        found.add(f"{slug}-{repeats[slug]}" if slug in repeats else slug)
        repeats[slug] = repeats.get(slug, 0) + 1
    return found


@pytest.mark.parametrize("doc", LINKING, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_anchor_names_a_heading(doc: Path) -> None:
    for target in _LINK.findall(doc.read_text()):
        if re.match(r"[a-z]+:", target) or "#" not in target:
            continue
        path, anchor = target.split("#", 1)
        linked = (doc.parent / path).resolve() if path else doc
        if linked.suffix == ".md" and linked.is_file():
            assert anchor in anchors(linked), f"{doc.relative_to(ROOT)} links to a missing heading: {target}"


def test_the_webhook_path_is_told_file_by_file() -> None:
    text = (DOCS / "architecture.md").read_text()
    section = text.split("## The path of one Stripe webhook", 1)[1].split("\n## ", 1)[0]
    files = {p for p in named_paths(section) if p.endswith(".py")}
    for step in ("webhook-ingest", "status-projector", "api-gateway", "notifier"):
        assert any(f.startswith(f"services/{step}/") for f in files), f"the path skips {step}"


def test_every_topic_is_documented() -> None:
    text = (DOCS / "topics.md").read_text()
    missing = [spec.name for spec in topics.ALL if f"`{spec.name}`" not in text]
    assert not missing, f"docs/topics.md does not describe {missing}"
    for spec in topics.ALL:
        if not spec.name.endswith(".dlq"):
            row = next(line for line in text.splitlines() if line.startswith(f"| `{spec.name}` |"))
            assert f"| {spec.partitions} |" in row, f"docs/topics.md: wrong partitions for {spec.name}"
            assert f"| {spec.key_description} |" in row, f"docs/topics.md: wrong key for {spec.name}"
            assert f"`{spec.message.__name__}`" in row, f"docs/topics.md: wrong contract for {spec.name}"


def test_every_table_and_channel_is_documented() -> None:
    text = (DOCS / "data.md").read_text()
    missing = [name for name in metadata.tables if f"`{name}`" not in text]
    channels = [db.OUTBOX_CHANNEL, db.REGISTERED_CHANNEL, db.TENANTS_CHANNEL]
    missing += [name for name in channels if f"| `{name}` |" not in text]
    assert not missing, f"docs/data.md does not describe {missing}"


def _routes() -> Iterator[tuple[str, str]]:
    notifier = stream_router(LiveStream(1, 1.0), SecretStr("unused"), NotifierSettings())
    modules = (importlib.import_module(f"paysync_api_gateway.{name}") for name in API_GATEWAY_ROUTERS)
    routers = [module.router for module in modules] + [overrides.tenant_router]
    for router in (*routers, notifier):
        for route in router.routes:
            yield from ((method, route.path) for method in route.methods)
    for route in webhook_routes:
        yield from ((method, route.path) for method in route.methods if method != "HEAD")


def _shape(path: str) -> str:
    return re.sub(r"\{[^}]*\}", "{}", path)


def test_every_http_route_is_documented() -> None:
    documented = {(m, _shape(p)) for m, p in _ROUTE.findall((DOCS / "http-api.md").read_text())}
    missing = sorted(f"{m} {p}" for m, p in _routes() if (m, _shape(p)) not in documented)
    assert not missing, f"docs/http-api.md does not describe {missing}"


def test_the_settings_table_is_current() -> None:
    spec = importlib.util.spec_from_file_location("settings_docs", ROOT / "tools" / "settings_docs.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert (DOCS / "settings.md").read_text() == module.render(), (
        "docs/settings.md is stale: run `.venv/bin/python tools/settings_docs.py > docs/settings.md`"
    )
