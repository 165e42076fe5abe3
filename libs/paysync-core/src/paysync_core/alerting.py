"""A tenant's alert settings: who is told about sync issues, on which channels, about which kinds.

One model for every writer (`/admin/v1/tenants/{id}/alert-settings`, `paysync alerts config`) so
both refuse the same bad input with the same words. Chat URLs carry their own secret (a Slack
incoming-webhook URL is a credential), so they are shown and logged only as a host and a
fingerprint (`target_name`), never in full.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Annotated, Literal, get_args
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, SecretStr

from paysync_core.alert_rules import AlertRules, rules_view
from paysync_core.app_webhooks import check_secret
from paysync_core.contracts import AlertKind

MAX_TARGETS = 20
#: Older secrets a signed webhook may keep signing with during a rotation.
MAX_PREVIOUS_SECRETS = 4
LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})
# Deliberately plain: one @, no spaces or line breaks (a header-injection guard), a dot in the domain.
_EMAIL = re.compile(r"^[^@\s,;<>]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251})\.[A-Za-z]{2,63}$")

Channel = Literal["email", "slack", "webhook"]
#: A delivery's status: waiting (pending), claimed by a sender under a lease (sending), sent, given up
#: with its reason (dead), or not sent because its issue was resolved before its first try (skipped).
DeliveryStatus = Literal["pending", "sending", "sent", "dead", "skipped"]
DELIVERY_STATUSES: tuple[str, ...] = get_args(DeliveryStatus)


def _email(value: str) -> str:
    if not _EMAIL.match(value):
        raise ValueError(f"not an email address: {value!r}")
    return value


def _chat_url(value: str) -> str:
    """https only, except to this machine (a local receiver in development and tests)."""
    try:
        parts = urlsplit(value)
    except ValueError:
        raise ValueError("not a URL") from None
    host = parts.hostname or ""
    if not host:
        raise ValueError("not a URL with a host")
    if parts.scheme != "https" and not (parts.scheme == "http" and host in LOCAL_HOSTS):
        raise ValueError("must be an https URL (plain http only to localhost)")
    return value


def _kind(value: str) -> str:
    known = {kind.value for kind in AlertKind}
    if value not in known:
        raise ValueError(f"unknown alert kind {value!r}; known: {', '.join(sorted(known))}")
    return value


Email = Annotated[str, Field(max_length=254), AfterValidator(_email)]
ChatUrl = Annotated[str, Field(max_length=2000), AfterValidator(_chat_url)]
Kind = Annotated[str, AfterValidator(_kind)]


def _secret(value: SecretStr) -> SecretStr:
    check_secret(value.get_secret_value())
    return value


#: A signing secret in the Standard Webhooks form: `whsec_` and the base64 of random bytes.
WebhookSecret = Annotated[SecretStr, Field(max_length=400), AfterValidator(_secret)]


def target_name(url: str) -> str:
    """How a chat URL is shown and logged: its host and a fingerprint, never its path or query."""
    digest = hashlib.sha256(url.encode()).hexdigest()[:10]
    return f"{urlsplit(url).hostname}[sha256:{digest}]"


class SignedWebhook(BaseModel):
    """A generic JSON webhook signed the Standard Webhooks way (`webhook-id`, `webhook-timestamp`,
    `webhook-signature`: HMAC-SHA256 under `secret` and each of `previous_secrets`)."""

    model_config = ConfigDict(extra="forbid")
    url: ChatUrl
    secret: WebhookSecret = Field(description="whsec_ and base64 of 32 random bytes; the receiver has it")
    previous_secrets: list[WebhookSecret] = Field(
        default_factory=list,
        max_length=MAX_PREVIOUS_SECRETS,
        description="Secrets that still sign too during a rotation, until the receiver checks `secret`",
    )

    def signing_secrets(self) -> tuple[str, ...]:
        """Every secret a message is signed with: the current one first."""
        return tuple(s.get_secret_value() for s in (self.secret, *self.previous_secrets))

    def stored(self) -> dict[str, object]:
        """The webhook with its secrets as values: how it is kept (encrypted) and written back."""
        current, *previous = self.signing_secrets()
        return {"url": self.url, "secret": current, "previous_secrets": previous}


class AlertConfig(AlertRules):
    """A tenant's alert settings as written (PUT / `paysync alerts config`): the whole set, replaced.

    With the rules on status changes it inherits (`alert_rules.py`): deadlines, failure rate, dead letters.
    """

    model_config = ConfigDict(extra="forbid")
    emails: list[Email] = Field(default_factory=list, max_length=MAX_TARGETS)
    slack_urls: list[ChatUrl] = Field(
        default_factory=list, max_length=MAX_TARGETS, description="Slack-compatible incoming webhooks"
    )
    webhooks: list[SignedWebhook] = Field(default_factory=list, max_length=MAX_TARGETS)
    kinds: list[Kind] | None = Field(default=None, description="Kinds to alert about; null: every kind")
    reminder_after_seconds: float | None = Field(
        default=3600.0, gt=0, le=30 * 86400, description="One reminder while an issue stays open this long"
    )
    quiet_seconds: float = Field(
        default=0.0,
        ge=0,
        le=86400,
        description="Tell only about issues still open this long after the alert (0: at once)",
    )


@dataclass(frozen=True)
class Target:
    """Where one message goes: a channel, the name the log shows, and how to reach it."""

    channel: Channel
    recipient: str  # an email address, or `target_name(url)`
    address: str  # the email address or the full URL
    secrets: tuple[str, ...] = ()  # a signed webhook's signing secrets


def targets_of(config: AlertConfig) -> list[Target]:
    """Every target of the settings, in a stable order."""
    found = [Target("email", email, email) for email in config.emails]
    found += [Target("slack", target_name(url), url) for url in config.slack_urls]
    found += [
        Target("webhook", target_name(hook.url), hook.url, hook.signing_secrets()) for hook in config.webhooks
    ]
    return found


def wants(config: AlertConfig, kind: str) -> bool:
    """Whether the tenant is told about alerts of `kind`."""
    return config.kinds is None or kind in config.kinds


def public_view(tenant: str, config: AlertConfig) -> dict[str, object]:
    """The settings as they may be shown: chat targets by name only, no URL, no secret."""
    return {
        "tenant": tenant,
        "emails": list(config.emails),
        "slack": [target_name(url) for url in config.slack_urls],
        "webhooks": [target_name(hook.url) for hook in config.webhooks],
        "kinds": config.kinds,
        "reminder_after_seconds": config.reminder_after_seconds,
        "quiet_seconds": config.quiet_seconds,
        **rules_view(config),
    }
