"""How apps find payments beyond status and reference: by creation or update time, and by the M-Pesa
payer's phone number (matched on its keyed hash: the number is never stored, nor logged)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any

from fastapi import Depends, Query
from pydantic import AwareDatetime

from paysync_api_gateway.deps import Settings
from paysync_api_gateway.inputs import InvalidInput
from paysync_core.phones import looks_like_msisdn, mask_phone, phone_hash

_PHONE = "The M-Pesa payer's number (`+2547…`, `2547…` or `07…`), matched on its keyed hash"
#: Metadata keys that would hold a phone number in clear.
_PHONE_KEYS = ("phone", "msisdn", "mobile")
_NOT_IN_METADATA = "phone numbers are not kept in metadata; send `phone`"


def _when(what: str) -> Any:
    return Query(description=f"{what} (an ISO 8601 time with a zone)")


@dataclass(frozen=True)
class PaymentLookup:
    """The lookups of `GET /v1/payments` besides its equality filters."""

    times: dict[str, datetime]
    phone: str | None

    def phone_hash(self, key: str, tenant: str) -> str | None:
        """The hash to match, None without a `phone`; InvalidInput for a number that is not one."""
        return None if self.phone is None else hashed_phone(key, tenant, self.phone, "phone")


async def payment_lookup(
    created_since: Annotated[AwareDatetime | None, _when("Registered at or after")] = None,
    created_until: Annotated[AwareDatetime | None, _when("Registered before")] = None,
    updated_since: Annotated[AwareDatetime | None, _when("Last changed at or after")] = None,
    phone: Annotated[str | None, Query(max_length=32, description=_PHONE)] = None,
) -> PaymentLookup:
    """The request's lookups; InvalidInput for a time range that ends before it starts."""
    if created_since and created_until and created_since >= created_until:
        problem = {"field": "created_until", "problem": "must be after created_since"}
        raise InvalidInput("the request is not valid", [problem])
    times = {"created_since": created_since, "created_until": created_until, "updated_since": updated_since}
    return PaymentLookup({name: value for name, value in times.items() if value is not None}, phone)


def hashed_phone(key: str, tenant: str, phone: str, field: str) -> str:
    """The keyed hash of a payer number; InvalidInput naming `field` (never the number) if it is not one."""
    try:
        return phone_hash(key, tenant, phone)
    except ValueError:
        problem = f"{mask_phone(phone) or '***'} is not a Kenyan mobile number (+2547…, 2541…, 07…)"
        raise InvalidInput("the request is not valid", [{"field": field, "problem": problem}]) from None


def refuse_phones_in_metadata(metadata: Any, field: str = "metadata") -> None:
    """InvalidInput when free-form metadata would keep a phone number in clear (send it as `phone`)."""
    problems = list(_phones(metadata, field))
    if problems:
        raise InvalidInput("the request is not valid", problems)


def _phones(value: Any, field: str) -> Iterator[dict[str, str]]:
    if isinstance(value, dict):
        for key, item in value.items():
            if any(word in str(key).lower() for word in _PHONE_KEYS):
                yield {"field": f"{field}.{key}", "problem": _NOT_IN_METADATA}
            else:
                yield from _phones(item, f"{field}.{key}")
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _phones(item, f"{field}.{i}")
    elif isinstance(value, str) and looks_like_msisdn(value):
        yield {"field": field, "problem": f"looks like a phone number: {_NOT_IN_METADATA}"}


async def phone_key(settings: Settings) -> str:
    """The key of payers' phone hashes (empty: phone lookups are off)."""
    return settings.common.phone_hash_key.get_secret_value()


PhoneKey = Annotated[str, Depends(phone_key)]
Lookup = Annotated[PaymentLookup, Depends(payment_lookup)]
