"""What an alert message says, and the webhook signature receivers check."""

from __future__ import annotations

import hashlib
import hmac

from paysync_notifier.alert_channels import sign
from paysync_notifier.alert_messages import Item, compose


def alert(kind: str, **extra: object) -> dict:
    return {
        "alert_id": "6f1c1a53-2f1e-5f57-9d0c-3c7c9c2d8f10",
        "kind": kind,
        "tenant": "acme",
        "detail": "expected 12500 USD, seen 9900 USD",
        "raised_at": "2026-12-05T10:00:00Z",
        **extra,
    }


def test_a_kind_the_notifier_does_not_know_is_still_delivered_titled_from_its_name() -> None:
    message = compose("acme", [Item("opened", alert("endpoint_disabled"))], "https://console.example")
    assert message.subject == "[paysync] Endpoint disabled"
    assert "expected 12500 USD, seen 9900 USD" in message.text
    assert message.payload["items"][0]["alert"]["kind"] == "endpoint_disabled"


def test_a_payment_alert_links_to_the_payment_in_every_form() -> None:
    item = Item(
        "reminder", alert("amount_mismatch", payment_id="p-1", provider="stripe", provider_ref="cs_1")
    )
    message = compose("acme", [item], "https://console.example/")
    url = "https://console.example/v1/payments/p-1"
    assert message.subject == "[paysync] Still open: Amount mismatch: stripe cs_1"
    assert url in message.text and f'href="{url}"' in message.html
    assert url in message.slack["blocks"][1]["text"]["text"] and message.payload["items"][0]["link"] == url


def test_html_escapes_what_the_alert_says() -> None:
    message = compose(
        "acme", [Item("opened", alert("check_failed", detail="<script>x</script>"))], "https://c"
    )
    assert "<script>" not in message.html and "&lt;script&gt;" in message.html


def test_a_digest_lists_every_alert_in_email_and_json_and_bounds_chat_blocks() -> None:
    items = [Item("opened", alert("stuck_payment", alert_id=f"id-{n}")) for n in range(200)]
    message = compose("acme", items, "https://c")
    assert message.subject == "[paysync] 200 sync alerts for acme (digest)"
    assert all(f"alert id-{n}" in message.text for n in range(200))
    assert message.payload["count"] == 200 and len(message.payload["items"]) == 200
    assert len(message.slack["blocks"]) <= 50


def test_the_signature_is_hmac_sha256_of_timestamp_dot_body() -> None:
    body = b'{"type":"paysync.alerts"}'
    expected = hmac.new(b"s3cret", b"1700000000." + body, hashlib.sha256).hexdigest()
    assert sign("s3cret", 1700000000, body) == f"v1={expected}"
    assert sign("other", 1700000000, body) != f"v1={expected}"
