"""webhook-ingest's use cases: accept a webhook durably; normalize a raw record into observations."""

from __future__ import annotations

import asyncio
import base64
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
import structlog
from aiokafka.errors import KafkaError

from paysync_core.contracts import (
    PaymentObservation,
    Provider,
    RawWebhook,
    ReconcileRequest,
    Verdict,
)
from paysync_core.credentials import GatewayCredentials
from paysync_core.errors import MalformedPayload, ModeMismatch, NotDurable, ProviderNotConfigured
from paysync_core.normalize import normalize_raw
from paysync_core.providers import adapter_for
from paysync_core.providers.base import Parsed, WebhookRequest
from paysync_core.providers.modes import mode_mismatch
from paysync_core.topics import raw_webhook_key

log = structlog.get_logger()

#: Request headers worth keeping with the raw record (for audit and re-verification on replay).
KEPT_HEADERS = ("content-type", "user-agent", "stripe-signature", "x-paystack-signature", "x-forwarded-for")

#: Publishes (key, value) to the raw topic and returns once the broker acknowledged it.
RawPublisher = Callable[[bytes, bytes], Awaitable[object]]


@dataclass(frozen=True, slots=True)
class Accepted:
    """A webhook the broker holds durably."""

    ingest_id: str
    verdict: Verdict


async def accept_webhook(
    request: WebhookRequest,
    provider: Provider,
    credentials: GatewayCredentials,
    publish: RawPublisher,
    *,
    timeout: float,
) -> Accepted:
    """Check the webhook and hand it to the broker; returns only once it is durable.

    Raises MalformedPayload, ProviderNotConfigured, AuthenticityError, ModeMismatch, or NotDurable.
    """
    provider_credentials = getattr(credentials, provider.value)
    if provider_credentials is None:
        raise ProviderNotConfigured(request.tenant, provider.value)
    document = _require_json(request.body)
    adapter = adapter_for(provider)
    verdict = adapter.authenticate(request, provider_credentials)
    if (mismatch := mode_mismatch(provider, document, provider_credentials)) is not None:
        raise ModeMismatch(mismatch)  # a test tenant never marks a live payment paid, nor the reverse
    if not adapter.ip_allowed(request, provider_credentials):
        # Policy "log": accepted (the signature holds), but an operator should know.
        log.warning(
            "webhook.ip_not_in_allowlist",
            tenant=request.tenant,
            provider=provider.value,
            remote_addr=request.remote_addr,
        )
    ingest_id = str(uuid.uuid4())
    # The reference found in the already parsed body: `WEBHOOKS_RAW.key_for` would parse it again.
    key = raw_webhook_key(request.tenant, provider, adapter.reference_hint(document))
    try:
        async with asyncio.timeout(timeout):  # not wait_for: that costs a task per webhook
            await publish(key, raw_record(request, provider, verdict, ingest_id))
    except (TimeoutError, OSError, ConnectionError, KafkaError) as exc:
        raise NotDurable(f"broker did not acknowledge within {timeout}s") from exc
    return Accepted(ingest_id, verdict)


def raw_record(request: WebhookRequest, provider: Provider, verdict: Verdict, ingest_id: str) -> bytes:
    """The `RawWebhook` contract's bytes, built directly: this runs once per webhook on the hot path."""
    return orjson.dumps(
        {
            "schema_version": 1,
            "ingest_id": ingest_id,
            "tenant": request.tenant,
            "provider": provider.value,
            "received_at": request.received_at.isoformat().replace("+00:00", "Z"),
            "remote_addr": request.remote_addr,
            "headers": {k: v for k, v in request.headers.items() if k in KEPT_HEADERS},
            "body": base64.b64encode(request.body).decode("ascii"),
            "verdict": verdict.value,
        }
    )


def normalize(raw: RawWebhook, *, partition: int | None, offset: int | None, phone_key: str = "") -> Parsed:
    """The observations a raw webhook record stands for (MalformedPayload if it has none); an M-Pesa
    payer's number becomes a hash under `phone_key` (`PAYSYNC_PHONE_HASH_KEY`), never published."""
    return normalize_raw(raw, partition=partition, offset=offset, phone_key=phone_key)


def confirmations_for(observations: list[PaymentObservation]) -> list[ReconcileRequest]:
    """Hints that only a gateway query can confirm (M-Pesa callbacks) become check requests."""
    return [
        ReconcileRequest(
            request_id=f"confirm:{obs.observation_id}",
            tenant=obs.tenant,
            kind="confirm_callback",
            provider=obs.provider,
            refs=(obs.provider_ref,),
            requested_at=obs.observed_at,
            reason=obs.evidence.detail,
        )
        for obs in observations
        if not obs.verified
    ]


def _require_json(body: bytes) -> dict[str, Any]:
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise MalformedPayload("body is not JSON") from exc
    if not isinstance(value, dict):
        raise MalformedPayload("body is not a JSON object")
    return value


def utcnow() -> datetime:
    """Now, timezone-aware UTC."""
    return datetime.now(UTC)
