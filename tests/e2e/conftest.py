"""End-to-end fixtures: the five services as separate processes against the real broker and database.

The stack's reconciler runs its scheduler as in production, so every tenant here has its gateways at
the gateway simulator: its sweeps ask the simulator, never a real gateway.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, async_playwright

from paysync_dev.fixtures import TestTenant, create_tenant
from paysync_dev.service_fixtures import service_env
from paysync_dev.stack import ServiceProcess, start_stack, stop_stack
from paysync_gateway_sim import SimulatorClient

from .browsing import CHROMIUM, Browsing


@pytest.fixture(scope="module")
def stack(
    kafka_topics: str, migrated_database: str, credentials_keys: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, ServiceProcess]]:
    """All five services, each its own OS process, ready; stopped after the module."""
    log_dir: Path = tmp_path_factory.mktemp("service-logs")
    procs = start_stack(service_env(kafka_topics, migrated_database, credentials_keys), log_dir)
    yield procs
    stop_stack(procs)


@pytest.fixture
def tenant(migrated_database: str, credentials_keys: str, gateway_sim: SimulatorClient) -> TestTenant:
    """A fresh tenant with all three gateways at the simulator (accounts of its own)."""
    return create_tenant(migrated_database, credentials_keys, sim=gateway_sim)


@pytest.fixture(scope="module")
async def chromium() -> AsyncIterator[Browser]:
    """Debian's Chromium, headless, driven by Playwright; the browser tests skip (saying why) without it."""
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing: `make test` installs Debian's chromium package (as root)")
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        yield browser
        await browser.close()


@pytest.fixture
async def browsing(chromium: Browser) -> AsyncIterator[Browsing]:
    """A fresh browser profile for one test; every URL its pages request is recorded."""
    context = await chromium.new_context(viewport={"width": 1280, "height": 900})
    run = Browsing(context)
    context.on("request", run.record)
    yield run
    await context.close()
