"""api-gateway's settings; env prefix `PAYSYNC_API_GATEWAY_` (shared ones: `PAYSYNC_`)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from paysync_core.settings import CommonSettings


class ApiGatewaySettings(BaseSettings):
    """Where the API listens and how much a page holds."""

    model_config = SettingsConfigDict(env_prefix="PAYSYNC_API_GATEWAY_", extra="ignore")

    common: CommonSettings = Field(default_factory=CommonSettings)
    host: str = "127.0.0.1"
    port: int = 8005
    page_size: int = Field(
        default=50,
        ge=1,
        le=500,
        description="A page's length when a request gives no `limit` (which is 1-500)",
    )
    refresh_timeout_seconds: float = Field(default=10.0, description="One entity's check; past it: 202")
    bulk_refresh_timeout_seconds: float = Field(default=25.0, description="A bulk check; past it: 202")
    notifier_url: str = Field(default="http://127.0.0.1:8004", description="Where the live stream comes from")
    stream_max_per_tenant: int = Field(
        default=20, ge=1, description="Live streams one tenant may hold open on one replica; past it: 429"
    )
    stream_max_total: int = Field(
        default=1000, ge=1, description="Live streams one replica holds open in all; past it: 503"
    )
    override_wait_seconds: float = Field(
        default=10.0,
        ge=0,
        description="How long `POST /admin/v1/payments/{id}/override` waits for the projector to apply the "
        "override before answering 202 (applied later)",
    )
    stream_token_secret: SecretStr = Field(
        default=SecretStr(""),
        description="Signs stream tokens (`POST /v1/stream-tokens`, HMAC-SHA256); the same on every replica. "
        "Empty: no tokens are issued (503) or accepted (401)",
    )
    stream_token_ttl_seconds: int = Field(
        default=300,
        ge=1,
        le=86400,
        description="How long a stream token lives, at most (a request may ask less)",
    )
    admin_token: SecretStr = Field(default=SecretStr(""), description="Enables /admin/v1 for its holder")
    max_body_bytes: int = Field(
        default=64 * 1024, ge=1024, description="Larger request bodies are refused with 413 while being read"
    )
    max_metadata_bytes: int = Field(
        default=16 * 1024, ge=0, description="Bytes a payment's `metadata` may have as JSON (else 422)"
    )
    max_metadata_depth: int = Field(
        default=5, ge=1, description="Objects and arrays in `metadata` may nest at most this deep (else 422)"
    )
    failed_key_burst: float = Field(
        default=20.0, ge=1, description="Unknown or revoked API keys one client address may send at once"
    )
    failed_key_rate: float = Field(
        default=0.5, gt=0, description="Failed API-key checks per second an address earns back; past it: 429"
    )
    mpesa_callback_base_url: str = Field(
        default="http://127.0.0.1:8001",
        description="webhook-ingest's public base URL: where Daraja sends the callbacks of STK pushes that "
        "`POST /v1/payments/checkout` and `/retry` send",
    )
    mpesa_max_sends: int = Field(
        default=3, ge=1, le=20, description="STK pushes one M-Pesa payment may have in all; past it: 409"
    )
    mpesa_attempt_seconds: float = Field(
        default=120.0,
        gt=0,
        description="An STK push with no known outcome counts as in flight this long (a retry gets 409)",
    )
    checkout_fault: Literal["", "crash_after_gateway_call"] = Field(
        default="",
        description="Tests only: `crash_after_gateway_call` kills the process between a checkout's gateway "
        "call and its registration",
    )
    api_key_cache_seconds: float = Field(
        default=5.0,
        ge=0,
        description="How long a replica trusts an API-key check (and a tenant's CORS origins) before "
        "asking the database again: a key revoked elsewhere is refused within this; 0: every request asks."
        " A key in use is asked about again in the last fifth of this, in the background, so under steady"
        " traffic no request waits for the database",
    )
    api_key_negative_cache_seconds: float = Field(
        default=1.0, ge=0, description="How long an unknown or revoked key's check is remembered"
    )
    api_key_cache_max_entries: int = Field(
        default=10_000,
        ge=1,
        description="API-key checks one replica remembers at most (oldest dropped first)",
    )
    cors_max_age_seconds: int = Field(
        default=600, ge=0, le=7200, description="How long a browser may reuse a CORS preflight's answer"
    )
    refresh_press_burst: float = Field(
        default=3.0,
        ge=1,
        description="Checks one API key may start at once for one entity (or in bulk); joining a check "
        "in flight takes none",
    )
    refresh_press_rate: float = Field(
        default=0.1, gt=0, description="Checks per second a key earns back per entity (or bulk); past it: 429"
    )
    console_enabled: bool = Field(
        default=True,
        description="Serve the operator console (`/console`) and the browser helper (`/paysync.js`); both "
        "use only the public `/v1` API. false: both are 404",
    )
    helper_max_age_seconds: int = Field(
        default=300,
        ge=0,
        le=86400,
        description="How long browsers and shared caches may keep `/paysync.js` before revalidating it "
        "(its `ETag` makes that a 304); the console's own files are always revalidated",
    )
