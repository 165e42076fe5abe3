"""Status-change webhooks to tenants' own endpoints, as the Standard Webhooks specification has them.

The rules every writer shares: what an endpoint may be (https, or http on the local machine), how
signing secrets look (`whsec_` + base64 of 32 random bytes) and rotate, and how a message is
signed (`v1,` + base64 HMAC-SHA256 of `{webhook-id}.{webhook-timestamp}.{body}`, one signature per
valid secret), so receivers verify with the `standardwebhooks` or Svix libraries. The notifier's
signed alert webhooks use the same secrets and signing.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import uuid
from datetime import datetime, timedelta
from typing import Annotated
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, TypeAdapter

from paysync_core.contracts import PaymentStatusChanged
from paysync_core.crypto import CredentialsCipher
from paysync_core.domain.status import UnifiedStatus

SECRET_PREFIX = "whsec_"  # noqa: S105 - the prefix the spec gives secrets, not a secret
#: The `type` of every event body sent.
EVENT_TYPE = "payment.status_changed"
#: Hosts an endpoint may be reached at over plain http: tests and the demo, never a real receiver.
LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "[::1]", "::1"})
_NAMESPACE = uuid.UUID("5e7d0f1c-7061-7973-796e-632d686f6f6b")


def _endpoint_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ValueError("must be an absolute https:// URL")
    if parts.scheme == "http" and parts.hostname not in LOCAL_HOSTS:
        raise ValueError("must use https (plain http only for localhost or 127.0.0.1)")
    if parts.username or parts.password:
        raise ValueError("must not carry credentials; the signature authenticates each request")
    if parts.fragment:
        raise ValueError("must not have a #fragment")
    return value


#: An endpoint's URL: https, or http on this machine (tests, the demo).
EndpointUrl = Annotated[str, Field(min_length=8, max_length=2000), AfterValidator(_endpoint_url)]
_DOMAIN = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_-]{0,62}$")]


class EndpointSpec(BaseModel):
    """An endpoint to register: where, which status changes (empty lists: all), and what it is for."""

    model_config = ConfigDict(extra="forbid")
    url: EndpointUrl
    description: str = Field(default="", max_length=500)
    domains: list[_DOMAIN] = Field(default_factory=list, max_length=50, description="Empty: every domain")
    statuses: list[UnifiedStatus] = Field(
        default_factory=list, max_length=20, description="New statuses (event kinds) wanted; empty: all"
    )


class SigningSecret(BaseModel):
    """One signing secret and when it stops being used (None: the current one)."""

    secret: str
    expires_at: datetime | None = None

    def valid_at(self, when: datetime) -> bool:
        """Whether it still signs at `when`."""
        return self.expires_at is None or self.expires_at > when


_SECRETS = TypeAdapter(list[SigningSecret])
#: Bytes a secret's key may hold: the spec generates 24 to 64; 16 (128 bits) is the least we accept.
SECRET_BYTES = (16, 256)


def new_secret() -> str:
    """A fresh signing secret in the spec's form: `whsec_` and base64 of 32 random bytes."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def check_secret(value: str) -> str:
    """`value` if it is a secret in the spec's form (`whsec_` and base64 of 16 to 256 bytes); ValueError.

    The message never repeats the value: it is a secret even when malformed.
    """
    if not value.startswith(SECRET_PREFIX):
        raise ValueError("must be a Standard Webhooks secret: whsec_ and the base64 of random bytes")
    try:
        key = base64.b64decode(value.removeprefix(SECRET_PREFIX), validate=True)
    except ValueError:
        raise ValueError("must be whsec_ and then base64 (A-Z a-z 0-9 + / =)") from None
    least, most = SECRET_BYTES
    if not least <= len(key) <= most:
        raise ValueError(f"must hold {least} to {most} bytes of key (32 recommended), not {len(key)}")
    return value


def seal_secrets(cipher: CredentialsCipher, keys: list[SigningSecret]) -> bytes:
    """The stored (encrypted) form of an endpoint's secrets."""
    return cipher.seal(_SECRETS.dump_json(keys))


def open_secrets(cipher: CredentialsCipher, token: bytes) -> list[SigningSecret]:
    """An endpoint's secrets from their stored form."""
    return _SECRETS.validate_json(cipher.unseal(token))


def rotated(keys: list[SigningSecret], fresh: str, now: datetime, overlap: timedelta) -> list[SigningSecret]:
    """`fresh` becomes current; the others still valid sign until `now + overlap` (or earlier if sooner)."""
    until = now + overlap
    kept = [
        SigningSecret(secret=k.secret, expires_at=min(k.expires_at or until, until))
        for k in keys
        if k.valid_at(now) and until > now
    ]
    return [SigningSecret(secret=fresh), *kept]


def signature(secret: str, webhook_id: str, timestamp: int, body: bytes) -> str:
    """`v1,<base64 HMAC-SHA256>` of `{id}.{timestamp}.{body}` under one secret."""
    key = base64.b64decode(secret.removeprefix(SECRET_PREFIX))
    signed = f"{webhook_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


def signature_header(keys: list[SigningSecret], webhook_id: str, at: datetime, body: bytes) -> dict[str, str]:
    """The three Standard Webhooks headers for `body` sent at `at`, signed by every secret valid then."""
    timestamp = int(at.timestamp())
    signatures = " ".join(signature(k.secret, webhook_id, timestamp, body) for k in keys if k.valid_at(at))
    return {"webhook-id": webhook_id, "webhook-timestamp": str(timestamp), "webhook-signature": signatures}


def webhook_id_of(*parts: object) -> str:
    """A `webhook-id` named by `parts`: the same parts, the same id, so receivers dedupe retries by it."""
    return "msg_" + uuid.uuid5(_NAMESPACE, "|".join(str(part) for part in parts)).hex


def webhook_id_for(endpoint_id: int, event_id: str) -> str:
    """The `webhook-id` of one event sent to one endpoint: stable, so receivers dedupe retries by it."""
    return webhook_id_of(endpoint_id, event_id)


def event_body(change: PaymentStatusChanged) -> str:
    """The JSON body of a status change's event: `type`, `timestamp` and the change as `data`."""
    data = json.loads(change.model_dump_json(exclude_none=True))
    return json.dumps(
        {"type": EVENT_TYPE, "timestamp": change.changed_at.isoformat(), "data": data}, separators=(",", ":")
    )


def wants(domains: list[str], statuses: list[str], change: PaymentStatusChanged) -> bool:
    """Whether an endpoint with these filters (empty: all) wants this change."""
    if domains and change.domain not in domains:
        return False
    return not statuses or change.new_status.value in statuses
