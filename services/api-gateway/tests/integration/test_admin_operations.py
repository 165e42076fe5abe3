"""The operator's surface on `/admin/v1` beyond tenants: window sweeps (as `paysync reconcile`), dead
letters (as `paysync dlq`) and topics (as `paysync topics describe`), against the real reconciler,
projector, broker and database, the gateways simulated."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from paysync_core import topics
from paysync_core.contracts import DeadLetter
from paysync_dev.fixtures import create_gateway_tenant
from paysync_dev.payments import observation, payment_row, register_payment
from paysync_dev.reconcile import LOST, register
from paysync_dev.service_fixtures import publish, unique, wait_until
from paysync_dev.topic_reader import commit_group_at_end

pytestmark = pytest.mark.integration
ADMIN_TOKEN = "admin-secret-for-operations-tests"
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


async def test_a_window_sweep_started_over_the_admin_api_is_polled_until_it_ends_with_what_it_recovered(
    gateway_sim, engine, credentials_keys, projector, start_reconciler, open_api
) -> None:
    sim = gateway_sim
    tenant = await create_gateway_tenant(
        engine, credentials_keys, sim, ("paystack",), faults={"paystack": LOST}
    )
    account = tenant.account("paystack")
    since = datetime.now(UTC) - timedelta(seconds=1)
    lost = []
    for _ in range(2):
        ref = sim.create_payment(account.id, kind="transaction", amount_minor=50_000, currency="NGN").ref
        lost.append(str(await register(engine, tenant.id, "paystack", ref, currency="NGN")))
        sim.act(account.id, ref, "pay")  # its webhook is lost
    until = datetime.now(UTC) + timedelta(seconds=2)
    window = {
        "tenant": tenant.id,
        "gateway": "paystack",
        "since": since.isoformat(),
        "until": until.isoformat(),
    }
    await start_reconciler(scheduler_enabled="false")

    async with open_api(admin_token=ADMIN_TOKEN) as api:
        unauthenticated = await api.post("/admin/v1/reconcile-sweeps", json=window)
        backwards = await api.post(
            "/admin/v1/reconcile-sweeps",
            json=window | {"since": window["until"], "until": window["since"]},
            headers=ADMIN,
        )
        nobody = await api.post(
            "/admin/v1/reconcile-sweeps", json=window | {"tenant": "nobody"}, headers=ADMIN
        )
        naive = await api.post(
            "/admin/v1/reconcile-sweeps", json=window | {"since": "2026-11-20T10:00:00"}, headers=ADMIN
        )
        assert unauthenticated.status_code == 401
        assert backwards.status_code == 422
        assert backwards.json()["problems"] == [{"field": "since", "problem": "must be before until"}]
        assert nobody.status_code == 404 and nobody.json()["error"]
        assert naive.status_code == 422 and naive.json()["problems"]

        started = await api.post("/admin/v1/reconcile-sweeps", json=window, headers=ADMIN)
        assert started.status_code == 202, started.text
        location = started.headers["Location"]
        assert started.json()["status"] in ("queued", "running") and location.endswith(
            started.json()["tick_id"]
        )

        async def ended() -> bool:
            polled = await api.get(location, headers=ADMIN)
            assert polled.status_code == 200, polled.text
            return polled.json()["status"] not in ("queued", "running")

        await wait_until(ended, 120, "the window sweep to end")
        report = (await api.get(location, headers=ADMIN)).json()
        assert report["status"] == "completed", report
        assert (report["payments_expected"], report["payments_checked"], report["payments_changed"]) == (
            2,
            2,
            2,
        )
        assert sorted(p["payment_id"] for p in report["recovered"]) == sorted(lost)

        unknown = await api.get("/admin/v1/reconcile-sweeps/not-a-sweep", headers=ADMIN)
        assert unknown.status_code == 404 and unknown.json()["error"]
        assert (await api.get(location)).status_code == 401


async def test_dead_letters_are_listed_shown_and_redriven_over_the_admin_api(
    engine, tenant, projector, kafka_topics, open_api
) -> None:
    payment = await register_payment(engine, tenant.id, provider_ref=unique("cs"), domain=None)
    paid = observation(payment, amount=5000)
    # As the projector writes one after its last attempt (a domain table it could not write, since fixed).
    spec = topics.PAYMENT_OBSERVATIONS
    letter = DeadLetter(
        source_topic=spec.name,
        partition=0,
        offset=0,
        key=spec.key_for(paid),
        value=paid.to_bytes(),
        error_type="NotNullViolationError",
        error='null value in column "customer" violates not-null constraint',
        attempts=2,
        service="status-projector",
        failed_at=datetime.now(UTC),
    )
    await publish(kafka_topics, spec.dlq.name, spec.key_for(paid), letter.to_bytes())
    mine = {"tenant": tenant.id, "topic": spec.name}

    async with open_api(admin_token=ADMIN_TOKEN) as api:
        listed = await api.get("/admin/v1/dead-letters", params=mine, headers=ADMIN)
        assert listed.status_code == 200, listed.text
        assert listed.json()["counts"] == {spec.dlq.name: 1}
        (found,) = listed.json()["letters"]
        assert (found["reason"], found["tenant"], found["source_topic"]) == (
            "NotNullViolationError",
            tenant.id,
            spec.name,
        )
        by_reason = await api.get(
            "/admin/v1/dead-letters", params=mine | {"reason": "customer"}, headers=ADMIN
        )
        assert [x["id"] for x in by_reason.json()["letters"]] == [found["id"]]
        other_reason = await api.get(
            "/admin/v1/dead-letters", params=mine | {"reason": "Timeout"}, headers=ADMIN
        )
        assert other_reason.json()["letters"] == []

        shown = await api.get(f"/admin/v1/dead-letters/{found['id']}", headers=ADMIN)
        assert shown.status_code == 200, shown.text
        assert shown.json()["original"]["provider_ref"] == payment.provider_ref
        assert shown.json()["redriven"] is None

        no_topic = await api.get("/admin/v1/dead-letters", params={"topic": "nope"}, headers=ADMIN)
        naive = await api.get(
            "/admin/v1/dead-letters", params={"since": "2026-11-20T10:00:00"}, headers=ADMIN
        )
        typo = await api.get("/admin/v1/dead-letters", params={"tenent": tenant.id}, headers=ADMIN)
        nobody = await api.post("/admin/v1/dead-letters/redrive", json=mine, headers=ADMIN)
        assert no_topic.status_code == 422 and no_topic.json()["problems"][0]["field"] == "topic"
        assert naive.status_code == 422 and naive.json()["problems"]
        assert typo.status_code == 400 and typo.json()["error"]
        assert nobody.status_code == 422 and nobody.json()["problems"]  # who redrives is required
        assert (await api.get("/admin/v1/dead-letters", params=mine)).status_code == 401
        missing = await api.get(f"/admin/v1/dead-letters/{spec.dlq.name}:0:999999999", headers=ADMIN)
        assert missing.status_code == 404 and missing.json()["error"]
        assert (await payment_row(engine, payment)).status == "pending"  # listing changed nothing

        redriven = await api.post(
            "/admin/v1/dead-letters/redrive", json=mine | {"by": "ops-amina"}, headers=ADMIN
        )
        assert redriven.status_code == 200, redriven.text
        report = redriven.json()
        assert [r["id"] for r in report["redriven"]] == [found["id"]]
        assert (report["before"], report["after"], report["skipped"]) == ({spec.dlq.name: 1}, {}, [])

        async def applied() -> bool:
            return (await payment_row(engine, payment)).status == "succeeded"

        await wait_until(applied, 60, "the redriven observation applied")
        again = await api.get("/admin/v1/dead-letters", params=mine, headers=ADMIN)
        assert again.json() == {"counts": {}, "letters": []}
        ledger = (await api.get(f"/admin/v1/dead-letters/{found['id']}", headers=ADMIN)).json()["redriven"]
        assert ledger["by"] == "ops-amina" and ledger["to"].startswith(f"{spec.name}:")


async def test_topics_are_described_with_a_groups_lag_over_the_admin_api(kafka_topics, open_api) -> None:
    spec = topics.RECONCILE_TICKS.dlq  # a topic no running service of this test reads
    group = f"describe-{uuid.uuid4().hex[:8]}"
    await commit_group_at_end(kafka_topics, group, spec.name)  # caught up: no lag
    for n in range(2):
        await publish(kafka_topics, spec.name, b"describe-test", f"not a letter {n}".encode())

    async with open_api(admin_token=ADMIN_TOKEN) as api:
        described = await api.get("/admin/v1/topics", params={"topic": spec.name}, headers=ADMIN)
        assert described.status_code == 200, described.text
        (topic,) = described.json()
        assert (topic["topic"], topic["partitions"]) == (spec.name, spec.partitions)
        assert topic["records"] == sum(topic["end_offsets"].values()) >= 2
        assert {"group": group, "lag": 2, "partitions": spec.partitions} in topic["groups"]
        every = await api.get("/admin/v1/topics", headers=ADMIN)
        assert {t["topic"] for t in every.json()} == {s.name for s in topics.ALL}

        unknown = await api.get("/admin/v1/topics", params={"topic": "paysync.nope.v1"}, headers=ADMIN)
        assert unknown.status_code == 422
        assert unknown.json()["problems"] == [{"field": "topic", "problem": "no such topic: paysync.nope.v1"}]
        assert (await api.get("/admin/v1/topics")).status_code == 401
