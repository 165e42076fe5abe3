"""Settings every service shares; each service extends them with its own prefix."""

from __future__ import annotations

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class CommonSettings(BaseSettings):
    """Where the broker and database are, and how to log. Env prefix `PAYSYNC_`."""

    model_config = SettingsConfigDict(env_prefix="PAYSYNC_", extra="ignore")

    kafka_bootstrap: str = Field(
        default="127.0.0.1:9092",
        description="The Kafka brokers to connect to first (`host:port`, comma-separated)",
    )
    database_url: str = Field(
        default="postgresql+asyncpg://paysync:paysync@127.0.0.1:5432/paysync",
        description="SQLAlchemy URL of the database. `?ssl=` chooses TLS (`disable`, `prefer`: asyncpg's "
        "default, `require`, `verify-ca`, `verify-full`), and the plain asyncpg connections (LISTEN) follow "
        "it too. `make dev`, the tests and the benches reach the local cluster on loopback with "
        "`ssl=disable`",
    )
    database_ping_after_idle_seconds: float = Field(
        default=1.0,
        ge=0,
        description="A pooled database connection idle longer than this is pinged before use (0: always)",
    )
    log_level: str = Field(
        default="INFO", description="Lowest level logged (`DEBUG`, `INFO`, `WARNING`, `ERROR`)"
    )
    log_json: bool = Field(
        default=True, description="One JSON object per log line; false: lines for a terminal"
    )
    credentials_keys: SecretStr = Field(
        default=SecretStr(""),
        description="Comma-separated Fernet keys; the first encrypts, all decrypt (rotation)",
    )
    internal_token: SecretStr = Field(
        default=SecretStr(""),
        description="Shared secret of service-to-service calls (api-gateway to the notifier's live stream);"
        " services refuse their internal routes while it is empty",
    )
    phone_hash_key: SecretStr = Field(
        default=SecretStr(""),
        description="Keys the HMAC-SHA256 under which payers' M-Pesa numbers are stored and looked up "
        "(`payments.phone_hash`; the number itself is never stored); the same for every service, never "
        "changed without rehashing. Empty: payments cannot be registered or found by phone (503)",
    )
