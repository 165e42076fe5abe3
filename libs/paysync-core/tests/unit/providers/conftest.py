"""Fixtures shared by the provider adapter tests."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from paysync_core.contracts.common import ObservationSource
from paysync_core.contracts.observation import Evidence
from paysync_core.providers.base import ParseContext
from paysync_core.testing.builders.requests import parse_context

OBSERVED_AT = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)


@pytest.fixture
def observed_at() -> datetime:
    """When the normaliser saw the record in the tests' contexts."""
    return OBSERVED_AT


@pytest.fixture
def ctx() -> ParseContext:
    """A verified webhook context carrying the raw record's position as evidence."""
    return parse_context(
        tenant="acme",
        source=ObservationSource.WEBHOOK,
        verified=True,
        observed_at=OBSERVED_AT,
        evidence=Evidence(ingest_id="ing-1", raw_partition=3, raw_offset=42),
    )
