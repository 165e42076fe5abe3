"""Signed alert webhooks as their receiver sees them: Standard Webhooks headers checked with the
`standardwebhooks` package from PyPI by a real HTTP receiver, the notifier as its own process."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Callable

import httpx
import pytest
from sqlalchemy import insert, select
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from paysync_core.alerting import AlertConfig
from paysync_core.app_webhooks import new_secret
from paysync_core.contracts import AlertKind
from paysync_core.crypto import CredentialsCipher
from paysync_core.db.schema import alert_deliveries, alert_settings
from paysync_dev.alerts import configure_alerts, issue_alert, open_issues
from paysync_dev.http_receiver import ReceivedRequest
from paysync_dev.service_fixtures import fetch, wait_until

pytestmark = pytest.mark.integration


def on(path: str, requests: list[ReceivedRequest]) -> list[ReceivedRequest]:
    return [r for r in requests if r.path == path]


def verified_payload(request: ReceivedRequest, secret: str) -> dict:
    """The webhook's JSON, after checking its signature as a receiver would: with `standardwebhooks`."""
    return Webhook(secret).verify(request.body, request.headers)


def verifies(secret: str) -> Callable[[ReceivedRequest], bool]:
    """A receiver's check of the Standard Webhooks signature under `secret` (chat requests pass)."""

    def check(request: ReceivedRequest) -> bool:
        if request.path != "/hook":
            return True
        try:
            Webhook(secret).verify(request.body, request.headers)
        except WebhookVerificationError:
            return False
        return True

    return check


async def test_signed_alerts_verify_with_standardwebhooks_under_both_secrets_of_a_rotation(
    start_notifiers, engine, credentials_keys, tenant, kafka_topics, smtp_sink, http_receiver
) -> None:
    old, new = new_secret(), new_secret()
    # Mid-rotation: the receiver still verifies with the old secret; the new one signs as well.
    hook = {"url": f"{http_receiver.url}/hook", "secret": new, "previous_secrets": [old]}
    config = AlertConfig(emails=["ops@example.com"], webhooks=[hook], reminder_after_seconds=None)
    await configure_alerts(engine, credentials_keys, tenant.id, config)
    http_receiver.verify_with(verifies(old))
    http_receiver.respond_with(503, times=2)  # the first two attempts fail: the message is retried
    (notifier,) = await start_notifiers()
    alert = issue_alert(tenant.id, AlertKind.AMOUNT_MISMATCH)
    await open_issues(engine, kafka_topics, [alert])

    await http_receiver.wait_for(lambda rs: any(r.answered == 200 for r in on("/hook", rs)))
    attempts = on("/hook", http_receiver.snapshot())
    assert [r.answered for r in attempts] == [503, 503, 200]
    assert notifier.metric("paysync_notifier_alerts_retried_total", channel="webhook") == 2

    # Counted once the notifier has marked it sent, after the 200.
    await notifier.wait_for_metric(
        "paysync_notifier_alerts_sent_total", 1, "the webhook counted", channel="webhook"
    )
    # One message, retried: the same id on every attempt, so the receiver can drop a repeat by it.
    assert len({r.headers["webhook-id"] for r in attempts}) == 1
    for request in attempts:
        assert len(request.headers["webhook-signature"].split(" ")) == 2
        for secret in (old, new):
            payload = verified_payload(request, secret)
            assert [(i["step"], i["alert"]["alert_id"]) for i in payload["items"]] == [
                ("opened", alert.alert_id)
            ]

    # The same request with its body changed: the receiver refuses it, and so does the library.
    delivered = attempts[-1]
    tampered = delivered.body.replace(alert.alert_id.encode(), str(uuid.uuid4()).encode())
    signed = {k: v for k, v in delivered.headers.items() if k.startswith("webhook-")}
    async with httpx.AsyncClient() as client:
        answer = await client.post(f"{http_receiver.url}/hook", content=tampered, headers=signed)
    assert answer.status_code == 401
    with pytest.raises(WebhookVerificationError):
        Webhook(new).verify(tampered, delivered.headers)
    with pytest.raises(WebhookVerificationError):  # nor does a secret the tenant never set verify it
        verified_payload(delivered, new_secret())


async def test_a_webhook_saved_with_an_old_form_secret_is_signed_under_the_same_key(
    start_notifiers, engine, credentials_keys, tenant, kafka_topics, smtp_sink, http_receiver
) -> None:
    # As settings were stored before secrets took the whsec_ form: any string of 16+ characters.
    legacy = "legacy-plain-secret-0123456789"
    hooks = {"slack_urls": [], "webhooks": [{"url": f"{http_receiver.url}/hook", "secret": legacy}]}
    async with engine.begin() as conn:
        await conn.execute(
            insert(alert_settings).values(
                tenant_id=tenant.id,
                config={"reminder_after_seconds": None},
                secrets_ciphertext=CredentialsCipher(credentials_keys).seal(json.dumps(hooks).encode()),
            )
        )
    await start_notifiers()
    alert = issue_alert(tenant.id, AlertKind.STUCK_PAYMENT)
    await open_issues(engine, kafka_topics, [alert])

    await http_receiver.wait_for(lambda rs: len(on("/hook", rs)) >= 1)

    async def marked_sent() -> bool:  # left claimed (not marked yet), it would be sent again later
        query = select(alert_deliveries.c.status).where(alert_deliveries.c.tenant_id == tenant.id)
        return [r.status for r in await fetch(engine, query)] == ["sent"]

    await wait_until(marked_sent, 60, "the webhook marked sent")
    # Its key is the old secret's bytes: the receiver gives them to the library in the whsec_ form.
    key = "whsec_" + base64.b64encode(legacy.encode()).decode()
    (request,) = on("/hook", http_receiver.snapshot())
    assert verified_payload(request, key)["items"][0]["alert"]["alert_id"] == alert.alert_id
