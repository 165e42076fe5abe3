"""The operator console (`/console`) and the browser helper (`/paysync.js`): static files, no build step.

Both are plain files in `static/`, read once when the app is built, and use only the public `/v1`
API. The console keeps the tenant key in the tab's `sessionStorage` and sends it only in
`Authorization`; its live stream uses a stream token. Pages carry a strict Content-Security-Policy
(scripts, styles and connections to this origin only, no inline script, no form submission), so a
value the API returns can never run as script, and a sign-in form can never put the key in a URL.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Header, Response

from paysync_api_gateway.deps import Settings
from paysync_api_gateway.service import NotFound

STATIC = Path(__file__).parent / "static"
_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
}
#: URL path -> file in `static/`. The console's modules import `../paysync.js`, the helper itself.
ROUTES = {
    "/paysync.js": "paysync.js",
    "/console": "console.html",
    "/console/console.js": "console.js",
    "/console/console-views.js": "console-views.js",
    "/console/console.css": "console.css",
    "/console/watch": "watch.html",
    "/console/watch.js": "watch.js",
}
#: Every page and file of the console. `form-action 'none'`: a sign-in form submitted without its
#: script (blocked, or failed to load) would otherwise send the key in the page's URL.
PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; "
    "connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cache-Control": "no-cache",
}

router = APIRouter(include_in_schema=False)


@dataclass(frozen=True, slots=True)
class StaticFile:
    """A file's bytes, content type and ETag (a hash of the bytes)."""

    body: bytes
    media_type: str
    etag: str


def _load(name: str) -> StaticFile:
    body = (STATIC / name).read_bytes()
    return StaticFile(body, _TYPES[Path(name).suffix], f'"{hashlib.sha256(body).hexdigest()[:32]}"')


FILES = {path: _load(name) for path, name in ROUTES.items()}


def _helper_headers(max_age: int) -> dict[str, str]:
    """`/paysync.js` is public and cacheable, and loadable as a module script from tenants' own pages
    (module scripts are fetched with CORS)."""
    return {
        "Cache-Control": f"public, max-age={max_age}",
        "Access-Control-Allow-Origin": "*",
        "Cross-Origin-Resource-Policy": "cross-origin",
        "X-Content-Type-Options": "nosniff",
    }


def _serve(path: str, settings: Settings, if_none_match: str | None) -> Response:
    if not settings.console_enabled:
        raise NotFound("the console is not enabled here")
    file = FILES[path]
    headers = {"ETag": file.etag}
    headers |= _helper_headers(settings.helper_max_age_seconds) if path == "/paysync.js" else PAGE_HEADERS
    tags = {tag.strip().removeprefix("W/") for tag in (if_none_match or "").split(",")}
    if file.etag in tags or "*" in tags:
        return Response(status_code=304, headers=headers)
    return Response(file.body, media_type=file.media_type, headers=headers)


def _route(path: str) -> None:
    async def serve(settings: Settings, if_none_match: Annotated[str | None, Header()] = None) -> Response:
        return _serve(path, settings, if_none_match)

    serve.__doc__ = f"The static file {ROUTES[path]}."
    router.add_api_route(path, serve, methods=["GET"], name=f"static:{ROUTES[path]}")


for _path in ROUTES:
    _route(_path)
