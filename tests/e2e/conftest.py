"""End-to-end fixtures: the five services as separate processes against the real broker and database.

The stack's reconciler runs its scheduler as in production, so every tenant here has its gateways at
the gateway simulator: its sweeps ask the simulator, never a real gateway.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, async_playwright
from sqlalchemy.ext.asyncio import AsyncEngine

from paysync_core.db.engine import make_engine
from paysync_dev.fixtures import TestTenant, create_tenant, new_migrated_database
from paysync_dev.service_fixtures import service_env
from paysync_dev.stack import ServiceProcess, start_stack, stop_stack
from paysync_gateway_sim import SimulatorClient

from .browsing import CHROMIUM, Browsing


class SharedStack:
    """The five services with the settings every test session shares, started once for the modules that
    take them as they are (each start is 10-20 s of the suite), and stopped before a module starts
    services of its own: two stacks would be one consumer group's members and split its partitions."""

    def __init__(self, env: dict[str, str], log_dir: Path) -> None:
        self._env, self._log_dir = env, log_dir
        self._procs: dict[str, ServiceProcess] | None = None

    def get(self) -> dict[str, ServiceProcess]:
        """The running stack; started (again) if it is not running or a test left one of its services dead."""
        if self._procs is not None and any(
            p.process is None or p.process.poll() is not None for p in self._procs.values()
        ):
            self.stop()
        if self._procs is None:
            self._procs = start_stack(self._env, self._log_dir)
        return self._procs

    def stop(self) -> None:
        """Stop the stack if it runs."""
        if self._procs is not None:
            procs, self._procs = self._procs, None
            stop_stack(procs)


@pytest.fixture(scope="package")
def migrated_database(database_url: str) -> Iterator[str]:
    """A database of this package's own, for its stacks and tenants. On the session's database the stack's
    reconciler, new, first swept every tenant the packages before this one had left (hundreds): a test
    waiting for a sweep waited half a minute for theirs."""
    with new_migrated_database(database_url) as url:
        yield url


@pytest.fixture(scope="package")
async def engine(migrated_database: str) -> AsyncIterator[AsyncEngine]:
    """An engine on the package's database."""
    eng = make_engine(migrated_database, pool_size=4)
    yield eng
    await eng.dispose()


@pytest.fixture(scope="package")
def shared_stack(
    kafka_topics: str, migrated_database: str, credentials_keys: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[SharedStack]:
    """The package's shared stack (see SharedStack); stopped after the package's last test."""
    shared = SharedStack(
        service_env(kafka_topics, migrated_database, credentials_keys),
        tmp_path_factory.mktemp("service-logs"),
    )
    yield shared
    shared.stop()


@pytest.fixture(scope="module")
def stack(shared_stack: SharedStack) -> dict[str, ServiceProcess]:
    """All five services, each its own OS process, ready (shared with the other modules that use them as
    they are: a test that stops one of them starts it again)."""
    return shared_stack.get()


@pytest.fixture(scope="module")
def no_shared_stack(shared_stack: SharedStack) -> None:
    """For a module that starts services of its own: the shared stack is stopped first."""
    shared_stack.stop()


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
