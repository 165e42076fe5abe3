"""The CLI's own settings (env prefix `PAYSYNC_REPLAY_`); broker and database: `CommonSettings`."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from paysync_core.domains import BUILTIN_DOMAINS


class ReplaySettings(BaseSettings):
    """How `paysync replay` paces itself and how much it reports. Env prefix `PAYSYNC_REPLAY_`."""

    model_config = SettingsConfigDict(env_prefix="PAYSYNC_REPLAY_", extra="ignore")

    batch_records: int = Field(
        default=5000,
        ge=1,
        le=100_000,
        description="Records read, looked up (one query per table) and published per step; memory grows"
        " with it, not with the number of records replayed",
    )
    first_step_records: int = Field(
        default=1000,
        ge=1,
        le=100_000,
        description="Records in a real replay's first step, each next step twice as many up to"
        " PAYSYNC_REPLAY_BATCH_RECORDS: the status-projector has observations to apply once this many are"
        " read and published, not a whole step's (its own batch is PAYSYNC_STATUS_PROJECTOR_MAX_BATCH,"
        " 1,000 by default)",
    )
    batches_ahead: int = Field(
        default=4,
        ge=1,
        le=64,
        description="Steps a real replay has published and not yet seen applied while it reads and publishes"
        " the next: the status-projector applies those meanwhile, and has work while a step takes the"
        " replay longer than one takes the projector (1: one step ahead). Memory grows with it by a"
        " step's observation keys",
    )
    apply_timeout_seconds: float = Field(
        default=600.0,
        gt=0,
        description="How long a real replay waits for the status-projector to apply one step's observations"
        " (at the end: the parked ones an alias the replay binds matches) before it stops with an error (is"
        " the projector running?)",
    )
    database_outage_seconds: float = Field(
        default=300.0,
        gt=0,
        description="How long a replay (real or dry run) keeps trying a database that does not answer (a"
        " restart, a failover, a dropped connection), from its first failed try, before it stops with an"
        " error saying what it had done (running it again is safe): it tries again after 0.1 s, doubling up"
        " to 2 s, and says so on stderr. Any other database error stops it at once",
    )
    projector_group_id: str = Field(
        default="paysync-status-projector",
        min_length=1,
        description="The status-projector's consumer group (its PAYSYNC_STATUS_PROJECTOR_GROUP_ID): a real"
        " replay waits until it has committed past each step's observations, then reads the database once"
        " (what is missing then was dead-lettered: the replay stops with an error)",
    )
    niceness: int = Field(
        default=10,
        ge=0,
        le=19,
        description="The replay's scheduling priority (Unix nice: 0 as the services, 19 the lowest; its"
        " worker processes inherit it): on a host it shares with the live services (the status-projector"
        " applying what it publishes, webhook-ingest taking webhooks), they get the cores first and the"
        " replay what they leave; alone on its host it runs as fast at any value. A process started at a"
        " higher value keeps it. PostgreSQL's sessions serving the replay are the server's and keep theirs",
    )
    report_limit: int = Field(
        default=10_000,
        ge=0,
        description="Changed payments listed one by one (table and --json); past it only counted",
    )
    workers: int = Field(
        default=0,
        ge=0,
        le=64,
        description="Processes a dry run parses and folds records in, each reading its share of the"
        " partitions (0: one per CPU core this process may use; 1: this process only)",
    )
    parallel_from_records: int = Field(
        default=50_000,
        ge=0,
        description="A dry run of fewer records stays in one process: starting a worker costs about a"
        " second of CPU",
    )
    gc_young_objects: int = Field(
        default=100_000,
        ge=0,
        description="Allocations between two young-generation garbage collections in a replay's processes"
        " (Python's default: 700; 0 keeps it). Its garbage is nearly all freed by reference counting, and"
        " each collection walks the batch of records in flight (about 8 objects a record, 40,000 at the"
        " default batch): at 700 about a tenth of a dry run's CPU went to them, at 20,000 about 7%",
    )
    domains_file: Path = Field(
        default=BUILTIN_DOMAINS,
        description="The domain mapping the report's domain rows are computed with: the same file as the"
        " status-projector's PAYSYNC_STATUS_PROJECTOR_DOMAINS_FILE",
    )
    extra_domains_files: list[Path] = Field(
        default_factory=list,
        description="More mapping files: the same as the status-projector's"
        " PAYSYNC_STATUS_PROJECTOR_EXTRA_DOMAINS_FILES",
    )
