"""Settings of the status-change webhooks to tenants' endpoints (`PAYSYNC_NOTIFIER_HOOKS_*`)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

#: Seconds before each retry, after the first attempt: about three days in all (Svix's schedule, extended).
DEFAULT_RETRY_SCHEDULE = [
    5.0,
    300.0,
    1800.0,
    7200.0,
    18000.0,
    36000.0,
    36000.0,
    43200.0,
    43200.0,
    43200.0,
    28800.0,
]


class AppWebhookSettings(BaseSettings):
    """How the notifier delivers status changes to tenants' own endpoints: retries, leases, disabling."""

    model_config = SettingsConfigDict(env_prefix="PAYSYNC_NOTIFIER_", extra="ignore")

    hooks_enabled: bool = Field(
        default=True,
        description="Deliver status changes to tenants' webhook endpoints (needs PAYSYNC_CREDENTIALS_KEYS"
        " to open their signing secrets)",
    )
    hooks_retry_schedule: list[float] = Field(
        default_factory=lambda: list(DEFAULT_RETRY_SCHEDULE),
        min_length=0,
        description="Seconds to wait before each retry of a failed delivery (JSON list); after the last"
        " the delivery is given up (`failed`, redeliverable). The default spans about three days",
    )
    hooks_jitter: float = Field(
        default=0.2, ge=0, le=1, description="Each retry delay is moved by up to this fraction, at random"
    )
    hooks_max_retry_after_seconds: float = Field(
        default=3600.0,
        gt=0,
        description="A receiver's `Retry-After` (on 429 or 503) is honoured up to this many seconds",
    )
    hooks_timeout_seconds: float = Field(
        default=15.0, gt=0, description="One delivery attempt fails if the endpoint has not answered by then"
    )
    hooks_concurrency: int = Field(
        default=20, ge=1, description="Deliveries one notifier replica has in flight at once"
    )
    hooks_lease_seconds: float = Field(
        default=60.0,
        gt=0,
        description="How long a replica holds a claimed delivery; past it (the replica died) another may"
        " send it again. Keep it above the attempt timeout",
    )
    hooks_poll_seconds: float = Field(
        default=1.0, gt=0, description="How often the dispatcher looks for deliveries that became due"
    )
    hooks_disable_after_seconds: float = Field(
        default=3 * 24 * 3600.0,
        gt=0,
        description="An endpoint that has failed every attempt for this long is disabled, and its tenant's"
        " admins get a `webhook_endpoint_disabled` alert",
    )
    hooks_disable_after_failures: int = Field(
        default=0,
        ge=0,
        description="Also disable an endpoint after this many failed attempts in a row (0: only by time)",
    )
    hooks_keep_days: float = Field(
        default=30.0,
        ge=0,
        description="Delivered and given-up deliveries (with their attempt log) are deleted this many days"
        " after they settled; until then they can be redelivered",
    )
    hooks_prune_every_seconds: float = Field(
        default=300.0,
        gt=0,
        description="How often each replica deletes settled deliveries past their keep time",
    )
    hooks_offset_reset: Literal["earliest", "latest"] = Field(
        default="earliest",
        description="Where the shared consumer group of status changes starts when it has no offset yet",
    )
