"""Strict, typed reads of gateway JSON shared by the adapters.

Every surprise in a body becomes MalformedPayload with a short reason naming the field, so a
parser built from these helpers answers any byte string with a value or that one typed error.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, Literal, TypeVar, overload

import orjson
from pydantic import BaseModel, ValidationError

from paysync_core.contracts.common import EntityRef, Provider
from paysync_core.contracts.observation import DisputeFact, PaymentObservation
from paysync_core.domain.status import UnifiedStatus
from paysync_core.errors import MalformedPayload
from paysync_core.providers.base import ParseContext

JsonObject = dict[str, Any]
C = TypeVar("C", bound=BaseModel)

MAX_REF_LENGTH = 255
_MAX_UNIX_SECONDS = 253_402_300_799  # 9999-12-31T23:59:59Z, the last second datetime can hold
_CURRENCY = re.compile(r"[A-Za-z]{3}")
_DIGITS = re.compile(r"[0-9]{1,30}")


@dataclass(frozen=True, slots=True)
class Facts:
    """What one gateway object says about one payment, before it becomes an observation."""

    provider_ref: str
    status: UnifiedStatus | None
    aliases: tuple[str, ...] = ()
    amount_minor: int | None = None
    currency: str | None = None
    amount_refunded_minor: int | None = None
    dispute: DisputeFact | None = None
    metadata: JsonObject | None = None
    evidence: Mapping[str, str | None] = field(default_factory=dict)
    mode: Literal["test", "live"] | None = None  # where the gateway says (Stripe livemode, Paystack domain)


def load_object(body: bytes) -> JsonObject:
    """The body as a JSON object, or MalformedPayload."""
    if not isinstance(body, (bytes, bytearray, memoryview)):
        raise MalformedPayload("body_not_bytes")
    value = _fast_json(body)
    if value is _UNDECIDED:
        try:
            value = json.loads(bytes(body), parse_constant=_reject_constant)
        except (ValueError, RecursionError) as exc:  # decode errors are ValueErrors; deep nesting recurses
            raise MalformedPayload("invalid_json") from exc
    if not isinstance(value, dict):
        raise MalformedPayload("not_a_json_object")
    return value


_UNDECIDED = object()
# orjson reads an integer beyond 64 bits as a float, where the stdlib keeps it an int: a body with
# a run of 19 or more digits anywhere (in a string too, which is rare) is left to the stdlib. Found by
# mapping every digit to "0" and anything else to "." (a regex takes ten times as long).
_DIGITS_AS_ZERO = bytes(48 if 48 <= byte <= 57 else 46 for byte in range(256))
_LONG_DIGITS = b"0" * 19


def _fast_json(body: bytes | bytearray | memoryview) -> Any:
    """The body parsed by orjson (this runs once per webhook and per replayed record), or _UNDECIDED.

    Where orjson parses a body at all, it gives what `json.loads` gives, but for integers beyond 64
    bits (kept out by `_LONG_DIGITS`); everything orjson refuses (NaN, a lone surrogate, UTF-16, a
    byte order mark, deep nesting...) goes to the stdlib, which decides as it always did.
    """
    if _LONG_DIGITS in bytes(body).translate(_DIGITS_AS_ZERO):
        return _UNDECIDED
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        return _UNDECIDED


def _reject_constant(name: str) -> object:
    raise ValueError(f"non-standard JSON constant {name}")


# The overloads tell callers that a required read never gives None (it raises instead).
@overload
def get_object(parent: JsonObject, key: str, path: str, *, required: Literal[True] = True) -> JsonObject: ...
@overload
def get_object(parent: JsonObject, key: str, path: str, *, required: bool) -> JsonObject | None: ...
def get_object(parent: JsonObject, key: str, path: str, *, required: bool = True) -> JsonObject | None:
    """A nested object; None only when absent and not required."""
    value = parent.get(key)
    if value is None:
        if required:
            raise MalformedPayload(f"missing:{path}")
        return None
    if not isinstance(value, dict):
        raise MalformedPayload(f"type:{path}")
    return value


@overload
def get_str(
    parent: JsonObject, key: str, path: str, *, required: Literal[True] = True, max_length: int = ...
) -> str: ...
@overload
def get_str(
    parent: JsonObject, key: str, path: str, *, required: bool, max_length: int = ...
) -> str | None: ...
def get_str(
    parent: JsonObject, key: str, path: str, *, required: bool = True, max_length: int = MAX_REF_LENGTH
) -> str | None:
    """A non-empty string of bounded length; None only when absent and not required."""
    value = parent.get(key)
    if type(value) is str and 0 < len(value) <= max_length and value.isascii():
        return value  # most gateway text, checked in one line: this runs several times per webhook
    if value is None or value == "":
        if required:
            raise MalformedPayload(f"missing:{path}")
        return None
    if not isinstance(value, str):
        raise MalformedPayload(f"type:{path}")
    if len(value) > max_length:
        raise MalformedPayload(f"too_long:{path}")
    if not is_utf8(value):
        raise MalformedPayload(f"encoding:{path}")
    return value


def is_utf8(value: str) -> bool:
    """False for text with lone surrogates, which JSON allows but no topic message can carry."""
    if value.isascii():  # most gateway text: no encoding needed to know
        return True
    try:
        value.encode()
    except UnicodeEncodeError:
        return False
    return True


@overload
def get_id(parent: JsonObject, key: str, path: str, *, required: Literal[True] = True) -> str: ...
@overload
def get_id(parent: JsonObject, key: str, path: str, *, required: bool) -> str | None: ...
def get_id(parent: JsonObject, key: str, path: str, *, required: bool = True) -> str | None:
    """An identifier that gateways send as a string or an integer, as a string."""
    value = parent.get(key)
    if isinstance(value, int) and not isinstance(value, bool):
        if not 0 <= value < 10**30:
            raise MalformedPayload(f"value:{path}")
        return str(value)
    return get_str(parent, key, path, required=required)


def get_expandable(parent: JsonObject, key: str, path: str) -> str | None:
    """A Stripe-style expandable reference: an id string, or the expanded object's id."""
    value = parent.get(key)
    if isinstance(value, dict):
        return get_str(value, "id", f"{path}.id")
    return get_str(parent, key, path, required=False)


@overload
def get_amount(
    parent: JsonObject, key: str, path: str, *, required: Literal[True] = True, allow_digit_string: bool = ...
) -> int: ...
@overload
def get_amount(
    parent: JsonObject, key: str, path: str, *, required: bool, allow_digit_string: bool = ...
) -> int | None: ...
def get_amount(
    parent: JsonObject, key: str, path: str, *, required: bool = True, allow_digit_string: bool = False
) -> int | None:
    """A non-negative integer amount in minor units; Paystack sometimes sends digit strings."""
    value = parent.get(key)
    if value is None:
        if required:
            raise MalformedPayload(f"missing:{path}")
        return None
    if allow_digit_string and isinstance(value, str) and _DIGITS.fullmatch(value):
        return int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise MalformedPayload(f"type:{path}")
    if value < 0:
        raise MalformedPayload(f"negative:{path}")
    return value


def whole_units_to_minor(value: object, path: str, exponent: int = 2) -> int:
    """A decimal amount in major units (e.g. 150 or 1.00 KES) as integer minor units."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise MalformedPayload(f"type:{path}")
    if isinstance(value, str) and len(value) > 40:
        raise MalformedPayload(f"too_long:{path}")
    try:
        minor = Decimal(str(value)).scaleb(exponent)
    except InvalidOperation as exc:
        raise MalformedPayload(f"type:{path}") from exc
    if not minor.is_finite() or minor < 0 or minor != minor.to_integral_value():
        raise MalformedPayload(f"value:{path}")
    return int(minor)


@overload
def get_currency(parent: JsonObject, key: str, path: str, *, required: Literal[True] = True) -> str: ...
@overload
def get_currency(parent: JsonObject, key: str, path: str, *, required: bool) -> str | None: ...
def get_currency(parent: JsonObject, key: str, path: str, *, required: bool = True) -> str | None:
    """An ISO 4217 code, upper-cased (Stripe sends lower case)."""
    value = get_str(parent, key, path, required=required, max_length=3)
    if value is None:
        return None
    if not _CURRENCY.fullmatch(value):
        raise MalformedPayload(f"value:{path}")
    return value.upper()


def unix_time(value: object, path: str) -> datetime:
    """A Unix timestamp in seconds as an aware UTC datetime."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise MalformedPayload(f"type:{path}" if value is not None else f"missing:{path}")
    if not 0 <= value <= _MAX_UNIX_SECONDS:
        raise MalformedPayload(f"value:{path}")
    return datetime.fromtimestamp(value, tz=UTC)


def iso_time(value: object) -> datetime | None:
    """An ISO 8601 timestamp as UTC (naive ones are taken as UTC), or None if unreadable."""
    if not isinstance(value, str) or not 10 <= len(value) <= 40:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        parsed = parsed.replace(tzinfo=UTC)
    try:
        return parsed.astimezone(UTC)
    except OverflowError:  # e.g. 0001-01-01T00:00+01:00 has no UTC form
        return None


def first_time(parent: JsonObject, keys: Iterable[str], fallback: datetime) -> datetime:
    """The first readable ISO timestamp among `keys`, else `fallback`."""
    for key in keys:
        found = iso_time(parent.get(key))
        if found is not None:
            return found
    return fallback


def entity_from_metadata(metadata: JsonObject | None) -> EntityRef | None:
    """The paysync entity named in gateway metadata, if it names a valid one."""
    if not metadata:
        return None
    domain, entity_id = metadata.get("paysync_domain"), metadata.get("paysync_entity_id")
    if isinstance(entity_id, int) and not isinstance(entity_id, bool):
        entity_id = str(entity_id)
    if not isinstance(domain, str) or not isinstance(entity_id, str) or not is_utf8(entity_id):
        return None
    try:
        return EntityRef(domain=domain, entity_id=entity_id)
    except ValidationError:
        return None  # a tenant's bad metadata must not make the gateway's event unreadable


def sha256_hex(*parts: bytes | str) -> str:
    """Hex SHA-256 of the parts, each length-prefixed so boundaries cannot shift."""
    digest = hashlib.sha256()
    for part in parts:
        raw = part.encode() if isinstance(part, str) else part
        digest.update(len(raw).to_bytes(8, "big") + raw)
    return digest.hexdigest()


def build_observation(
    *,
    provider: Provider,
    observation_id: str,
    provider_time: datetime,
    facts: Facts,
    ctx: ParseContext,
    event_type: str,
    verified: bool,
    provider_event_id: str | None = None,
    mode: Literal["test", "live"] | None = None,
) -> PaymentObservation:
    """The observation for `facts`; a field the contract refuses becomes MalformedPayload.

    `provider_event_id` (the webhook event's id) joins the evidence and `mode` (the event's, where it
    says) stands for the facts' own: given here rather than by copying the facts per webhook.
    """
    # Evidence holds only str and int fields, so its __dict__ is its dump; the observation validates
    # the merged dict as its Evidence in the same call (one validation per observation, not two).
    given = ctx.evidence if isinstance(ctx.evidence, Mapping) else ctx.evidence.__dict__
    evidence = {k: v for k, v in given.items() if v is not None}
    evidence["event_type"] = event_type
    for name, value in facts.evidence.items():
        if value is not None:
            evidence[name] = value
    if provider_event_id is not None:
        evidence["provider_event_id"] = provider_event_id
    refs = facts.aliases
    aliases = tuple(dict.fromkeys(a for a in refs if a and a != facts.provider_ref)) if refs else ()
    try:  # model_validate's own validator, without its wrapper (once per webhook and replayed record)
        return _validate_observation(
            {
                "observation_id": observation_id,
                "tenant": ctx.tenant,
                "provider": provider,
                "provider_ref": facts.provider_ref,
                "aliases": aliases,
                "status": facts.status,
                "amount_minor": facts.amount_minor,
                "currency": facts.currency,
                "amount_refunded_minor": facts.amount_refunded_minor,
                "dispute": facts.dispute,
                "provider_time": provider_time,
                "source": ctx.source,
                "verified": verified,
                "entity": entity_from_metadata(facts.metadata),
                "evidence": evidence,
                "observed_at": ctx.observed_at,
                "mode": mode if mode is not None else facts.mode,
            }
        )
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ())) or "observation"
        raise MalformedPayload(f"invalid:{where}") from exc


_validate_observation = PaymentObservation.__pydantic_validator__.validate_python


def coerce_credentials(credentials: object, model: type[C]) -> C:
    """The typed credentials, from the model itself or a plain mapping of its fields."""
    if isinstance(credentials, model):
        return credentials
    if isinstance(credentials, Mapping):
        return model.model_validate(dict(credentials))
    raise TypeError(f"expected {model.__name__}, got {type(credentials).__name__}")


def header(headers: Mapping[str, str], name: str) -> str | None:
    """A request header by lower-case name, tolerating callers that kept the original case."""
    value = headers.get(name)
    if value is None:
        value = next((v for k, v in headers.items() if k.lower() == name), None)
    return value


def constant_time_equal(expected: str, candidate: str) -> bool:
    """Compare secrets without leaking where they differ; any text is accepted."""
    return hmac.compare_digest(expected.encode(), candidate.encode("utf-8", "surrogatepass"))


def ip_in_allowlist(remote_addr: str | None, allowed: Iterable[str]) -> bool:
    """True when no allowlist is set or `remote_addr` is in one of its addresses or networks."""
    networks = tuple(allowed)
    if not networks:
        return True
    address = _parse_ip(remote_addr)
    if address is None:
        return False
    for entry in networks:
        try:
            if address in ipaddress.ip_network(entry.strip(), strict=False):
                return True
        except ValueError:
            continue  # a bad entry in the tenant's list allows nothing
    return False


def _parse_ip(value: str | None) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    if not value:
        return None
    try:
        address = ipaddress.ip_address(value.strip())
    except ValueError:
        return None
    # Dual-stack servers report IPv4 peers as ::ffff:a.b.c.d; allowlists name the IPv4 form.
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address
