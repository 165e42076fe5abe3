"""What the adapters are handed: webhook requests and parse contexts, with sensible defaults."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime

from paysync_core.contracts.common import ObservationSource
from paysync_core.contracts.observation import Evidence
from paysync_core.providers.base import ParseContext, WebhookRequest

__all__ = ["parse_context", "webhook_request"]


def webhook_request(
    body: bytes,
    *,
    headers: Mapping[str, str] | None = None,
    tenant: str = "acme",
    remote_addr: str | None = "203.0.113.10",
    received_at: datetime | None = None,
    path_token: str | None = None,
) -> WebhookRequest:
    """A webhook as webhook-ingest hands it to an adapter (header names lower-cased)."""
    return WebhookRequest(
        tenant=tenant,
        body=body,
        headers={k.lower(): v for k, v in (headers or {}).items()},
        remote_addr=remote_addr,
        received_at=received_at or datetime.now(UTC),
        path_token=path_token,
    )


def parse_context(
    *,
    tenant: str = "acme",
    source: ObservationSource = ObservationSource.WEBHOOK,
    verified: bool = True,
    observed_at: datetime | None = None,
    evidence: Evidence | None = None,
) -> ParseContext:
    """Where parsed bytes came from: by default a verified webhook observed now."""
    return ParseContext(
        tenant=tenant,
        source=source,
        verified=verified,
        observed_at=observed_at or datetime.now(UTC),
        evidence=evidence or Evidence(),
    )
