"""Helpers of the browser tests: Debian's Chromium under Playwright, the URLs a page asked for, artefacts.

Never a downloaded browser (`playwright install` is not used): `/usr/bin/chromium`, from Debian's
`chromium` package, which `make test` installs when it is missing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from playwright.async_api import BrowserContext, Page, Request

CHROMIUM = Path("/usr/bin/chromium")
#: Screenshots of every browser test, kept as artefacts of the run (git-ignored).
ARTEFACTS = Path(__file__).resolve().parents[2] / ".test-output" / "browser"


@dataclass
class Browsing:
    """One browser profile (its own storage, Web Locks and BroadcastChannels), and every URL it requested."""

    context: BrowserContext
    urls: list[str] = field(default_factory=list)

    def record(self, request: Request) -> None:
        """Keep the URL of a request any page of the profile made."""
        self.urls.append(request.url)

    async def page(self, url: str) -> Page:
        """A new tab showing `url`."""
        page = await self.context.new_page()
        await page.goto(url)
        return page


async def screenshot(page: Page, name: str, *, secrets: tuple[str, ...]) -> Path:
    """Save the page as `<name>.png` among the artefacts; the page shows none of `secrets` (text or HTML)."""
    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTEFACTS / f"{re.sub(r'[^A-Za-z0-9_.-]', '_', name)}.png"
    await page.screenshot(path=str(path), full_page=True)
    shown, html = await page.inner_text("body"), await page.content()
    for secret in secrets:
        assert secret not in shown and secret not in html, f"a secret is on the page in {path.name}"
    return path


def logs_without(logs: list[Path], secrets: tuple[str, ...]) -> None:
    """Assert that no log file holds any of `secrets`."""
    for log in logs:
        text = log.read_text(errors="replace")
        for secret in secrets:
            assert secret not in text, f"a secret is in {log.name}"
