"""webhook-ingest's settings; env prefix `PAYSYNC_WEBHOOK_INGEST_` (shared ones: `PAYSYNC_`)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from paysync_core.settings import CommonSettings


class WebhookIngestSettings(BaseSettings):
    """How webhook-ingest listens, how long it waits for the broker, and its limits."""

    model_config = SettingsConfigDict(env_prefix="PAYSYNC_WEBHOOK_INGEST_", extra="ignore")

    common: CommonSettings = Field(default_factory=CommonSettings)
    host: str = "127.0.0.1"
    port: int = 8001
    max_body_bytes: int = Field(default=256 * 1024, description="Larger bodies get 413")
    produce_timeout_seconds: float = Field(default=5.0, description="Past it: 503 + Retry-After")
    produce_linger_ms: int = Field(
        default=2, ge=0, description="How long the producer waits to batch raw records (adds to latency)"
    )
    retry_after_seconds: int = Field(default=5, description="`Retry-After` of 429 and 503 answers")
    credentials_cache_seconds: float = Field(
        default=30.0, description="How long tenant credentials are cached"
    )
    auth_failure_rate: float = Field(default=5.0, description="Forgeries per second per tenant before 429")
    auth_failure_burst: float = Field(
        default=20.0,
        description="Forgeries one tenant may send at once before 429 (`…_AUTH_FAILURE_RATE` refills)",
    )
    quarantine_retention_days: float = Field(
        default=30.0, gt=0, description="Quarantine records (refused requests) older than this are deleted"
    )
    quarantine_expiry_every_seconds: float = Field(
        default=3600.0, gt=0, description="How often expired quarantine records are looked for"
    )
    quarantine_expiry_batch: int = Field(default=1000, ge=1, description="Rows deleted per transaction")
    run_normalizer: bool = Field(default=True, description="Also run the raw → observation consumer")
    normalizer_group: str = Field(
        default="paysync-normalizer", description="The normalizer's consumer group on the raw topic"
    )
    normalizer_max_attempts: int = Field(
        default=3,
        description="Tries of a raw record that fails for its own reason before it is dead-lettered",
    )
