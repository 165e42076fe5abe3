"""The hand-built raw record is exactly the RawWebhook contract."""

from __future__ import annotations

from datetime import UTC, datetime

from paysync_core.contracts import Provider, RawWebhook, Verdict
from paysync_core.providers.base import WebhookRequest
from paysync_webhook_ingest.service import raw_record


def test_raw_record_bytes_parse_as_the_contract_with_every_field_intact() -> None:
    body = b'{"id": "evt_1", "emoji": "\\u00e9", "bin": "\\u0000"}'
    request = WebhookRequest(
        tenant="acme",
        body=body,
        remote_addr="203.0.113.9",
        headers={
            "stripe-signature": "t=1,v1=ab",
            "authorization": "Bearer secret",
            "content-type": "application/json",
        },
        received_at=datetime(2026, 5, 1, 12, 30, 1, 123456, tzinfo=UTC),
    )
    raw = RawWebhook.from_bytes(raw_record(request, Provider.STRIPE, Verdict.VERIFIED, "ingest-1"))
    assert raw.body == body
    assert raw.received_at == request.received_at
    assert raw.headers == {"stripe-signature": "t=1,v1=ab", "content-type": "application/json"}
    assert (raw.tenant, raw.provider, raw.verdict, raw.ingest_id, raw.remote_addr) == (
        "acme",
        Provider.STRIPE,
        Verdict.VERIFIED,
        "ingest-1",
        "203.0.113.9",
    )
