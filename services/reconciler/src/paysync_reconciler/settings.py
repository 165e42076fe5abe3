"""reconciler's settings; env prefix `PAYSYNC_RECONCILER_` (shared ones: `PAYSYNC_`)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from paysync_core.settings import CommonSettings


class ReconcilerSettings(BaseSettings):
    """Where the reconciler listens and its consumer group."""

    model_config = SettingsConfigDict(env_prefix="PAYSYNC_RECONCILER_", extra="ignore")

    common: CommonSettings = Field(default_factory=CommonSettings)
    host: str = "127.0.0.1"
    port: int = 8002
    group_id: str = "paysync-reconciler"
