"""notifier's settings; env prefix `PAYSYNC_NOTIFIER_` (shared ones: `PAYSYNC_`)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from paysync_core.settings import CommonSettings
from paysync_notifier.alert_settings import AlertDeliverySettings
from paysync_notifier.hooks_settings import AppWebhookSettings


class NotifierSettings(AppWebhookSettings, BaseSettings):
    """Where the notifier listens, how many recent events it keeps, and how far a stream may lag."""

    model_config = SettingsConfigDict(env_prefix="PAYSYNC_NOTIFIER_", extra="ignore")

    common: CommonSettings = Field(default_factory=CommonSettings)
    alerts: AlertDeliverySettings = Field(default_factory=AlertDeliverySettings)
    host: str = "127.0.0.1"
    port: int = 8004
    group_id: str = Field(
        default="paysync-notifier",
        description="Prefix of its consumer groups: `<id>-alerts`, `<id>-app-webhooks`",
    )
    resume_window_seconds: float = Field(
        default=600.0,
        gt=0,
        description="How far back (by the record's time) a live stream resumes with `Last-Event-ID`; older "
        "positions get `stream.resync`. Read back from Kafka on start",
    )
    resume_events_per_partition: int = Field(
        default=5000,
        ge=1,
        description="Status changes kept in memory per partition of paysync.payment-status.v1 for resuming "
        "(bounds memory; at high rates it shortens the window)",
    )
    heartbeat_seconds: float = Field(
        default=15.0,
        gt=0,
        description="An idle live stream is sent a comment this often, so proxies do not close it",
    )
    subscriber_queue: int = Field(
        default=1000,
        ge=1,
        description="Events a live stream may have waiting; past it the stream is cut off (told to resync)",
    )
    send_timeout_seconds: float = Field(
        default=30.0,
        gt=0,
        description="A live stream whose client takes longer than this to accept one event is closed",
    )
