"""What an alert message says: one alert, or a digest of several, as email, Slack blocks and JSON.

Pure functions of the stored alerts: every channel says the same thing in its own form. A kind this
module has no title for (a newer producer's) is still delivered, titled from its name.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from typing import Any

from paysync_core.contracts import AlertKind

TITLES = {
    AlertKind.AMOUNT_MISMATCH: "Amount mismatch",
    AlertKind.CURRENCY_MISMATCH: "Currency mismatch",
    AlertKind.DOMAIN_PAID_WITHOUT_PAYMENT: "Marked paid without a successful payment",
    AlertKind.PAYMENT_SUCCEEDED_DOMAIN_UNPAID: "Paid, but the record is not marked paid",
    AlertKind.STUCK_PAYMENT: "Payment stuck",
    AlertKind.GATEWAY_ERROR: "Gateway unreachable",
    AlertKind.CHECK_FAILED: "Payment check failing",
    AlertKind.MODE_MISMATCH: "Test/live mode mismatch",
    AlertKind.OVERRIDE_CONTRADICTED: "Override contradicted by the gateway",
    AlertKind.GATEWAY_PAYMENT_UNRECORDED: "Paid at the gateway, not recorded here",
    AlertKind.PAID_WITHOUT_GATEWAY_SUCCESS: "Paid here, no success at the gateway",
    AlertKind.WEBHOOK_ENDPOINT_DISABLED: "Webhook endpoint disabled",
    AlertKind.PAYMENT_PAST_DEADLINE: "Payment pending past its deadline",
    AlertKind.GATEWAY_FAILURE_RATE: "Many payments failing",
    AlertKind.DEAD_LETTERS: "Dead letters",
}
STEP_PREFIX = {"opened": "", "reminder": "Still open: ", "resolved": "Resolved: "}
#: Digest lines shown in chat (Slack allows 50 blocks); email and JSON list every item.
CHAT_DIGEST_LINES = 20


@dataclass(frozen=True)
class Item:
    """One alert at one step (opened, reminder, resolved), as stored in the delivery log."""

    step: str
    alert: dict[str, Any]


@dataclass(frozen=True)
class Message:
    """One message in every form a channel needs."""

    subject: str
    text: str
    html: str
    slack: dict[str, Any]
    payload: dict[str, Any]


def title(kind: str) -> str:
    """A kind's title; unknown kinds are titled from their name."""
    return TITLES.get(kind, kind.replace("_", " ").capitalize())  # type: ignore[call-overload]


def link(alert: dict[str, Any], console_url: str) -> str | None:
    """The payment's page, if the alert is about a payment."""
    payment = alert.get("payment_id")
    return f"{console_url.rstrip('/')}/v1/payments/{payment}" if payment else None


def headline(item: Item) -> str:
    """`Resolved: Amount mismatch: stripe cs_123` (the step, what, about what)."""
    alert = item.alert
    about = " ".join(str(alert[k]) for k in ("provider", "provider_ref") if alert.get(k))
    entity = alert.get("entity") or {}
    if not about and entity:
        about = f"{entity.get('domain')} {entity.get('entity_id')}"
    if not about:  # an alert about a topic (dead letters), not a payment
        about = str((alert.get("facts") or {}).get("dlq_topic") or "")
    return f"{STEP_PREFIX.get(item.step, '')}{title(alert['kind'])}{': ' + about if about else ''}"


def _lines(item: Item, console_url: str) -> list[str]:
    alert = item.alert
    lines = [headline(item), alert.get("detail", "")]
    lines += [f"  {name}: {value}" for name, value in sorted((alert.get("facts") or {}).items())]
    if url := link(alert, console_url):
        lines.append(f"Payment: {url}")
    lines.append(
        f"Tenant: {alert['tenant']} · raised {alert.get('raised_at', '')} · alert {alert['alert_id']}"
    )
    return lines


def _html(items: list[Item], console_url: str, heading: str) -> str:
    parts = [f"<h2>{html.escape(heading)}</h2>"]
    for item in items:
        body = "<br>".join(html.escape(line) for line in _lines(item, console_url)[1:])
        url = link(item.alert, console_url)
        anchor = f'<p><a href="{html.escape(url)}">Open the payment</a></p>' if url else ""
        parts.append(f"<h3>{html.escape(headline(item))}</h3><p>{body}</p>{anchor}")
    return "<html><body>" + "".join(parts) + "</body></html>"


def _slack(items: list[Item], console_url: str, heading: str) -> dict[str, Any]:
    blocks: list[dict[str, Any]] = [{"type": "header", "text": {"type": "plain_text", "text": heading[:150]}}]
    for item in items[:CHAT_DIGEST_LINES]:
        url = link(item.alert, console_url)
        text = f"*{headline(item)}*\n{item.alert.get('detail', '')}" + (
            f"\n<{url}|Open the payment>" if url else ""
        )
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": text[:3000]}})
    if len(items) > CHAT_DIGEST_LINES:
        more = f"…and {len(items) - CHAT_DIGEST_LINES} more (the email and the delivery log list every one)"
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": more}]})
    return {"text": heading, "blocks": blocks}


def compose(tenant: str, items: list[Item], console_url: str) -> Message:
    """The message for `items` (one alert, or a digest of a burst) to one target of `tenant`."""
    heading = headline(items[0]) if len(items) == 1 else f"{len(items)} sync alerts for {tenant}"
    subject = f"[paysync] {heading}" if len(items) == 1 else f"[paysync] {heading} (digest)"
    text = "\n\n".join("\n".join(_lines(item, console_url)) for item in items)
    payload = {
        "type": "paysync.alerts",
        "tenant": tenant,
        "count": len(items),
        "items": [{"step": i.step, "link": link(i.alert, console_url), "alert": i.alert} for i in items],
    }
    return Message(
        subject, text, _html(items, console_url, heading), _slack(items, console_url, heading), payload
    )
