"""status-projector's settings; env prefix `PAYSYNC_STATUS_PROJECTOR_` (shared ones: `PAYSYNC_`)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from paysync_core.settings import CommonSettings

BUILTIN_DOMAINS = Path(__file__).parent / "domains.toml"


class StatusProjectorSettings(BaseSettings):
    """Consumer group, batch sizes, the relay's pace and where the domain mapping lives."""

    model_config = SettingsConfigDict(env_prefix="PAYSYNC_STATUS_PROJECTOR_", extra="ignore")

    common: CommonSettings = Field(default_factory=CommonSettings)
    host: str = "127.0.0.1"
    port: int = 8003
    group_id: str = "paysync-status-projector"
    max_batch: int = 500
    batch_timeout_ms: int = 20
    max_attempts: int = 3
    relay_batch: int = 500
    relay_poll_seconds: float = Field(default=0.5, description="Fallback when no NOTIFY arrives")
    unpark_poll_seconds: float = 5.0
    domains_file: Path = Field(default=BUILTIN_DOMAINS, description="The domain mapping (TOML)")
