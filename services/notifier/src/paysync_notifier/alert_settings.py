"""How the notifier delivers admin alerts: the SMTP server, links, digests, leases and retries.

Env prefix `PAYSYNC_NOTIFIER_` (as the notifier's other settings). Who is told about what is per
tenant, in the database (`alert_settings`: `paysync alerts config`, `/admin/v1`), not here.
"""

from __future__ import annotations

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class AlertDeliverySettings(BaseSettings):
    """The SMTP server and the rules of alert delivery shared by every tenant."""

    model_config = SettingsConfigDict(env_prefix="PAYSYNC_NOTIFIER_", extra="ignore")

    smtp_host: str = Field(default="127.0.0.1", description="SMTP server alert emails are sent through")
    smtp_port: int = Field(default=25, ge=1, le=65535, description="Its port (587 for STARTTLS, 465 for TLS)")
    smtp_starttls: bool = Field(default=False, description="Upgrade the connection with STARTTLS (port 587)")
    smtp_tls: bool = Field(default=False, description="Implicit TLS from the first byte (port 465)")
    smtp_ca_file: str = Field(
        default="",
        description="PEM file of the CA certificates the SMTP server's certificate may be signed by (a "
        "private CA); empty: the system's trust store. The server's name must match its certificate",
    )
    smtp_username: str = Field(default="", description="SMTP login; empty: no authentication")
    smtp_password: SecretStr = Field(default=SecretStr(""), description="SMTP password (never logged)")
    smtp_from: str = Field(default="paysync <alerts@localhost>", description="From address of alert emails")
    smtp_timeout_seconds: float = Field(default=20.0, gt=0, description="One SMTP conversation's time limit")
    console_url: str = Field(
        default="http://127.0.0.1:8005",
        description="Base URL of links in alerts: a payment is linked as <console_url>/v1/payments/<id>",
    )
    webhook_timeout_seconds: float = Field(
        default=10.0, gt=0, description="One chat webhook POST's time limit"
    )
    alerts_poll_seconds: float = Field(
        default=1.0,
        gt=0,
        description="How often a replica looks for due alert messages (an alert also wakes it)",
    )
    alerts_digest_window_seconds: float = Field(
        default=10.0,
        ge=0,
        description="A new alert waits this long for others to the same target: a burst becomes one digest",
    )
    alerts_digest_max: int = Field(default=500, ge=1, description="Most alerts listed in one digest message")
    alerts_lease_seconds: float = Field(
        default=120.0,
        gt=0,
        description="A claimed message not reported sent by then is retried by any replica (crashed sender)",
    )
    alerts_max_attempts: int = Field(
        default=8,
        ge=1,
        description="Tries of one message before it is dead-lettered (status dead, with the reason)",
    )
    alerts_retry_base_seconds: float = Field(
        default=5.0, gt=0, description="First retry delay; doubled each attempt (a Retry-After answer wins)"
    )
    alerts_retry_max_seconds: float = Field(
        default=900.0, gt=0, description="Longest delay between two tries"
    )
    alert_rules_enabled: bool = Field(
        default=True,
        description="Evaluate the rules on status changes in this replica (one replica at a time does; "
        "off: leave them to the other replicas)",
    )
    alert_rules_seconds: float = Field(
        default=30.0,
        gt=0,
        description="How often the rules on status changes (deadlines per domain, failure rates, dead "
        "letters) are evaluated; one replica at a time evaluates",
    )
    alert_rules_dead_letter_seconds: float = Field(
        default=60.0,
        gt=0,
        description="How often the dead-letter rule reads the dead-letter topics (each read takes only "
        "the letters written since the last one)",
    )
