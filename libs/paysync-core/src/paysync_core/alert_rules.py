"""A tenant's alert rules on status changes: deadlines per domain, a failure rate, dead letters.

Part of the tenant's alert settings (`AlertConfig` inherits these fields), so `/admin/v1` and
`paysync alerts config` validate them with the same words. The notifier evaluates them
(`paysync_notifier.rules`); these are only the thresholds.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

#: Longest deadline a domain's pending payments may be given (beyond it, nobody waits for a payment).
MAX_DEADLINE_SECONDS = 90 * 86400
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$")
_UNIT_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}
_DOMAIN = r"^[a-z][a-z0-9_]{0,62}$"


def parse_duration(value: Any) -> Any:
    """`"30m"`, `"3d"`, `"2h"`, `"90s"` or a number of seconds, as seconds; anything else is left to fail."""
    if isinstance(value, str):
        found = _DURATION.match(value)
        if not found:
            raise ValueError(f"not a duration: {value!r} (a number and s, m, h or d, e.g. '30m' or '3d')")
        return float(found.group(1)) * _UNIT_SECONDS[found.group(2)]
    return value


Duration = Annotated[float, BeforeValidator(parse_duration)]
Deadline = Annotated[Duration, Field(gt=0, le=MAX_DEADLINE_SECONDS)]
DomainName = Annotated[str, Field(pattern=_DOMAIN)]


class FailureRateRule(BaseModel):
    """Alert when at least `min_failed` of a gateway's last `of_last` outcomes within `window` failed."""

    model_config = ConfigDict(extra="forbid")
    min_failed: int = Field(default=5, ge=1, le=1000, description="Failed payments that open the alert")
    of_last: int = Field(
        default=20, ge=1, le=1000, description="Among this many latest outcomes (money moved, or never will)"
    )
    window_seconds: Annotated[Duration, Field(gt=0, le=7 * 86400)] = Field(
        default=3600.0, description="Only outcomes this recent count (a duration: '1h', '30m', seconds)"
    )

    @model_validator(mode="after")
    def _fits(self) -> FailureRateRule:
        if self.min_failed > self.of_last:
            raise ValueError(f"min_failed ({self.min_failed}) cannot exceed of_last ({self.of_last})")
        return self


class AlertRules(BaseModel):
    """The rules on status changes a tenant is alerted by (the notifier evaluates them periodically)."""

    pending_deadlines: dict[DomainName, Deadline] = Field(
        default_factory=dict,
        max_length=100,
        description="Per domain, how long a payment may stay unsettled (pending, requires_action, "
        "processing) since its status last changed (its registration, if it never did) before it is "
        "alerted, e.g. {'bookings': '30m', 'invoices': '3d'}",
    )
    failure_rate: FailureRateRule | None = Field(
        default_factory=FailureRateRule,
        description="Alert when too many of a gateway's recent payments failed; null: never",
    )
    dead_letters: bool = Field(
        default=True, description="Alert when a dead-letter topic holds a record of the tenant"
    )


def rules_of(config: dict[str, Any] | None) -> AlertRules:
    """The rules stored in a tenant's settings (as saved, in `alert_settings.config`); defaults if none."""
    if not config:
        return AlertRules()
    return AlertRules.model_validate({k: v for k, v in config.items() if k in AlertRules.model_fields})


def rules_view(rules: AlertRules) -> dict[str, Any]:
    """The rules as the API and the CLI show them."""
    return {
        "pending_deadlines": dict(rules.pending_deadlines),
        "failure_rate": rules.failure_rate.model_dump() if rules.failure_rate else None,
        "dead_letters": rules.dead_letters,
    }
