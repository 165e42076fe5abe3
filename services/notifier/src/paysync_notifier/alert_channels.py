"""Sending one alert message: email over SMTP, Slack-compatible chat, a signed generic JSON webhook.

The generic webhook is signed the Standard Webhooks way, with the app webhooks' signing code
(`paysync_core.app_webhooks`): `webhook-id` names the message (the same on every retry of it),
`webhook-timestamp` the attempt, `webhook-signature` one `v1,` signature per secret of the target.
Slack-compatible chat is sent unsigned: Slack's incoming webhooks have no signature to check, the
URL itself is the credential.

A failed send raises `SendFailed` saying whether a retry may help (the server was down, answered
5xx or 429) and, for 429/503, how long the receiver asked us to wait. Errors name what failed, never
a URL (a chat webhook's URL is its secret) or a password.
"""

from __future__ import annotations

import json
import ssl
import time
from collections.abc import Iterable
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import make_msgid, parsedate_to_datetime
from typing import Any

import aiosmtplib
import httpx

from paysync_core.alerting import Target
from paysync_core.app_webhooks import SigningSecret, signature_header, webhook_id_of
from paysync_notifier.alert_messages import Message
from paysync_notifier.alert_settings import AlertDeliverySettings


class SendFailed(Exception):
    """A message that did not go out: `retryable` if trying again later may help."""

    def __init__(self, reason: str, *, retryable: bool, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retryable = retryable
        self.retry_after = retry_after


def message_id(delivery_ids: Iterable[int]) -> str:
    """The `webhook-id` of a message carrying these delivery-log rows: a retry of it has the same id."""
    return webhook_id_of("alerts", *sorted(delivery_ids))


def email_of(message: Message, sender: str, to: str) -> EmailMessage:
    """The email: plain text first, HTML as the alternative."""
    mail = EmailMessage()
    mail["Subject"] = message.subject
    mail["From"] = sender
    mail["To"] = to
    mail["Message-ID"] = make_msgid(domain="paysync")
    mail.set_content(message.text)
    mail.add_alternative(message.html, subtype="html")
    return mail


def _cause(exc: BaseException) -> str:
    """What stopped a connection, by type (a TLS failure wrapped in a connect error says so)."""
    inner = exc.__cause__ or exc.__context__
    if isinstance(inner, ssl.SSLError):
        return f"TLS failed: {inner.reason or type(inner).__name__}"
    return type(exc).__name__


def _retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header (seconds or an HTTP date); None if absent or unreadable."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


class AlertSender:
    """Sends a composed message to one target over its channel."""

    def __init__(self, settings: AlertDeliverySettings, http: httpx.AsyncClient) -> None:
        self._settings = settings
        self._http = http

    async def send(self, target: Target, message: Message, webhook_id: str) -> None:
        """Deliver, or raise `SendFailed`; `webhook_id` names the message to a signed webhook's receiver."""
        if target.channel == "email":
            await self._email(target.address, message)
        elif target.channel == "slack":
            await self._post(target, message.slack, {})
        else:
            await self._signed(target, message.payload, webhook_id)

    async def _email(self, to: str, message: Message) -> None:
        s = self._settings
        try:
            await aiosmtplib.send(
                email_of(message, s.smtp_from, to),
                hostname=s.smtp_host,
                port=s.smtp_port,
                username=s.smtp_username or None,
                password=s.smtp_password.get_secret_value() or None,
                use_tls=s.smtp_tls,
                start_tls=s.smtp_starttls,
                cert_bundle=s.smtp_ca_file or None,
                timeout=s.smtp_timeout_seconds,
            )
        except aiosmtplib.SMTPAuthenticationError as exc:
            # Our credentials, not the message: retried (an operator may fix them), then dead with this.
            reason = f"smtp login refused ({exc.code}): check PAYSYNC_NOTIFIER_SMTP_USERNAME and _PASSWORD"
            raise SendFailed(reason, retryable=True) from None
        except aiosmtplib.SMTPResponseException as exc:
            # 4xx is "try again later"; 5xx is a refusal that will not change by itself.
            raise SendFailed(f"smtp {exc.code}: {exc.message}"[:500], retryable=exc.code < 500) from None
        except ssl.SSLError as exc:
            # The handshake failed (an untrusted or mismatched certificate): fixable on either side.
            raise SendFailed(f"smtp TLS failed: {exc.reason or type(exc).__name__}", retryable=True) from None
        except (aiosmtplib.SMTPException, OSError) as exc:
            raise SendFailed(f"smtp unreachable: {_cause(exc)}", retryable=True) from None

    async def _signed(self, target: Target, payload: dict[str, Any], webhook_id: str) -> None:
        body = json.dumps(payload, separators=(",", ":"), default=str).encode()
        keys = [SigningSecret(secret=secret) for secret in target.secrets]
        await self._post(target, body, signature_header(keys, webhook_id, datetime.now(UTC), body))

    async def _post(self, target: Target, payload: dict[str, Any] | bytes, headers: dict[str, str]) -> None:
        body = payload if isinstance(payload, bytes) else json.dumps(payload, default=str).encode()
        try:
            answer = await self._http.post(
                target.address,
                content=body,
                headers={"Content-Type": "application/json", **headers},
                timeout=self._settings.webhook_timeout_seconds,
            )
        except httpx.HTTPError as exc:
            raise SendFailed(f"{target.channel} unreachable: {type(exc).__name__}", retryable=True) from None
        if answer.is_success:
            return
        code = answer.status_code
        retryable = code == 429 or code >= 500 or code == 408
        wait = _retry_after(answer.headers.get("retry-after"))
        raise SendFailed(f"{target.channel} answered {code}", retryable=retryable, retry_after=wait)
