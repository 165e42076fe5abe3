"""Admin alerts, end to end: alerts on the real topic, the notifier as its own process(es), a real SMTP
server and a real HTTP receiver standing in for Slack and a signed JSON webhook."""

from __future__ import annotations

import json
import re
from collections import Counter
from datetime import timedelta

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import func, insert, select
from sqlalchemy.ext.asyncio import AsyncEngine
from standardwebhooks import Webhook

from paysync_core import topics
from paysync_core.alerting import AlertConfig
from paysync_core.app_webhooks import new_secret
from paysync_core.contracts import Alert, AlertKind, DeadLetter
from paysync_core.db.schema import alert_deliveries, sync_issues
from paysync_dev.alerts import configure_alerts, issue_alert, open_issues, resolve_issue
from paysync_dev.fixtures import TestTenant, create_tenant
from paysync_dev.http_receiver import HttpReceiver, ReceivedRequest
from paysync_dev.service_fixtures import fetch, publish, wait_until
from paysync_dev.topic_reader import read_topic

pytestmark = pytest.mark.integration

SECRET = new_secret()
ALERT_ID = re.compile(r"alert ([0-9a-f-]{36})")


async def configure(
    engine: AsyncEngine, keys: str, tenant: TestTenant, receiver: HttpReceiver, **rules: object
) -> None:
    """Email to ops@, Slack-compatible chat to /slack and a signed webhook to /hook on the receiver."""
    config = AlertConfig(
        emails=["ops@example.com"],
        slack_urls=[f"{receiver.url}/slack"],
        webhooks=[{"url": f"{receiver.url}/hook", "secret": SECRET}],
        **rules,
    )
    await configure_alerts(engine, keys, tenant.id, config)


def subject(mail) -> str:
    """The subject as a mail client shows it (a folded long header parses with a leading space)."""
    return str(mail["Subject"]).strip()


def on(path: str, requests: list[ReceivedRequest]) -> list[ReceivedRequest]:
    return [r for r in requests if r.path == path]


def verified_payload(request: ReceivedRequest, secret: str = SECRET) -> dict:
    """The webhook's JSON, after checking its signature as a receiver would: with `standardwebhooks`."""
    return Webhook(secret).verify(request.body, request.headers)


async def log_rows(engine: AsyncEngine, tenant: str) -> list:
    return await fetch(engine, select(alert_deliveries).where(alert_deliveries.c.tenant_id == tenant))


async def all_marked_sent(engine: AsyncEngine, tenant: str, count: int) -> bool:
    """The tenant's `count` deliveries are all marked sent: the notifier marks each after the server
    took it, and one it is stopped before marking stays claimed, to be sent again by a later notifier
    (another test's) once its lease runs out."""
    rows = await log_rows(engine, tenant)
    return len(rows) == count and all(r.status == "sent" for r in rows)


async def test_each_kind_is_told_once_by_email_chat_and_signed_webhook(
    start_notifiers, engine, credentials_keys, tenant, kafka_topics, smtp_sink, http_receiver
) -> None:
    await configure(engine, credentials_keys, tenant, http_receiver, reminder_after_seconds=None)
    await start_notifiers()
    for n, kind in enumerate(AlertKind, 1):
        alert = issue_alert(tenant.id, kind, expected_minor=12500, seen_minor=9900)
        await open_issues(engine, kafka_topics, [alert])
        await smtp_sink.wait_for(lambda m, n=n: len(m) >= n)
        await http_receiver.wait_for(lambda r, n=n: len(on("/slack", r)) >= n and len(on("/hook", r)) >= n)

        mail = smtp_sink.messages[-1]
        text = smtp_sink.text_of(mail)
        assert mail["To"] == "ops@example.com"
        assert alert.provider_ref in subject(mail)
        assert alert.detail in text and "expected_minor: 12500" in text
        assert f"https://console.example/v1/payments/{alert.payment_id}" in text
        assert (
            f'href="https://console.example/v1/payments/{alert.payment_id}"'
            in mail.get_body(("html",)).get_content()
        )
        slack = json.loads(on("/slack", http_receiver.requests)[-1].body)
        assert alert.provider_ref in slack["text"] and slack["blocks"][0]["type"] == "header"
        hook = verified_payload(on("/hook", http_receiver.requests)[-1])
        assert [(i["step"], i["alert"]["alert_id"], i["alert"]["kind"]) for i in hook["items"]] == [
            ("opened", alert.alert_id, kind.value)
        ]
    kinds = len(AlertKind)

    async def all_marked_sent() -> bool:  # the log row is marked after the server took the message
        rows = await log_rows(engine, tenant.id)
        return len(rows) == kinds * 3 and all(r.status == "sent" for r in rows)

    await wait_until(all_marked_sent, 60, "every delivery marked sent")
    assert len(smtp_sink.messages) == kinds
    assert len(on("/slack", http_receiver.requests)) == len(on("/hook", http_receiver.requests)) == kinds
    assert len({r.headers["webhook-id"] for r in on("/hook", http_receiver.requests)}) == kinds
    # Slack's incoming webhooks check no signature: chat goes unsigned (its URL is the credential).
    assert not any("webhook-signature" in r.headers for r in on("/slack", http_receiver.requests))
    rows = await log_rows(engine, tenant.id)
    assert Counter((r.channel, r.status) for r in rows) == {
        ("email", "sent"): kinds,
        ("slack", "sent"): kinds,
        ("webhook", "sent"): kinds,
    }
    assert not any("/slack" in r.recipient or "/hook" in r.recipient for r in rows)  # never a full URL


async def test_an_issue_is_told_once_reminded_once_and_its_resolution_told_once(
    start_notifiers, engine, credentials_keys, tenant, kafka_topics, smtp_sink, http_receiver
) -> None:
    await configure(engine, credentials_keys, tenant, http_receiver, reminder_after_seconds=1)
    await start_notifiers()
    alert = issue_alert(tenant.id, AlertKind.AMOUNT_MISMATCH)
    await open_issues(engine, kafka_topics, [alert])

    await smtp_sink.wait_for(lambda m: any(subject(x).startswith("[paysync] Still open: ") for x in m))
    # Each channel's reminder is due a second after its own opening went out: chat's may come a round
    # after the email's, and an issue resolved before then is rightly never reminded there.
    await http_receiver.wait_for(lambda r: len(on("/slack", r)) >= 2 and len(on("/hook", r)) >= 2)
    await resolve_issue(engine, alert)
    await smtp_sink.wait_for(lambda m: any(subject(x).startswith("[paysync] Resolved: ") for x in m))
    await http_receiver.wait_for(lambda r: len(on("/hook", r)) >= 3)
    await wait_until(lambda: all_marked_sent(engine, tenant.id, 9), 60, "every delivery marked sent")

    subjects = [subject(m) for m in smtp_sink.messages]
    assert subjects == [
        "[paysync] Amount mismatch: stripe " + alert.provider_ref,
        "[paysync] Still open: Amount mismatch: stripe " + alert.provider_ref,
        "[paysync] Resolved: Amount mismatch: stripe " + alert.provider_ref,
    ]
    steps = [verified_payload(r)["items"][0]["step"] for r in on("/hook", http_receiver.requests)]
    assert steps == ["opened", "reminder", "resolved"]
    resolved = verified_payload(on("/hook", http_receiver.requests)[-1])["items"][0]["alert"]
    assert resolved["resolved_at"]


async def test_a_burst_of_200_alerts_is_one_digest_per_channel(
    start_notifiers, engine, credentials_keys, tenant, kafka_topics, smtp_sink, http_receiver
) -> None:
    await configure(engine, credentials_keys, tenant, http_receiver, reminder_after_seconds=None)
    # The window is what makes a burst one message: the 200 are entered in about a second here, so 8 s
    # leaves a machine several times slower room to fit the burst in it.
    await start_notifiers(alerts_digest_window_seconds=8)
    burst = [issue_alert(tenant.id, AlertKind.STUCK_PAYMENT) for _ in range(200)]
    await open_issues(engine, kafka_topics, burst)

    async def all_sent() -> bool:
        rows = await log_rows(engine, tenant.id)
        return len(rows) == 600 and all(r.status == "sent" for r in rows)

    await wait_until(all_sent, 120, "200 alerts sent on 3 channels")
    assert len(smtp_sink.messages) == 1
    digest = smtp_sink.messages[0]
    assert subject(digest) == f"[paysync] 200 sync alerts for {tenant.id} (digest)"
    assert set(ALERT_ID.findall(smtp_sink.text_of(digest))) == {a.alert_id for a in burst}
    assert len(on("/slack", http_receiver.requests)) == 1
    (hook,) = on("/hook", http_receiver.requests)
    assert sorted(i["alert"]["alert_id"] for i in verified_payload(hook)["items"]) == sorted(
        a.alert_id for a in burst
    )


async def test_smtp_down_then_up_and_chat_answering_503_deliver_after_retries(
    start_notifiers, engine, credentials_keys, tenant, kafka_topics, smtp_sink, http_receiver
) -> None:
    await configure(engine, credentials_keys, tenant, http_receiver, reminder_after_seconds=None)
    (notifier,) = await start_notifiers()
    smtp_sink.stop()
    http_receiver.respond_with(503, {"Retry-After": "1"}, times=4)
    alert = issue_alert(tenant.id, AlertKind.GATEWAY_ERROR)
    await open_issues(engine, kafka_topics, [alert])

    async def email_retrying() -> bool:
        rows = await log_rows(engine, tenant.id)
        return any(r.channel == "email" and r.attempts >= 2 and r.status == "pending" for r in rows)

    await wait_until(email_retrying, 60, "the email to be retried")
    (email_row,) = [r for r in await log_rows(engine, tenant.id) if r.channel == "email"]
    assert email_row.last_error.startswith("smtp unreachable")
    smtp_sink.start()

    async def all_sent() -> bool:
        return all(r.status == "sent" for r in await log_rows(engine, tenant.id))

    await wait_until(all_sent, 60, "every channel delivered after retries")
    assert len(smtp_sink.messages) == 1 and alert.alert_id in smtp_sink.text_of(smtp_sink.messages[0])
    answered = [r for r in http_receiver.requests if r.path in ("/slack", "/hook")]
    assert len(answered) == 6  # 4 answered 503, then one each delivered
    assert notifier.metric("paysync_notifier_alerts_retried_total", channel="email") >= 1

    # Counted once the notifier has marked it sent, after the server took it.
    await notifier.wait_for_metric(
        "paysync_notifier_alerts_sent_total", 1, "the email counted", channel="email"
    )
    assert notifier.metric("paysync_notifier_alerts_retried_total", channel="slack") >= 1


async def test_a_receiver_that_refuses_for_good_dead_letters_the_delivery_with_its_reason(
    start_notifiers, engine, credentials_keys, tenant, kafka_topics, smtp_sink, http_receiver
) -> None:
    await configure(engine, credentials_keys, tenant, http_receiver, reminder_after_seconds=None)
    (notifier,) = await start_notifiers()
    http_receiver.respond_with(410)
    await open_issues(engine, kafka_topics, [issue_alert(tenant.id, AlertKind.CHECK_FAILED)])

    async def settled() -> bool:
        rows = await log_rows(engine, tenant.id)
        return len(rows) == 3 and all(r.status in ("sent", "dead") for r in rows)

    await wait_until(settled, 60, "the deliveries to settle")
    rows = {r.channel: r for r in await log_rows(engine, tenant.id)}
    assert rows["email"].status == "sent"
    assert (rows["slack"].status, rows["slack"].last_error, rows["slack"].attempts) == (
        "dead",
        "slack answered 410",
        1,
    )
    assert (rows["webhook"].status, rows["webhook"].last_error) == ("dead", "webhook answered 410")

    # Counted once the notifier has marked it dead, not before.
    await notifier.wait_for_metric(
        "paysync_notifier_alerts_failed_total", 1, "the webhook counted as given up", channel="webhook"
    )


async def test_two_replicas_never_send_a_message_twice(
    start_notifiers, engine, credentials_keys, tenant, kafka_topics, smtp_sink, http_receiver
) -> None:
    await configure(engine, credentials_keys, tenant, http_receiver, reminder_after_seconds=None)
    await start_notifiers(2, alerts_poll_seconds=0.05)
    alerts: list[Alert] = [issue_alert(tenant.id, kind) for kind in AlertKind for _ in range(3)]
    await open_issues(engine, kafka_topics, alerts)
    await smtp_sink.wait_for(
        lambda m: (
            {i for x in m for i in ALERT_ID.findall(smtp_sink.text_of(x))} >= {a.alert_id for a in alerts}
        )
    )
    for alert in alerts:
        await resolve_issue(engine, alert)

    async def all_sent() -> bool:
        rows = await log_rows(engine, tenant.id)
        return len(rows) == len(alerts) * 6 and all(r.status == "sent" for r in rows)

    await wait_until(all_sent, 120, "openings and resolutions sent")
    told = Counter(i for m in smtp_sink.messages for i in ALERT_ID.findall(smtp_sink.text_of(m)))
    assert set(told.values()) == {2} and len(told) == len(alerts)  # opened and resolved, once each
    hooks = Counter(
        (item["step"], item["alert"]["alert_id"])
        for r in on("/hook", http_receiver.requests)
        for item in verified_payload(r)["items"]
    )
    assert set(hooks.values()) == {1} and len(hooks) == len(alerts) * 2


async def test_a_claim_left_by_a_crashed_replica_is_sent_by_another_once_its_lease_ran_out(
    start_notifiers, engine, credentials_keys, tenant, smtp_sink, http_receiver
) -> None:
    await configure(engine, credentials_keys, tenant, http_receiver, reminder_after_seconds=None)
    alert = issue_alert(tenant.id, AlertKind.MODE_MISMATCH)
    # What a replica killed between its claim and its send leaves behind: a claim whose lease ran out.
    async with engine.begin() as conn:
        await conn.execute(
            insert(alert_deliveries).values(
                tenant_id=tenant.id,
                alert_id=alert.alert_id,
                kind=alert.kind.value,
                step="opened",
                channel="email",
                recipient="ops@example.com",
                alert=alert.model_dump(mode="json", exclude_none=True),
                status="sending",
                attempts=1,
                claimed_by="replica-that-crashed",
                lease_until=func.now() - timedelta(seconds=1),
            )
        )
    await start_notifiers()

    await smtp_sink.wait_for(lambda m: len(m) >= 1)

    async def marked_sent() -> bool:  # marked after the SMTP server took the message, not before
        return [r.status for r in await log_rows(engine, tenant.id)] == ["sent"]

    await wait_until(marked_sent, 60, "the taken-over delivery to be marked sent")
    (row,) = await log_rows(engine, tenant.id)
    assert (row.status, row.attempts) == ("sent", 2) and row.claimed_by != "replica-that-crashed"
    assert len(smtp_sink.messages) == 1 and alert.alert_id in smtp_sink.text_of(smtp_sink.messages[0])


async def test_an_issue_resolved_before_its_quiet_time_is_over_is_never_told(
    start_notifiers, engine, credentials_keys, tenant, kafka_topics, smtp_sink, http_receiver
) -> None:
    quiet = 2
    await configure(
        engine, credentials_keys, tenant, http_receiver, reminder_after_seconds=None, quiet_seconds=quiet
    )
    await start_notifiers()
    cleared, still_open = (issue_alert(tenant.id, AlertKind.STUCK_PAYMENT) for _ in range(2))
    # Resolved before the notifier even reads its alert (a lagging notifier): deterministic, no race.
    await open_issues(engine, kafka_topics, [cleared])
    await resolve_issue(engine, cleared)
    await open_issues(engine, kafka_topics, [still_open])

    async def settled() -> bool:
        rows = await log_rows(engine, tenant.id)
        return len(rows) == 6 and all(r.status in ("sent", "skipped") for r in rows)

    await wait_until(settled, 60, "both alerts settled")
    rows = await log_rows(engine, tenant.id)
    assert {(r.alert_id, r.status) for r in rows} == {
        (cleared.alert_id, "skipped"),
        (still_open.alert_id, "sent"),
    }
    assert all(r.sent_at - r.created_at >= timedelta(seconds=quiet) for r in rows if r.status == "sent")
    assert [ALERT_ID.findall(smtp_sink.text_of(m)) for m in smtp_sink.messages] == [[still_open.alert_id]]
    assert [
        verified_payload(r)["items"][0]["alert"]["alert_id"] for r in on("/hook", http_receiver.requests)
    ] == [still_open.alert_id]


async def test_smtp_login_is_used_and_a_refused_login_is_dead_with_the_reason_and_no_password_in_logs(
    start_notifiers, engine, credentials_keys, tenant, kafka_topics, smtp_sink, http_receiver
) -> None:
    await configure(engine, credentials_keys, tenant, http_receiver, reminder_after_seconds=None)
    smtp_sink.require_login("alerts", "right-password-1")
    (good,) = await start_notifiers(smtp_username="alerts", smtp_password="right-password-1")
    await open_issues(engine, kafka_topics, [issue_alert(tenant.id, AlertKind.AMOUNT_MISMATCH)])
    await smtp_sink.wait_for(lambda m: len(m) == 1)
    assert smtp_sink.logins == ["alerts"]

    # Before stopping it: a delivery it has not marked yet would be sent again by a later notifier.
    await wait_until(
        lambda: all_marked_sent(engine, tenant.id, 3), 60, "the first alert's deliveries marked sent"
    )
    good.process.stop()

    (bad,) = await start_notifiers(
        smtp_username="alerts", smtp_password="wrong-password-2", alerts_max_attempts=2
    )
    refused = issue_alert(tenant.id, AlertKind.CHECK_FAILED)
    await open_issues(engine, kafka_topics, [refused])

    async def given_up() -> bool:
        rows = await log_rows(engine, tenant.id)
        return any(
            r.alert_id == refused.alert_id and r.channel == "email" and r.status == "dead" for r in rows
        )

    await wait_until(given_up, 60, "the refused login to be given up")
    (row,) = [
        r
        for r in await log_rows(engine, tenant.id)
        if r.alert_id == refused.alert_id and r.channel == "email"
    ]
    # Our credentials, not the message: retried (they may be fixed), then given up with the reason.
    assert row.last_error.startswith("smtp login refused (535)") and row.attempts == 2
    assert len(smtp_sink.messages) == 1
    for process in (good.process, bad.process):
        log = process.log_path.read_text()
        assert "right-password-1" not in log and "wrong-password-2" not in log
        assert "/slack" not in log and "/hook" not in log and SECRET not in log  # chat URLs and secrets


async def test_an_alert_that_cannot_be_entered_is_dead_lettered_and_the_next_one_still_delivered(
    start_notifiers,
    engine,
    migrated_database,
    credentials_keys,
    tenant,
    kafka_topics,
    smtp_sink,
    http_receiver,
) -> None:
    # Settings encrypted under a key the notifier does not have: this tenant's alerts cannot be entered.
    unreadable = create_tenant(migrated_database, credentials_keys, ())
    other_key = Fernet.generate_key().decode()
    await configure_alerts(
        engine, other_key, unreadable.id, AlertConfig(slack_urls=[f"{http_receiver.url}/x"])
    )
    await configure(engine, credentials_keys, tenant, http_receiver, reminder_after_seconds=None)
    await start_notifiers()
    stuck = issue_alert(unreadable.id, AlertKind.AMOUNT_MISMATCH)
    fine = issue_alert(tenant.id, AlertKind.AMOUNT_MISMATCH)
    spec = topics.ALERTS
    await publish(kafka_topics, spec.name, unreadable.id.encode(), b"{not an alert")
    await open_issues(engine, kafka_topics, [stuck, fine])

    await smtp_sink.wait_for(lambda m: any(fine.alert_id in smtp_sink.text_of(x) for x in m))

    async def both_dead_lettered() -> bool:
        letters = [DeadLetter.from_bytes(r.value) for r in await read_topic(kafka_topics, spec.dlq.name)]
        ours = [x for x in letters if x.value == b"{not an alert" or stuck.alert_id.encode() in x.value]
        return len(ours) >= 2

    await wait_until(both_dead_lettered, 60, "both records on the alerts' dead-letter topic")
    letters = [DeadLetter.from_bytes(r.value) for r in await read_topic(kafka_topics, spec.dlq.name)]
    by_value = {x.value: x for x in letters if x.service == "notifier"}
    assert by_value[b"{not an alert"].error_type == "ValidationError"
    unreadable_letter = next(x for v, x in by_value.items() if stuck.alert_id.encode() in v)
    assert (
        unreadable_letter.error_type == "CredentialsKeyError" and unreadable_letter.source_topic == spec.name
    )
    assert not [r for r in await log_rows(engine, unreadable.id)]


async def test_an_alert_whose_issue_commits_after_its_opening_was_sent_still_gets_its_resolution(
    start_notifiers, engine, credentials_keys, tenant, kafka_topics, smtp_sink, http_receiver
) -> None:
    await configure(engine, credentials_keys, tenant, http_receiver, reminder_after_seconds=None)
    await start_notifiers()
    slow, later = (issue_alert(tenant.id, AlertKind.GATEWAY_ERROR) for _ in range(2))
    # As the reconciler and the notifier's rules raise an alert: the issue row is written in the
    # transaction that publishes the alert, and commits after the broker took it.
    async with engine.begin() as conn:
        await conn.execute(
            insert(sync_issues).values(
                alert_id=slow.alert_id,
                tenant_id=tenant.id,
                kind=slow.kind.value,
                subject=slow.alert_id,
                detail=slow.detail,
            )
        )
        await publish(kafka_topics, topics.ALERTS.name, tenant.id.encode(), slow.to_bytes())
        await smtp_sink.wait_for(lambda m: any(slow.alert_id in smtp_sink.text_of(x) for x in m))
        # Another alert told: delivery rounds went by after the opening was sent.
        await open_issues(engine, kafka_topics, [later])
        await smtp_sink.wait_for(lambda m: any(later.alert_id in smtp_sink.text_of(x) for x in m))
    await resolve_issue(engine, slow)

    await smtp_sink.wait_for(lambda m: len(m) >= 3)
    await wait_until(lambda: all_marked_sent(engine, tenant.id, 9), 60, "every delivery marked sent")
    told = [(subject(m).split(":")[0], ALERT_ID.findall(smtp_sink.text_of(m))) for m in smtp_sink.messages]
    assert told == [
        ("[paysync] Gateway unreachable", [slow.alert_id]),
        ("[paysync] Gateway unreachable", [later.alert_id]),
        ("[paysync] Resolved", [slow.alert_id]),
    ]
