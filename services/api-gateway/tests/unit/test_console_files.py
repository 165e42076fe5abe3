"""The console's pages and `paysync.js` as a browser fetches them from api-gateway: types, caching,
security headers, and every file a page or module refers to is one that is served.

The app is built as in production and called over HTTP (ASGI); serving static files needs neither
the broker nor the database, so its lifespan is not run.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from html.parser import HTMLParser
from urllib.parse import urljoin

import httpx
import pytest
from cryptography.fernet import Fernet

from paysync_api_gateway.app import create_app
from paysync_api_gateway.console import ROUTES
from paysync_api_gateway.settings import ApiGatewaySettings
from paysync_core.settings import CommonSettings

BASE = "http://api.example"
PAGES = ("/console", "/console/watch")


async def _client(**settings: object) -> httpx.AsyncClient:
    common = CommonSettings(credentials_keys=Fernet.generate_key().decode())
    app = create_app(ApiGatewaySettings(common=common, **settings))
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE)


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with await _client() as client:
        yield client


class _References(HTMLParser):
    """What a page refers to (scripts, styles) and what would run inline."""

    def __init__(self) -> None:
        super().__init__()
        self.refs: list[str] = []
        self.inline: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        named = dict(attrs)
        self.inline += [f"{tag} {name}" for name, _ in attrs if name.startswith("on") or name == "style"]
        if tag == "script":
            self._in_script = True
            if not named.get("src"):
                self.inline.append("script without src")
        for attr in ("src", "href"):
            if tag in ("script", "link") and named.get(attr):
                self.refs.append(named[attr] or "")

    def handle_endtag(self, tag: str) -> None:
        self._in_script = self._in_script and tag != "script"

    def handle_data(self, data: str) -> None:
        if self._in_script and data.strip():
            self.inline.append("inline script")


async def test_pages_carry_a_strict_policy_and_are_revalidated(client: httpx.AsyncClient) -> None:
    for path in PAGES:
        page = await client.get(path)
        assert page.status_code == 200
        assert page.headers["content-type"] == "text/html; charset=utf-8"
        policy = page.headers["content-security-policy"]
        assert "script-src 'self'" in policy and "default-src 'none'" in policy
        assert "unsafe-inline" not in policy and "unsafe-eval" not in policy
        assert "form-action 'none'" in policy and "frame-ancestors 'none'" in policy
        assert page.headers["x-content-type-options"] == "nosniff"
        assert page.headers["x-frame-options"] == "DENY"
        assert page.headers["referrer-policy"] == "no-referrer"
        assert page.headers["cache-control"] == "no-cache"
        again = await client.get(path, headers={"If-None-Match": page.headers["etag"]})
        assert again.status_code == 304 and again.content == b""


async def test_no_page_runs_inline_script_and_every_file_it_refers_to_is_served(
    client: httpx.AsyncClient,
) -> None:
    for path in PAGES:
        parsed = _References()
        parsed.feed((await client.get(path)).text)
        assert parsed.inline == [], f"{path} has inline script or style"
        assert parsed.refs, f"{path} loads its script and style"
        for ref in parsed.refs:
            served = await client.get(urljoin(f"{BASE}{path}", ref))
            assert served.status_code == 200, f"{path} refers to {ref}, which is not served"


async def test_every_module_import_resolves_to_a_served_module(client: httpx.AsyncClient) -> None:
    modules = [path for path in ROUTES if path.endswith(".js")]
    for path in modules:
        source = (await client.get(path)).text
        for target in re.findall(r"""^import .* from "([^"]+)";$""", source, flags=re.MULTILINE):
            resolved = urljoin(f"{BASE}{path}", target).removeprefix(BASE)
            assert resolved in modules, f"{path} imports {target}, which is not served"
            assert (await client.get(resolved)).headers["content-type"] == "text/javascript; charset=utf-8"


async def test_the_helper_is_a_cacheable_module_any_page_may_load(client: httpx.AsyncClient) -> None:
    helper = await client.get("/paysync.js")
    assert helper.status_code == 200
    assert helper.headers["content-type"] == "text/javascript; charset=utf-8"
    assert helper.headers["cache-control"] == "public, max-age=300"
    assert helper.headers["access-control-allow-origin"] == "*"  # module scripts are fetched with CORS
    assert "export function watchPayment" in helper.text and "export function connect" in helper.text
    again = await client.get("/paysync.js", headers={"If-None-Match": f"W/{helper.headers['etag']}"})
    assert again.status_code == 304 and again.headers["etag"] == helper.headers["etag"]
    other = await client.get("/paysync.js", headers={"If-None-Match": '"something-else"'})
    assert other.status_code == 200


async def test_the_cache_lifetime_of_the_helper_is_a_setting_and_the_console_can_be_turned_off() -> None:
    async with await _client(helper_max_age_seconds=60, console_enabled=False) as client:
        for path in ("/console", "/paysync.js", "/console/console.js"):
            answer = await client.get(path)
            assert answer.status_code == 404
            assert answer.json()["error"] == "not_found"
    async with await _client(helper_max_age_seconds=60) as client:
        assert (await client.get("/paysync.js")).headers["cache-control"] == "public, max-age=60"
