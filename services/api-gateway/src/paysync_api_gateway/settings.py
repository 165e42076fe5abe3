"""api-gateway's settings; env prefix `PAYSYNC_API_GATEWAY_` (shared ones: `PAYSYNC_`)."""

from __future__ import annotations

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from paysync_core.settings import CommonSettings


class ApiGatewaySettings(BaseSettings):
    """Where the API listens and how much a page holds."""

    model_config = SettingsConfigDict(env_prefix="PAYSYNC_API_GATEWAY_", extra="ignore")

    common: CommonSettings = Field(default_factory=CommonSettings)
    host: str = "127.0.0.1"
    port: int = 8005
    page_size: int = Field(default=50, ge=1, le=500)
    admin_token: SecretStr = Field(default=SecretStr(""), description="Enables /admin/v1 for its holder")
