"""notifier's settings; env prefix `PAYSYNC_NOTIFIER_` (shared ones: `PAYSYNC_`)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from paysync_core.settings import CommonSettings


class NotifierSettings(BaseSettings):
    """Where the notifier listens and how many recent events it keeps for resuming streams."""

    model_config = SettingsConfigDict(env_prefix="PAYSYNC_NOTIFIER_", extra="ignore")

    common: CommonSettings = Field(default_factory=CommonSettings)
    host: str = "127.0.0.1"
    port: int = 8004
    group_id: str = "paysync-notifier"
    replay_buffer: int = 1000
