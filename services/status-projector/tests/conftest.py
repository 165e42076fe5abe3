"""The status projector's test fixtures; their builders are plain functions in `paysync_dev.projector`."""

from __future__ import annotations

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from paysync_core.domains import Domains, load_domains
from paysync_status_projector.settings import BUILTIN_DOMAINS


@pytest.fixture(scope="session")
async def domains(engine: AsyncEngine) -> Domains:
    """The built-in domains, bound to the database's tables."""
    bound = Domains(load_domains(BUILTIN_DOMAINS))
    await bound.bind(engine)
    return bound
