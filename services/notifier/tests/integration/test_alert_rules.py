"""The alert rules on status changes, end to end: payments registered and projected by the real
status-projector, dead letters on the real topics, the notifier as its own process, a real SMTP server
and a real HTTP receiver (Slack-compatible). Each rule's alert is told once, and its resolution once."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage

import pytest
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from paysync_core import topics
from paysync_core.alerting import AlertConfig
from paysync_core.contracts import AlertKind, DeadLetter
from paysync_core.db.schema import payments, sync_issues
from paysync_core.domain.status import UnifiedStatus
from paysync_core.kafka import DurableProducer
from paysync_dev.alerts import configure_alerts
from paysync_dev.fixtures import create_tenant
from paysync_dev.http_receiver import HttpReceiver
from paysync_dev.operator import paysync
from paysync_dev.payments import Registered, observation, payment_row, publish_observations, register_payments
from paysync_dev.service_fixtures import Service, fetch, publish, wait_until
from paysync_dev.smtp_sink import SmtpSink
from paysync_dev.topic_reader import records_held

pytestmark = pytest.mark.integration
#: Quick rounds, so a test waits seconds, not the production half-minute.
QUICK_RULES = {
    "alert_rules_enabled": True,
    "alert_rules_seconds": 0.3,
    "alert_rules_dead_letter_seconds": 0.3,
}
LETTERS_READ = "paysync_notifier_dead_letters_read_total"


async def configure(
    engine: AsyncEngine, keys: str, tenant: str, receiver: HttpReceiver, **rules: object
) -> None:
    """Email and Slack-compatible chat of the tenant's own (other tenants' follow-ups may reach the same
    SMTP server and receiver, sent by this test's notifier); no reminders."""
    config = AlertConfig(
        emails=[f"ops-{tenant}@example.com"],
        slack_urls=[f"{receiver.url}/slack/{tenant}"],
        reminder_after_seconds=None,
        **rules,
    )
    await configure_alerts(engine, keys, tenant, config)


def mails(sink: SmtpSink, tenant: str) -> list[EmailMessage]:
    return [m for m in sink.messages if m["To"] == f"ops-{tenant}@example.com"]


def subjects(sink: SmtpSink, tenant: str) -> list[str]:
    return [str(m["Subject"]).strip() for m in mails(sink, tenant)]


async def wait_mails(sink: SmtpSink, tenant: str, count: int) -> None:
    await sink.wait_for(
        lambda received: len([m for m in received if m["To"] == f"ops-{tenant}@example.com"]) >= count
    )


def slack_texts(receiver: HttpReceiver, tenant: str) -> list[str]:
    return [json.loads(r.body)["text"] for r in receiver.requests if r.path == f"/slack/{tenant}"]


async def wait_slack(receiver: HttpReceiver, tenant: str, count: int) -> None:
    await receiver.wait_for(
        lambda received: len([r for r in received if r.path == f"/slack/{tenant}"]) >= count
    )


async def issues(engine: AsyncEngine, tenant: str, kind: AlertKind) -> list:
    query = select(sync_issues).where(sync_issues.c.tenant_id == tenant, sync_issues.c.kind == kind.value)
    return await fetch(engine, query.order_by(sync_issues.c.id))


async def settle(engine: AsyncEngine, kafka: str, payment: Registered, status: UnifiedStatus) -> None:
    """The gateway tells the payment's outcome; wait until the projector applied it."""
    await publish_observations(kafka, [observation(payment, status)])

    async def applied() -> bool:
        return (await payment_row(engine, payment)).status == status.value

    await wait_until(applied, 60, f"{payment.provider_ref} to be {status.value}")


def rounds(notifiers: list[Service]) -> float:
    """Rule rounds evaluated so far, by every replica (one at a time holds the round's lock)."""
    return sum(n.metric("paysync_notifier_alert_rule_rounds_total") for n in notifiers)


async def rounds_after_now(notifiers: list[Service], more: int = 2) -> None:
    """Wait for `more` rule rounds: the last of them began after what is committed now."""
    start = rounds(notifiers)

    async def done() -> bool:
        return rounds(notifiers) >= start + more

    await wait_until(done, 60, "rule rounds")


async def test_two_replicas_tell_a_payment_pending_past_its_domains_deadline_once_and_its_resolution_once(
    projector, start_notifiers, engine, credentials_keys, tenant, kafka_topics, smtp_sink, http_receiver
) -> None:
    await configure(
        engine,
        credentials_keys,
        tenant.id,
        http_receiver,
        pending_deadlines={"bookings": "1s", "invoices": "3d"},
    )
    late, invoice, no_deadline, refunded = await register_payments(
        engine,
        tenant.id,
        [
            {"domain": "bookings", "entity_id": "b-42"},
            {"domain": "invoices"},
            {"domain": "jobs"},
            {"domain": "bookings"},
        ],
    )
    # Paid, then partly refunded, before the rules first look: money moved, it waits for nothing.
    await publish_observations(
        kafka_topics, [observation(refunded, UnifiedStatus.PARTIALLY_REFUNDED, refunded=1000)]
    )

    async def partly_refunded() -> bool:
        return (await payment_row(engine, refunded)).status == UnifiedStatus.PARTIALLY_REFUNDED.value

    await wait_until(partly_refunded, 60, "the refund to be applied")
    notifiers = await start_notifiers(2, **QUICK_RULES)  # two replicas: still one message per step

    await wait_mails(smtp_sink, tenant.id, 1)
    await rounds_after_now(notifiers)
    (opened,) = await issues(engine, tenant.id, AlertKind.PAYMENT_PAST_DEADLINE)
    assert opened.payment_id == late.id and opened.resolved_at is None
    assert subjects(smtp_sink, tenant.id) == [
        f"[paysync] Payment pending past its deadline: stripe {late.provider_ref}"
    ]
    text = smtp_sink.text_of(mails(smtp_sink, tenant.id)[0])
    assert "bookings b-42 is still pending" in text and "settle within 1s" in text
    assert f"https://console.example/v1/payments/{late.id}" in text
    assert all(p.provider_ref not in text for p in (invoice, no_deadline, refunded))

    await settle(engine, kafka_topics, late, UnifiedStatus.SUCCEEDED)
    await wait_mails(smtp_sink, tenant.id, 2)
    await wait_slack(http_receiver, tenant.id, 2)
    await rounds_after_now(notifiers)
    assert subjects(smtp_sink, tenant.id) == [
        f"[paysync] Payment pending past its deadline: stripe {late.provider_ref}",
        f"[paysync] Resolved: Payment pending past its deadline: stripe {late.provider_ref}",
    ]
    assert len(slack_texts(http_receiver, tenant.id)) == 2
    (resolved,) = await issues(engine, tenant.id, AlertKind.PAYMENT_PAST_DEADLINE)
    assert resolved.resolved_at is not None


async def test_the_pending_deadline_runs_from_the_last_status_change_not_from_registration(
    projector, start_notifiers, engine, credentials_keys, tenant, kafka_topics, smtp_sink, http_receiver
) -> None:
    await configure(engine, credentials_keys, tenant.id, http_receiver, pending_deadlines={"bookings": "30m"})
    waiting, acted, back_to_pending, stalled = await register_payments(
        engine, tenant.id, [{"domain": "bookings"} for _ in range(4)]
    )
    await settle(engine, kafka_topics, acted, UnifiedStatus.REQUIRES_ACTION)  # the customer must act: now
    await settle(engine, kafka_topics, stalled, UnifiedStatus.PROCESSING)
    await publish_observations(
        kafka_topics,
        [
            observation(back_to_pending, UnifiedStatus.REQUIRES_ACTION, 1),
            observation(back_to_pending, UnifiedStatus.PENDING, 2),
        ],
    )

    async def back_and_pending() -> bool:
        row = await payment_row(engine, back_to_pending)
        return row.status == "pending" and row.sequence == 2

    await wait_until(back_and_pending, 60, "the payment to go back to pending")
    # All four were registered an hour ago; `stalled` has been processing for 45 minutes.
    async with engine.begin() as conn:
        await conn.execute(
            update(payments)
            .where(payments.c.tenant_id == tenant.id)
            .values(created_at=func.now() - timedelta(hours=1))
        )
        await conn.execute(
            update(payments)
            .where(payments.c.id == stalled.id)
            .values(status_changed_at=func.now() - timedelta(minutes=45))
        )
    notifiers = await start_notifiers(**QUICK_RULES)

    def told(received: list[EmailMessage]) -> str:
        return " ".join(smtp_sink.text_of(m) for m in received)

    await smtp_sink.wait_for(lambda m: waiting.provider_ref in told(m) and stalled.provider_ref in told(m))
    await rounds_after_now(notifiers)
    opened = await issues(engine, tenant.id, AlertKind.PAYMENT_PAST_DEADLINE)
    assert {i.payment_id for i in opened} == {waiting.id, stalled.id}
    by_ref = {
        p.provider_ref: smtp_sink.text_of(m)
        for m in mails(smtp_sink, tenant.id)
        for p in (waiting, stalled)
        if p.provider_ref in smtp_sink.text_of(m)
    }
    assert (
        "is still pending" in by_ref[waiting.provider_ref]
        and "after it was registered" in by_ref[waiting.provider_ref]
    )
    assert "after it became processing" in by_ref[stalled.provider_ref]
    texts = told(mails(smtp_sink, tenant.id))
    assert acted.provider_ref not in texts and back_to_pending.provider_ref not in texts


async def test_failures_above_the_tenants_rate_are_told_once_not_below_it_and_resolved_when_back_under(
    projector, start_notifiers, engine, credentials_keys, tenant, kafka_topics, smtp_sink, http_receiver
) -> None:
    rule = {"min_failed": 2, "of_last": 3, "window_seconds": "1h"}
    await configure(engine, credentials_keys, tenant.id, http_receiver, failure_rate=rule)
    first, second, *later = await register_payments(
        engine,
        tenant.id,
        [{"provider": "paystack", "provider_ref": f"ps_{uuid.uuid4().hex}"} for _ in range(5)],
    )
    notifiers = await start_notifiers(**QUICK_RULES)

    await settle(engine, kafka_topics, first, UnifiedStatus.FAILED)
    await rounds_after_now(notifiers)
    assert await issues(engine, tenant.id, AlertKind.GATEWAY_FAILURE_RATE) == []  # 1 failed: under 2

    await settle(engine, kafka_topics, second, UnifiedStatus.FAILED)
    await wait_mails(smtp_sink, tenant.id, 1)
    for payment in later:  # three successes: the last three outcomes have no failure
        await settle(engine, kafka_topics, payment, UnifiedStatus.SUCCEEDED)
    await wait_mails(smtp_sink, tenant.id, 2)
    await wait_slack(http_receiver, tenant.id, 2)  # sent beside the email, not before it
    await rounds_after_now(notifiers)

    assert subjects(smtp_sink, tenant.id) == [
        "[paysync] Many payments failing: paystack",
        "[paysync] Resolved: Many payments failing: paystack",
    ]
    assert "2 of the last 2 Paystack payments" in smtp_sink.text_of(mails(smtp_sink, tenant.id)[0])
    assert slack_texts(http_receiver, tenant.id) == [
        "Many payments failing: paystack",
        "Resolved: Many payments failing: paystack",
    ]
    (issue,) = await issues(engine, tenant.id, AlertKind.GATEWAY_FAILURE_RATE)
    assert issue.subject == "failures:paystack" and issue.resolved_at is not None


async def test_a_tenant_with_the_failure_rule_off_is_not_told(
    projector, start_notifiers, engine, credentials_keys, tenant, kafka_topics, smtp_sink, http_receiver
) -> None:
    await configure(engine, credentials_keys, tenant.id, http_receiver, failure_rate=None)
    payments = await register_payments(engine, tenant.id, [{}] * 6)
    notifiers = await start_notifiers(**QUICK_RULES)
    for payment in payments:
        await settle(engine, kafka_topics, payment, UnifiedStatus.FAILED)
    await rounds_after_now(notifiers)
    assert await issues(engine, tenant.id, AlertKind.GATEWAY_FAILURE_RATE) == []


def dead_letter(tenant: str) -> DeadLetter:
    """A letter as a consumer writes it: an observation of the tenant that kept failing (once redriven,
    the projector parks it: its reference is registered nowhere)."""
    original = observation(tenant=tenant, ref=f"cs_test_{uuid.uuid4().hex}")
    return DeadLetter(
        source_topic=topics.PAYMENT_OBSERVATIONS.name,
        partition=0,
        offset=0,
        key=tenant.encode(),
        value=original.to_bytes(),
        error_type="ValidationError",
        error="1 validation error for PaymentObservation",
        attempts=3,
        service="status-projector",
        failed_at=datetime.now(UTC),
    )


async def test_dead_letters_of_a_tenant_are_told_once_per_topic_and_resolved_when_redriven(
    start_notifiers,
    engine,
    migrated_database,
    credentials_keys,
    tenant,
    kafka_topics,
    smtp_sink,
    http_receiver,
) -> None:
    await configure(engine, credentials_keys, tenant.id, http_receiver)
    dlq = topics.PAYMENT_OBSERVATIONS.dlq.name
    notifiers = await start_notifiers(**QUICK_RULES)
    await publish(kafka_topics, dlq, tenant.id.encode(), dead_letter(tenant.id).to_bytes())
    await wait_mails(smtp_sink, tenant.id, 1)

    # More letters while the issue is open are the same burst: no new message.
    await publish(kafka_topics, dlq, tenant.id.encode(), dead_letter(tenant.id).to_bytes())
    await rounds_after_now(notifiers)
    (issue,) = await issues(engine, tenant.id, AlertKind.DEAD_LETTERS)
    assert issue.subject == f"dlq:{dlq}" and issue.resolved_at is None
    assert subjects(smtp_sink, tenant.id) == [f"[paysync] Dead letters: {dlq}"]
    text = smtp_sink.text_of(mails(smtp_sink, tenant.id)[0])
    assert "on the dead-letter topic paysync.payment-observations.v1.dlq (ValidationError)" in text
    assert f"paysync dlq list --topic {dlq} --tenant {tenant.id}" in text

    ran = await paysync(
        migrated_database,
        "dlq", "redrive", "--topic", dlq, "--tenant", tenant.id, "--json",
        kafka_bootstrap=kafka_topics,
    )  # fmt: skip
    assert ran.returncode == 0, ran.stderr
    assert len(ran.json()["redriven"]) == 2
    await wait_mails(smtp_sink, tenant.id, 2)
    await wait_slack(http_receiver, tenant.id, 2)  # sent beside the email, not before it
    await rounds_after_now(notifiers)
    assert subjects(smtp_sink, tenant.id) == [
        f"[paysync] Dead letters: {dlq}",
        f"[paysync] Resolved: Dead letters: {dlq}",
    ]
    assert len(slack_texts(http_receiver, tenant.id)) == 2


async def test_a_dead_letter_backlog_is_read_once_new_letters_still_alert_and_a_restart_does_not_re_alert(
    start_notifiers,
    engine,
    migrated_database,
    credentials_keys,
    tenant,
    kafka_topics,
    smtp_sink,
    http_receiver,
) -> None:
    other = create_tenant(migrated_database, credentials_keys, ())
    for who in (tenant.id, other.id):
        await configure(engine, credentials_keys, who, http_receiver)
    dlq = topics.PAYMENT_OBSERVATIONS.dlq.name
    backlog = 2000
    producer = DurableProducer(kafka_topics, client_id="paysync-tests")
    await producer.start()
    try:
        letters = [(tenant.id.encode(), dead_letter(tenant.id).to_bytes()) for _ in range(backlog)]
        await producer.send_many(dlq, letters)
    finally:
        await producer.stop()
    dlqs = [spec.dlq.name for spec in topics.WITH_DLQ]
    # Other letters may land on these topics meanwhile (the session's services, earlier tests'
    # redrives), so the counts are bounds: a re-read of the backlog would add 2,000 at once.
    (first,) = await start_notifiers(**QUICK_RULES)
    await wait_mails(smtp_sink, tenant.id, 1)
    await rounds_after_now([first], 3)
    # The backlog, and what earlier tests' notifiers left unread (the database is the session's).
    read = first.metric(LETTERS_READ)
    assert backlog <= read <= await records_held(kafka_topics, dlqs)  # never more than there is
    await rounds_after_now([first], 3)
    assert first.metric(LETTERS_READ) - read < backlog  # more rounds went by: the backlog not again
    assert f"{backlog} record(s) of this tenant" in smtp_sink.text_of(mails(smtp_sink, tenant.id)[0])

    # A letter after the backlog, of another tenant: read, and its alert opens.
    await publish(kafka_topics, dlq, other.id.encode(), dead_letter(other.id).to_bytes())
    await wait_mails(smtp_sink, other.id, 1)
    await rounds_after_now([first], 3)
    assert 1 <= first.metric(LETTERS_READ) - read < backlog
    assert "1 record(s) of this tenant" in smtp_sink.text_of(mails(smtp_sink, other.id)[0])

    # Restarted, the notifier reads from where the rule stopped: not the backlog, and no alert again.
    first.process.stop()
    (second,) = await start_notifiers(**QUICK_RULES)
    await rounds_after_now([second], 3)
    assert second.metric(LETTERS_READ) < backlog
    for who in (tenant.id, other.id):
        (issue,) = await issues(engine, who, AlertKind.DEAD_LETTERS)
        assert issue.resolved_at is None
    assert (len(mails(smtp_sink, tenant.id)), len(mails(smtp_sink, other.id))) == (1, 1)
