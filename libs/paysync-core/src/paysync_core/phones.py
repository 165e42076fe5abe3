"""Payers' phone numbers: normalised, keyed-hashed for lookups, masked for logs; never stored in clear.

A lookup by phone matches `payments.phone_hash`, an HMAC-SHA256 under `PAYSYNC_PHONE_HASH_KEY` of
the tenant and the number's E.164 digits. Keyed, so a leaked table cannot be reversed by hashing
every Kenyan number (there are only about 10^9); per tenant, so equal numbers do not link tenants.
"""

from __future__ import annotations

import hashlib
import hmac
import re

from paysync_core.errors import PaysyncError

__all__ = [
    "PhoneLookupOff",
    "looks_like_msisdn",
    "mask_phone",
    "normalize_msisdn",
    "phone_digits",
    "phone_hash",
]

_KENYAN_MSISDN = re.compile(r"254[17][0-9]{8}")

#: A Kenyan mobile number written whole (with or without `+`), as it might hide in free-form metadata.
_WHOLE_MSISDN = re.compile(r"\+?254[17][0-9]{8}|0[17][0-9]{8}")


class PhoneLookupOff(PaysyncError):
    """No `PAYSYNC_PHONE_HASH_KEY`: phones can be neither stored (as a hash) nor looked up."""

    code = "phone_lookup_disabled"


def mask_phone(value: object) -> str | None:
    """A phone number with its middle hidden (`254***149`); never the full number."""
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        return None
    digits = "".join(ch for ch in str(value) if ch.isascii() and ch.isdigit())
    if not digits:
        return None
    return f"{digits[:3]}***{digits[-3:]}" if len(digits) >= 7 else "***"


def normalize_msisdn(phone: str) -> str:
    """A Kenyan mobile number as Daraja wants it (2547XXXXXXXX / 2541XXXXXXXX); ValueError if not one."""
    digits = "".join(ch for ch in phone if ch.isascii() and ch.isdigit())
    if len(digits) == 10 and digits.startswith("0"):
        digits = "254" + digits[1:]
    elif len(digits) == 9 and digits[0] in "17":
        digits = "254" + digits
    if not _KENYAN_MSISDN.fullmatch(digits):
        raise ValueError(f"not a Kenyan mobile number: {mask_phone(phone) or '***'}")
    return digits


def phone_digits(phone: str) -> str:
    """The number's E.164 digits (`+254712345678`, `0712345678` → `254712345678`); ValueError if it
    is not a Kenyan mobile number (the message shows only a masked form)."""
    return normalize_msisdn(phone)


def phone_hash(key: str, tenant: str, phone: str) -> str:
    """The lookup hash of a tenant's payer number; PhoneLookupOff without a key, ValueError for a
    number that is not one."""
    if not key:
        raise PhoneLookupOff("phone lookups are off: PAYSYNC_PHONE_HASH_KEY is not set")
    message = f"{tenant}\x00{phone_digits(phone)}".encode()
    return hmac.new(key.encode(), message, hashlib.sha256).hexdigest()


def looks_like_msisdn(value: str) -> bool:
    """Whether a text is a whole mobile number (so it must not be stored as it is)."""
    return _WHOLE_MSISDN.fullmatch(value.strip().replace(" ", "")) is not None
