"""What an alert message says, and the id a signed webhook's receiver dedupes it by."""

from __future__ import annotations

from paysync_notifier.alert_channels import message_id
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


def test_a_message_id_is_the_same_for_the_same_rows_in_any_order_and_differs_otherwise() -> None:
    assert message_id([3, 1, 2]) == message_id([1, 2, 3])
    assert message_id([1, 2, 3]).startswith("msg_")
    assert len({message_id([1]), message_id([1, 2]), message_id([12]), message_id([2, 1, 3, 4])}) == 4
