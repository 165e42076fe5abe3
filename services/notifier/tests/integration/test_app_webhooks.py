"""Status changes POSTed to a tenant's own endpoint as Standard Webhooks, against a real receiver.

The notifier runs as its own process(es) on the real broker and database; endpoints are registered
with the operator's `paysync` command; the receiver is a real HTTP server that verifies with the
`standardwebhooks` package from PyPI, as a tenant's backend would.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

import pytest
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from paysync_core import topics
from paysync_core.contracts import Alert, DeadLetter, PaymentStatusChanged
from paysync_core.kafka import DurableProducer
from paysync_dev.fixtures import TestTenant
from paysync_dev.http_receiver import HttpReceiver, ReceivedRequest
from paysync_dev.live_stream import publish_status_changes, status_change
from paysync_dev.operator import paysync
from paysync_dev.service_fixtures import Service, unique, wait_for_groups, wait_until
from paysync_dev.topic_reader import commit_group_at_end, read_topic

pytestmark = pytest.mark.integration

#: Retries every fifth of a second, many times: the test's receiver recovers well within them.
QUICK = {"hooks_retry_schedule": json.dumps([0.2] * 200), "hooks_jitter": 0, "hooks_poll_seconds": 0.1}
LIFECYCLE = ("pending", "processing", "succeeded", "refunded")


@pytest.fixture
def start_notifiers(
    launch_notifiers: Callable[..., Awaitable[list[Service]]], kafka_topics: str
) -> Callable[..., Awaitable[list[Service]]]:
    """Start N notifier replicas sharing one app-webhook consumer group (starting at the topic's end)."""

    async def start(count: int = 1, **settings: object) -> list[Service]:
        group = unique("notifier")
        await commit_group_at_end(kafka_topics, f"{group}-app-webhooks", topics.PAYMENT_STATUS.name)
        services = await launch_notifiers(count, **({"group_id": group, **QUICK} | settings))
        await wait_for_groups(kafka_topics, {f"{group}-app-webhooks": count})
        return services

    return start


@pytest.fixture
def operator_env(monkeypatch: pytest.MonkeyPatch, credentials_keys: str) -> None:
    """The `paysync` command opens endpoint secrets with the session's key."""
    monkeypatch.setenv("PAYSYNC_CREDENTIALS_KEYS", credentials_keys)


async def add_endpoint(database: str, tenant: str, url: str, *options: str) -> dict:
    """`paysync endpoints add … --json`: the endpoint, with its secret (shown once)."""
    ran = await paysync(database, "endpoints", "add", tenant, url, *options, "--json")
    assert ran.returncode == 0, ran.stderr
    return ran.json()


def lifecycle(tenant: str, payments: int) -> list[PaymentStatusChanged]:
    """`payments` payments each going pending → processing → succeeded → refunded (sequences 1-4)."""
    changes = []
    for _ in range(payments):
        first = status_change(tenant)
        old = None
        for sequence, new in enumerate(LIFECYCLE, start=1):
            update = {"event_id": f"{first.event_id}-{sequence}", "sequence": sequence}
            changes.append(
                PaymentStatusChanged.model_validate(
                    first.model_dump() | update | {"old_status": old, "new_status": new}
                )
            )
            old = new
    return changes


def accepted(requests: list[ReceivedRequest]) -> list[ReceivedRequest]:
    """The requests the receiver answered 2xx, first of each `webhook-id` only (how it dedupes)."""
    seen: set[str] = set()
    kept = []
    for r in requests:
        if 200 <= r.answered < 300 and r.headers["webhook-id"] not in seen:
            seen.add(r.headers["webhook-id"])
            kept.append(r)
    return kept


def event_ids(requests: list[ReceivedRequest]) -> set[str]:
    """The status changes (`data.event_id`) the requests carried."""
    return {json.loads(r.body)["data"]["event_id"] for r in requests}


def assert_in_payment_order(requests: list[ReceivedRequest]) -> None:
    """No request for a payment's change arrives before each earlier change of it was accepted."""
    done: dict[str, set[int]] = defaultdict(set)
    for r in requests:
        data = json.loads(r.body)["data"]
        assert set(range(1, data["sequence"])) <= done[data["payment_id"]], (
            f"sequence {data['sequence']} of {data['payment_id']} sent before its predecessors were delivered"
        )
        if 200 <= r.answered < 300:
            done[data["payment_id"]].add(data["sequence"])


async def test_every_change_arrives_once_in_payment_order_signed_after_the_receiver_recovers(
    tenant: TestTenant,
    migrated_database: str,
    operator_env: None,
    start_notifiers: Callable[..., Awaitable[list[Service]]],
    producer: DurableProducer,
    http_receiver: HttpReceiver,
) -> None:
    endpoint = await add_endpoint(migrated_database, tenant.id, f"{http_receiver.url}/paysync")
    assert endpoint["secret"].startswith("whsec_")
    [notifier] = await start_notifiers()
    http_receiver.stop()  # down: connection refused
    changes = lifecycle(tenant.id, payments=5)
    await publish_status_changes(producer, changes)

    async def refused_and_retried() -> bool:
        return notifier.metric("paysync_notifier_app_webhooks_total", outcome="retried") >= 10

    await wait_until(refused_and_retried, 60, "deliveries refused and scheduled for retry")
    http_receiver.respond_with(500, times=8)  # up, but failing for a while
    http_receiver.start()
    wanted = {c.event_id for c in changes}
    await http_receiver.wait_for(lambda rs: event_ids(accepted(rs)) == wanted, timeout=120)

    requests = http_receiver.snapshot()
    assert any(r.answered == 500 for r in requests), "the receiver's failures were retried"
    assert_in_payment_order(requests)
    by_event: dict[str, set[str]] = defaultdict(set)
    receiver = Webhook(endpoint["secret"])
    for r in requests:
        by_event[json.loads(r.body)["data"]["event_id"]].add(r.headers["webhook-id"])
        event = receiver.verify(r.body, r.headers)  # raises if the signature does not hold
        assert event["type"] == "payment.status_changed"
        assert event["data"]["tenant"] == tenant.id
    assert all(len(ids) == 1 for ids in by_event.values()), "one webhook-id per event, on every retry"
    for delivered in accepted(requests):
        body = json.loads(delivered.body)
        assert body["data"]["payment_id"] == next(
            c.payment_id for c in changes if c.event_id == body["data"]["event_id"]
        )

    tampered = requests[-1]
    forged = json.loads(tampered.body)
    forged["data"]["new_status"] = "succeeded" if forged["data"]["new_status"] != "succeeded" else "refunded"
    with pytest.raises(WebhookVerificationError):
        receiver.verify(json.dumps(forged).encode(), tampered.headers)

    async def all_delivered() -> bool:  # marked after the receiver's 200 came back, not before
        listed = (await paysync(migrated_database, "deliveries", "list", tenant.id, "--json")).json()
        return {d["status"] for d in listed} == {"delivered"} and len(listed) == len(changes)

    await wait_until(all_delivered, 60, "every delivery marked delivered")
    listed = (await paysync(migrated_database, "deliveries", "list", tenant.id, "--json")).json()
    log = await paysync(
        migrated_database, "deliveries", "attempts", tenant.id, str(listed[-1]["id"]), "--json"
    )
    attempts = log.json()
    assert attempts[-1]["status_code"] == 200 and all(a["duration_ms"] >= 0 for a in attempts)
    assert endpoint["secret"] not in log.stdout
    assert endpoint["secret"] not in notifier.process.log_path.read_text(), "no secret in the notifier's log"

    # Redelivery by hand: the same webhook-id again (the receiver dedupes it), then a whole time range.
    before = len(http_receiver.snapshot())
    again = await paysync(
        migrated_database, "deliveries", "redeliver", tenant.id, str(listed[0]["id"]), "--json"
    )
    assert again.json()["redelivered"] == 1
    await http_receiver.wait_for(lambda rs: len(rs) == before + 1)
    assert http_receiver.snapshot()[-1].headers["webhook-id"] == listed[0]["webhook_id"]
    ranged = await paysync(
        migrated_database,
        "deliveries",
        "redeliver",
        tenant.id,
        "--endpoint",
        str(endpoint["id"]),
        "--since",
        "2000-01-01T00:00:00",
        "--json",
    )
    assert ranged.json()["redelivered"] == len(changes)
    await http_receiver.wait_for(lambda rs: len(rs) == before + 1 + len(changes))
    assert_in_payment_order(http_receiver.snapshot())


async def test_both_secrets_sign_during_a_rotation_and_the_old_one_stops_after_it(
    tenant: TestTenant,
    migrated_database: str,
    operator_env: None,
    start_notifiers: Callable[..., Awaitable[list[Service]]],
    producer: DurableProducer,
    http_receiver: HttpReceiver,
) -> None:
    endpoint = await add_endpoint(migrated_database, tenant.id, f"{http_receiver.url}/hooks")
    await start_notifiers()
    rotate = ("endpoints", "rotate-secret", tenant.id, str(endpoint["id"]), "--json")
    rotated = (await paysync(migrated_database, *rotate, "--keep-old-for", "3600")).json()
    old, new = Webhook(endpoint["secret"]), Webhook(rotated["secret"])

    first = status_change(tenant.id)
    await publish_status_changes(producer, [first])
    await http_receiver.wait_for(lambda rs: event_ids(accepted(rs)) == {first.event_id})
    during = accepted(http_receiver.snapshot())[0]
    assert len(during.headers["webhook-signature"].split(" ")) == 2
    old.verify(during.body, during.headers)
    new.verify(during.body, during.headers)

    latest = (await paysync(migrated_database, *rotate, "--keep-old-for", "0")).json()
    second = status_change(tenant.id)
    await publish_status_changes(producer, [second])
    await http_receiver.wait_for(lambda rs: second.event_id in event_ids(accepted(rs)))
    after = accepted(http_receiver.snapshot())[-1]
    assert len(after.headers["webhook-signature"].split(" ")) == 1
    Webhook(latest["secret"]).verify(after.body, after.headers)
    for expired in (old, new):
        with pytest.raises(WebhookVerificationError):
            expired.verify(after.body, after.headers)


async def test_two_replicas_deliver_each_change_once(
    tenant: TestTenant,
    migrated_database: str,
    operator_env: None,
    start_notifiers: Callable[..., Awaitable[list[Service]]],
    producer: DurableProducer,
    http_receiver: HttpReceiver,
) -> None:
    await add_endpoint(migrated_database, tenant.id, f"{http_receiver.url}/hooks")
    await start_notifiers(count=2)
    changes = lifecycle(tenant.id, payments=30)
    await publish_status_changes(producer, changes)
    wanted = {c.event_id for c in changes}
    await http_receiver.wait_for(lambda rs: event_ids(rs) == wanted, timeout=120)

    requests = http_receiver.snapshot()
    assert len(requests) == len(changes), "each change sent once, by one replica"
    assert_in_payment_order(requests)


async def test_an_endpoint_failing_too_long_is_disabled_with_an_alert_and_resumes_when_enabled(
    tenant: TestTenant,
    kafka_topics: str,
    migrated_database: str,
    operator_env: None,
    start_notifiers: Callable[..., Awaitable[list[Service]]],
    producer: DurableProducer,
    http_receiver: HttpReceiver,
) -> None:
    endpoint = await add_endpoint(migrated_database, tenant.id, f"{http_receiver.url}/hooks?token=tk_private")
    [notifier] = await start_notifiers(hooks_disable_after_failures=3)
    http_receiver.respond_with(503)
    change = status_change(tenant.id)
    await publish_status_changes(producer, [change])

    async def disabled() -> bool:
        listed = (await paysync(migrated_database, "endpoints", "list", tenant.id, "--json")).json()
        return not listed[0]["enabled"]

    await wait_until(disabled, 60, "the failing endpoint to be disabled")
    failures = len(http_receiver.snapshot())
    assert failures >= 3

    async def alerted() -> list[Alert]:
        records = await read_topic(kafka_topics, topics.ALERTS.name)
        alerts = [Alert.from_bytes(r.value) for r in records if r.key == tenant.id.encode()]
        return [a for a in alerts if a.kind == "webhook_endpoint_disabled"]

    async def one_alert() -> bool:
        return len(await alerted()) == 1

    await wait_until(one_alert, 30, "the endpoint-disabled alert")
    [alert] = await alerted()
    assert alert.facts["endpoint_id"] == endpoint["id"] and alert.facts["host"] == "127.0.0.1"
    assert "tk_private" not in alert.model_dump_json(), "the URL's path and query stay out of the alert"
    assert len(http_receiver.snapshot()) == failures, "nothing is sent to a disabled endpoint"

    http_receiver.respond_with(200)
    enabled = await paysync(
        migrated_database, "endpoints", "enable", tenant.id, str(endpoint["id"]), "--json"
    )
    assert enabled.json()["enabled"] and enabled.json()["consecutive_failures"] == 0
    await http_receiver.wait_for(lambda rs: event_ids(accepted(rs)) == {change.event_id})
    assert "tk_private" not in notifier.process.log_path.read_text(), (
        "the notifier never logs an endpoint's URL"
    )


async def test_the_command_refuses_an_endpoint_that_is_not_https_and_registers_nothing(
    tenant: TestTenant, migrated_database: str, operator_env: None
) -> None:
    for url in ("http://example.com/hooks", "https://user:pw@example.com/hooks"):
        ran = await paysync(migrated_database, "endpoints", "add", tenant.id, url, "--json")
        assert ran.returncode == 2 and "invalid endpoint: url" in ran.stderr, ran.stderr
    bad_status = await paysync(
        migrated_database, "endpoints", "add", tenant.id, "https://a.example/", "--status", "paid"
    )
    assert bad_status.returncode == 2
    assert (await paysync(migrated_database, "endpoints", "list", tenant.id, "--json")).json() == []
    nobody = await paysync(migrated_database, "endpoints", "add", "nobody-here", "https://a.example/")
    assert nobody.returncode == 1 and "nobody-here" in nobody.stderr


async def test_settled_deliveries_are_deleted_after_the_keep_time(
    tenant: TestTenant,
    migrated_database: str,
    operator_env: None,
    start_notifiers: Callable[..., Awaitable[list[Service]]],
    producer: DurableProducer,
    http_receiver: HttpReceiver,
) -> None:
    await add_endpoint(migrated_database, tenant.id, f"{http_receiver.url}/hooks")
    await start_notifiers(hooks_keep_days=0, hooks_prune_every_seconds=0.2)
    change = status_change(tenant.id)
    await publish_status_changes(producer, [change])
    await http_receiver.wait_for(lambda rs: event_ids(accepted(rs)) == {change.event_id})

    async def pruned() -> bool:
        return (await paysync(migrated_database, "deliveries", "list", tenant.id, "--json")).json() == []

    await wait_until(pruned, 60, "the delivered delivery to be deleted")


async def test_a_429_with_retry_after_puts_the_next_attempt_off_until_then(
    tenant: TestTenant,
    migrated_database: str,
    operator_env: None,
    start_notifiers: Callable[..., Awaitable[list[Service]]],
    producer: DurableProducer,
    http_receiver: HttpReceiver,
) -> None:
    await add_endpoint(migrated_database, tenant.id, f"{http_receiver.url}/hooks")
    await start_notifiers()  # its own schedule retries after 0.2 s
    http_receiver.respond_with(429, headers={"Retry-After": "1800"})
    await publish_status_changes(producer, [status_change(tenant.id)])

    async def deferred() -> list[dict]:
        return (await paysync(migrated_database, "deliveries", "list", tenant.id, "--json")).json()

    async def tried_once() -> bool:
        return [d["attempts"] for d in await deferred()] == [1]

    await wait_until(tried_once, 60, "the first attempt to be recorded")
    [delivery] = await deferred()
    attempts = await paysync(
        migrated_database, "deliveries", "attempts", tenant.id, str(delivery["id"]), "--json"
    )
    [attempt] = attempts.json()
    assert attempt["status_code"] == 429 and delivery["status"] == "pending"
    wait = datetime.fromisoformat(delivery["next_attempt_at"]) - datetime.fromisoformat(
        attempt["attempted_at"]
    )
    assert wait >= timedelta(seconds=1700), (
        f"the next attempt is due after {wait}, not the receiver's 30 minutes"
    )
    assert len(http_receiver.snapshot()) == 1


async def test_a_change_that_does_not_parse_is_dead_lettered_and_the_others_of_its_batch_delivered(
    tenant: TestTenant,
    migrated_database: str,
    operator_env: None,
    kafka_topics: str,
    start_notifiers: Callable[..., Awaitable[list[Service]]],
    producer: DurableProducer,
    http_receiver: HttpReceiver,
) -> None:
    await add_endpoint(migrated_database, tenant.id, f"{http_receiver.url}/hooks")
    await start_notifiers()
    before, garbled, after = (
        lifecycle(tenant.id, payments=3),
        unique("not-a-change").encode(),
        lifecycle(tenant.id, payments=3),
    )
    await publish_status_changes(producer, before)
    await producer.send(topics.PAYMENT_STATUS.name, None, garbled)
    await publish_status_changes(producer, after)
    wanted = {c.event_id for c in before + after}
    await http_receiver.wait_for(lambda rs: event_ids(accepted(rs)) == wanted, timeout=120)

    async def dead_lettered() -> bool:
        letters = await read_topic(kafka_topics, topics.PAYMENT_STATUS.dlq.name)
        return any(DeadLetter.from_bytes(r.value).value == garbled for r in letters)

    await wait_until(dead_lettered, timeout=30, what="the garbled change in the dead-letter topic")
    assert len(accepted(http_receiver.snapshot())) == len(wanted)
