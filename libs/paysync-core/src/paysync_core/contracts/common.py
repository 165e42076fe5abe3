"""Types shared by every wire contract."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Self

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field


def _require_utc(value: datetime) -> datetime:
    if value.tzinfo is UTC:
        return value  # already what astimezone would give (the adapters' and envelopes' own times)
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("timestamps must be timezone-aware")
    return value.astimezone(UTC)


#: A timezone-aware timestamp, normalised to UTC.
UtcDatetime = Annotated[datetime, AfterValidator(_require_utc)]

#: A tenant's slug: lower-case letters, digits and dashes.
TenantId = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9-]{0,62}$")]


def _upper_case(value: object) -> object:
    return value.upper() if isinstance(value, str) and value.isascii() else value


#: An ISO 4217 currency code, stored upper case; lower case (`usd`, as Stripe writes it) is accepted.
Currency = Annotated[str, BeforeValidator(_upper_case), Field(pattern=r"^[A-Z]{3}$")]


class Contract(BaseModel):
    """Base of every wire message: immutable, and tolerant of fields added by newer producers."""

    model_config = ConfigDict(frozen=True, extra="ignore", populate_by_name=True)

    def to_bytes(self) -> bytes:
        """The message as UTF-8 JSON, the form it takes on a topic."""
        return self.model_dump_json(exclude_none=True).encode()

    @classmethod
    def from_bytes(cls, raw: bytes) -> Self:
        """Parse a message from a topic; raises pydantic.ValidationError on a bad one."""
        # What model_validate_json does with no options, without its wrapper: once per record consumed.
        return cls.__pydantic_validator__.validate_json(raw)


class Provider(StrEnum):
    """A payment gateway paysync understands."""

    STRIPE = "stripe"
    PAYSTACK = "paystack"
    MPESA = "mpesa"

    @property
    def display_name(self) -> str:
        """The gateway's name as people write it (not `title`: that is `str.title()` on a str enum)."""
        return {"stripe": "Stripe", "paystack": "Paystack", "mpesa": "M-Pesa"}[self.value]


class ObservationSource(StrEnum):
    """Where an observation came from."""

    WEBHOOK = "webhook"
    RECONCILE = "reconcile"
    MANUAL = "manual"
    REPLAY = "replay"
    #: An operator set the status by hand (`paysync payments override`, `/admin/v1`).
    OVERRIDE = "override"


class Verdict(StrEnum):
    """What webhook-ingest concluded about a request's authenticity."""

    VERIFIED = "verified"
    UNVERIFIABLE = "unverifiable"  # authenticated by URL token, content unsigned (M-Pesa)
    INVALID = "invalid"


class EntityRef(Contract):
    """The domain row a payment pays for."""

    domain: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,62}$")]
    entity_id: Annotated[str, Field(min_length=1, max_length=200)]


def payment_key(tenant: str, provider: Provider | str, provider_ref: str) -> str:
    """The Kafka key of every record about one payment reference."""
    return f"{tenant}:{Provider(provider).value}:{provider_ref}"
