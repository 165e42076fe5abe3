"""status-projector's settings; env prefix `PAYSYNC_STATUS_PROJECTOR_` (shared ones: `PAYSYNC_`)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from paysync_core.domains import BUILTIN_DOMAINS
from paysync_core.settings import CommonSettings


class StatusProjectorSettings(BaseSettings):
    """Consumer group, batch sizes, the relay's pace and where the domain mapping lives."""

    model_config = SettingsConfigDict(env_prefix="PAYSYNC_STATUS_PROJECTOR_", extra="ignore")

    common: CommonSettings = Field(default_factory=CommonSettings)
    host: str = "127.0.0.1"
    port: int = 8003
    group_id: str = Field(
        default="paysync-status-projector",
        description="Consumer group on the observations topic (`paysync replay` waits on it: give it the "
        "same `PAYSYNC_REPLAY_PROJECTOR_GROUP_ID`)",
    )
    group_instance_id: str | None = Field(
        default=None,
        description="Static group membership (e.g. the pod name): a restart keeps its partitions",
    )
    session_timeout_ms: int = Field(
        default=10_000,
        description="A replica the group coordinator has not heard from this long loses its partitions",
    )
    heartbeat_interval_ms: int = Field(
        default=3_000, description="How often the consumer tells the coordinator it lives"
    )
    auto_offset_reset: Literal["earliest", "latest"] = Field(
        default="earliest", description="Where the group starts on a partition it has committed nothing on"
    )
    max_batch: int = Field(default=1000, description="Observations applied in one transaction, at most")
    batch_timeout_ms: int = Field(default=20, description="How long an empty consumer waits for records")
    batch_top_up_ms: int = Field(
        default=10,
        description="How long a batch waits for the broker's newest records, beside the prefetched (0: not)",
    )
    pipeline: bool = Field(
        default=True,
        description="Decode the next batch while the current one is applied (false: one batch at a time)",
    )
    max_attempts: int = Field(
        default=3,
        description="Tries of an observation that fails for its own reason before it is dead-lettered",
    )
    relay_batch: int = Field(default=500, description="Outbox rows the relay publishes per round, at most")
    relay_poll_seconds: float = Field(default=0.5, description="Fallback when no NOTIFY arrives")
    outbox_keep_hours: float = Field(
        default=24.0, description="Published outbox events are deleted after this"
    )
    unpark_poll_seconds: float = Field(
        default=5.0,
        description="Fallback of the unpark loop: a registration (NOTIFY) or an alias this replica binds "
        "that a parked observation names wakes it at once",
    )
    drift_check_seconds: float = Field(
        default=300.0, description="How often domain rows are checked against payments (full scans)"
    )
    domains_file: Path = Field(default=BUILTIN_DOMAINS, description="The domain mapping (TOML)")
    extra_domains_files: list[Path] = Field(
        default_factory=list, description="More mapping files: your own domains, beside the built-in ones"
    )
