"""A record that kept failing, parked on `<topic>.dlq` with why."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from paysync_core.contracts.common import Contract, UtcDatetime
from paysync_core.contracts.envelope import Base64Body


class DeadLetter(Contract):
    """The original record, where it was, and the error that stopped it after `attempts` tries."""

    schema_version: Literal[1] = 1
    source_topic: str
    partition: int
    offset: int
    key: Base64Body | None = None
    value: Base64Body
    error_type: str
    error: str = Field(max_length=2000)
    attempts: int = Field(ge=1)
    service: str
    failed_at: UtcDatetime
