""" "Check payment status" and "Check payments" over HTTP, answered by the real reconciler.

The gateway simulator holds the payments and loses every webhook; the reconciler and the
status-projector run as processes; api-gateway runs in-process with its lifespan, called with the
tenant's API key. What is asserted is what a front end sees: the answer, its time, its counts, and
the rows it reads right after.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass

import httpx
import pytest
from cryptography.fernet import Fernet
from sqlalchemy import select

from paysync_api_gateway.settings import ApiGatewaySettings
from paysync_core.db.schema import bookings, reconcile_requests, referrals, workshop_jobs
from paysync_dev.fixtures import TestTenant, create_gateway_tenant, create_tenant
from paysync_dev.service_fixtures import fetch, unique, wait_until
from paysync_gateway_sim import SimulatorClient

pytestmark = pytest.mark.integration

LOST = {"webhooks": {"drop_ratio": 1.0}}
ENTITY_TIMEOUT = ApiGatewaySettings().refresh_timeout_seconds
BULK_TIMEOUT = ApiGatewaySettings().bulk_refresh_timeout_seconds
#: The simulator's own word for "the customer paid": a Checkout Session, a Paystack or an M-Pesa payment.
PAID_AT_GATEWAY = {"complete/paid", "success"}
#: How each built-in domain marks its row paid (`paid` in the status-projector's domains.toml).
PAID_ROWS = {
    "jobs": (workshop_jobs.c.job_id, workshop_jobs.c.payment_status, ("paid",)),
    "bookings": (bookings.c.booking_id, bookings.c.payment_status, ("escrow", "released")),
    "referrals": (referrals.c.referral_id, referrals.c.status, ("paid",)),
}


@dataclass(frozen=True)
class Held:
    """A payment the simulator holds and paysync tracks."""

    provider: str
    ref: str
    domain: str
    entity_id: str
    payment_id: str


class Shop:
    """A tenant's front end and its customers: payments made at the simulator, registered over the API."""

    def __init__(self, api: httpx.AsyncClient, sim: SimulatorClient, tenant: TestTenant) -> None:
        self.api, self.sim, self.tenant = api, sim, tenant
        self.auth = {"Authorization": f"Bearer {tenant.api_key}"}
        self.held: list[Held] = []

    async def sell(
        self, provider: str, domain: str, entity_id: str, amount_minor: int, currency: str, **spec: object
    ) -> Held:
        """Create a payment at the gateway and register it with paysync for one domain entity."""
        made = self.sim.create_payment(
            self.account(provider), amount_minor=amount_minor, currency=currency, **spec
        )
        registered = await self.api.post(
            "/v1/payments",
            headers=self.auth,
            json={
                "provider": provider,
                "provider_ref": made.ref,
                "domain": domain,
                "entity_id": entity_id,
                "amount_minor": amount_minor,
                "currency": currency,
            },
        )
        assert registered.status_code == 201, registered.text
        held = Held(provider, made.ref, domain, entity_id, registered.json()["id"])
        self.held.append(held)
        return held

    def account(self, provider: str) -> str:
        return self.tenant.account(provider).id

    def paid_at_gateway(self, held: Held) -> bool:
        """The simulator's truth."""
        return self.sim.payment(self.account(held.provider), held.ref).status in PAID_AT_GATEWAY

    async def status(self, held: Held) -> str:
        """The payment's status as the API shows it."""
        response = await self.api.get(f"/v1/payments/{held.payment_id}", headers=self.auth)
        return response.json()["status"]

    async def press(self, path: str) -> tuple[httpx.Response, float]:
        """POST a refresh button; the answer and the seconds it took."""
        started = time.monotonic()
        response = await self.api.post(path, headers=self.auth)
        return response, time.monotonic() - started

    async def follow_up(self, link: str, timeout: float) -> dict:
        """Poll a 202's follow-up link until the check completed; its last answer."""
        answers: list[httpx.Response] = []

        async def completed() -> bool:
            answers.append(await self.api.get(link, headers=self.auth))
            return answers[-1].status_code == 200 and answers[-1].json()["status"] == "completed"

        await wait_until(completed, timeout, f"{link} to say completed", every=0.1)
        # From the first poll on: the check is known (queued or running), never a 404.
        assert {(a.status_code, a.json()["status"]) for a in answers[:-1]} <= {(200, "checking")}
        return answers[-1].json()


async def entities_marked_paid(engine, tenant: str) -> set[tuple[str, str]]:
    """The (domain, entity) rows of the built-in domains that show the entity paid, now."""
    marked = set()
    for domain, (key, column, values) in PAID_ROWS.items():
        statement = select(key).where(key.table.c.tenant_id == tenant, column.in_(values))
        marked |= {(domain, row[0]) for row in await fetch(engine, statement)}
    return marked


async def test_check_one_entity_and_check_all_answer_in_time_with_the_gateways_truth(
    gateway_sim, engine, credentials_keys, projector, start_reconciler, open_api
):
    sim = gateway_sim
    tenant = await create_gateway_tenant(
        engine, credentials_keys, sim, faults={p: LOST for p in ("stripe", "paystack", "mpesa")}
    )
    async with open_api() as api:
        shop = Shop(api, sim, tenant)
        # A job with two Checkout Sessions; bookings paid through Paystack, referrals through M-Pesa.
        job = unique("job")
        first, second = [
            await shop.sell("stripe", "jobs", job, 12500, "USD", kind="checkout_session") for _ in range(2)
        ]
        booked = [await shop.sell("paystack", "bookings", unique("booking"), 50_000, "NGN") for _ in range(3)]
        referred = [
            await shop.sell("mpesa", "referrals", unique("referral"), 10_000, "KES", phone=f"25470000{i:04d}")
            for i in range(2)
        ]
        await start_reconciler(scheduler_enabled="false")  # only the buttons ask the gateways

        # The customers act at the gateways; every webhook is lost.
        sim.pay(shop.account("stripe"), second.ref)
        for held, step in zip(booked, ("pay", "pay", "abandon"), strict=True):
            sim.act(shop.account("paystack"), held.ref, step)
        for held, step in zip(referred, ("pay", "fail"), strict=True):
            sim.act(shop.account("mpesa"), held.ref, step)

        # "Check payment status" on the job.
        answer, took = await shop.press(f"/v1/domains/jobs/{job}/payments/refresh")
        marked = await entities_marked_paid(engine, tenant.id)
        listed = await api.get(f"/v1/domains/jobs/{job}/payments", headers=shop.auth)
        assert answer.status_code == 200, answer.text
        assert took < ENTITY_TIMEOUT
        body = answer.json()
        paid_now = [h for h in (first, second) if shop.paid_at_gateway(h)]
        assert paid_now == [second]
        assert (body["domain"], body["entity_id"]) == ("jobs", job)
        assert (body["payments_checked"], body["payments_updated"], body["gateway_errors"]) == (
            2,
            len(paid_now),
            0,
        )
        after = {
            p["provider_ref"]: (p["status_before"], p["status_after"], p["changed"]) for p in body["payments"]
        }
        assert after == {first.ref: ("pending", "pending", False), second.ref: ("pending", "succeeded", True)}
        # Read right after the answer: the API and the job's own row already show it paid.
        assert {p["provider_ref"]: p["status"] for p in listed.json()["items"]} == {
            first.ref: "pending",
            second.ref: "succeeded",
        }
        assert ("jobs", job) in marked
        [row] = await fetch(
            engine,
            select(workshop_jobs).where(
                workshop_jobs.c.tenant_id == tenant.id, workshop_jobs.c.job_id == job
            ),
        )
        assert row.payment_note == f"Paid via Stripe - Session: {second.ref}"
        assert row.amount_paid_minor == 12500

        # "Check payments": every payment paysync does not show settled yet, against the gateways.
        pending = await api.get("/v1/payments", params={"status": "pending"}, headers=shop.auth)
        unsettled = [h for h in shop.held if h.payment_id in {p["id"] for p in pending.json()["items"]}]
        found_paid = [h for h in unsettled if shop.paid_at_gateway(h)]
        answer, took = await shop.press("/v1/payments/refresh")
        marked = await entities_marked_paid(engine, tenant.id)
        assert answer.status_code == 200, answer.text
        assert took < BULK_TIMEOUT
        body = answer.json()
        assert len(unsettled) == 6 and len(found_paid) == 3  # the scenario is what this test means
        assert body["payments_checked"] == len(unsettled)
        assert body["entities_checked"] == len({(h.domain, h.entity_id) for h in unsettled})
        assert body["payments_found_paid"] == len(found_paid)
        assert body["payments_updated"] == len(found_paid) + 1  # and the M-Pesa push that failed
        assert body["gateway_errors"] == 0
        # Every entity the gateways hold as paid is marked paid by the time the answer arrives.
        assert marked == {(h.domain, h.entity_id) for h in shop.held if shop.paid_at_gateway(h)}
        statuses = [await shop.status(h) for h in (*booked, *referred)]
        assert statuses == ["succeeded", "succeeded", "pending", "succeeded", "failed"]


async def test_a_check_that_outlasts_its_timeout_answers_202_and_its_link_gives_the_result(
    gateway_sim, engine, credentials_keys, projector, start_reconciler, open_api
):
    sim = gateway_sim
    tenant = await create_gateway_tenant(
        engine,
        credentials_keys,
        sim,
        providers=("stripe", "paystack"),
        faults={p: LOST for p in ("stripe", "paystack")},
    )
    await start_reconciler(scheduler_enabled="false")
    async with open_api(refresh_timeout_seconds=0.05, bulk_refresh_timeout_seconds=0.05) as api:
        shop = Shop(api, sim, tenant)
        job = unique("job")
        session = await shop.sell("stripe", "jobs", job, 4000, "USD", kind="checkout_session")
        booked = [await shop.sell("paystack", "bookings", unique("booking"), 7_500, "NGN") for _ in range(2)]
        sim.pay(shop.account("stripe"), session.ref)
        sim.pay(shop.account("paystack"), booked[0].ref)

        answer, took = await shop.press(f"/v1/domains/jobs/{job}/payments/refresh")
        assert answer.status_code == 202, answer.text  # answered at its timeout, the check goes on
        link = answer.json()["follow_up"]
        assert answer.json() == {
            "request_id": answer.json()["request_id"],
            "status": "checking",
            "follow_up": f"/v1/reconcile-requests/{answer.json()['request_id']}",
        }
        assert answer.headers["location"] == link
        at_once = await api.get(link, headers=shop.auth)  # before any reconciler has started on it
        assert at_once.status_code == 200 and at_once.json()["status"] in ("checking", "completed")
        assert (await api.get("/v1/reconcile-requests/rr_nobody", headers=shop.auth)).status_code == 404
        result = await shop.follow_up(link, ENTITY_TIMEOUT)
        # The same answer the refresh would have given within its timeout.
        assert (result["domain"], result["entity_id"]) == ("jobs", job)
        assert (
            result["payments_checked"],
            result["payments_updated"],
            result["payments_found_paid"],
            result["gateway_errors"],
        ) == (1, 1, 1, 0)
        assert [(p["provider_ref"], p["status_after"]) for p in result["payments"]] == [
            (session.ref, "succeeded")
        ]
        assert ("jobs", job) in await entities_marked_paid(engine, tenant.id)

        answer, _ = await shop.press("/v1/payments/refresh")
        assert answer.status_code == 202, answer.text
        result = await shop.follow_up(answer.json()["follow_up"], BULK_TIMEOUT)
        assert (
            result["entities_checked"],
            result["payments_checked"],
            result["payments_found_paid"],
            result["gateway_errors"],
        ) == (2, 2, 1, 0)
        marked = await entities_marked_paid(engine, tenant.id)
        assert marked == {("jobs", job), ("bookings", booked[0].entity_id)}


async def test_a_check_that_can_never_succeed_ends_failed_with_its_reason_after_bounded_attempts(
    migrated_database, engine, start_reconciler, open_api
):
    # Its gateway credentials were encrypted with a key no service has: every attempt fails as a whole.
    tenant = create_tenant(migrated_database, Fernet.generate_key().decode(), ("stripe",))
    [reconciler] = await start_reconciler(
        scheduler_enabled="false",
        request_lease_seconds=0.5,
        recovery_poll_seconds=0.2,
        request_max_attempts=3,
    )
    async with open_api(refresh_timeout_seconds=0.05) as api:
        auth = {"Authorization": f"Bearer {tenant.api_key}"}
        job = unique("job")
        registered = await api.post(
            "/v1/payments",
            headers=auth,
            json={
                "provider": "stripe",
                "provider_ref": f"cs_test_{uuid.uuid4().hex}",
                "domain": "jobs",
                "entity_id": job,
                "amount_minor": 2000,
                "currency": "USD",
            },
        )
        assert registered.status_code == 201, registered.text

        answer = await api.post(f"/v1/domains/jobs/{job}/payments/refresh", headers=auth)
        assert answer.status_code == 202, answer.text
        link = answer.json()["follow_up"]
        answers: list[httpx.Response] = []

        async def ended() -> bool:
            answers.append(await api.get(link, headers=auth))
            return answers[-1].json()["status"] != "checking"

        await wait_until(ended, 30, f"{link} to stop saying checking", every=0.1)
    body = answers[-1].json()
    assert answers[-1].status_code == 200
    assert (body["request_id"], body["status"]) == (answer.json()["request_id"], "failed")
    assert body["reason"] and "gAAAA" not in body["reason"]  # why, without the ciphertext
    stored = await fetch(
        engine,
        select(reconcile_requests.c.attempts).where(reconcile_requests.c.request_id == body["request_id"]),
    )
    assert [r.attempts for r in stored] == [3]

    # Counted, then logged, after the failure is stored.
    await reconciler.wait_for_metric(
        "paysync_reconciler_requests_total", 1, "the failed check counted", kind="entity", outcome="failed"
    )
    # This tenant's lines only: the reconciler also recovers what other tests left in the shared database.
    lines = reconciler.process.log_path.read_text().splitlines()
    mine = [line for line in lines if tenant.id in line]  # (the log masks request ids)
    tries = [line for line in mine if "reconcile.request.attempt_failed" in line]
    last = [line for line in mine if "reconcile.request.failed" in line]
    assert (len(tries), len(last)) == (2, 1)
