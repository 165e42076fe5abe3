"""What each domain's rows show after a paid, a failed, a refunded and an amount-mismatched payment."""

from __future__ import annotations

import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, text

from paysync_core.db.schema import outbox
from paysync_core.domain.status import UnifiedStatus as S
from paysync_core.domains import DomainConfigError, Domains, load_domains
from paysync_dev.payments import T0, observation, payment_row, register_payment
from paysync_dev.service_fixtures import fetch
from paysync_status_projector.service import project
from paysync_status_projector.settings import BUILTIN_DOMAINS

pytestmark = pytest.mark.integration

#: A user's own table for a fifth domain, and its mapping: configuration only, no code.
ENROLMENTS_TABLE = """
CREATE TABLE IF NOT EXISTS course_enrolments (
    tenant_id text NOT NULL,
    enrolment_id text NOT NULL,
    state text NOT NULL DEFAULT 'applied',
    payment_state text,
    paid_amount_minor bigint,
    paid_on timestamptz,
    receipt_note text,
    last_problem text,
    payment_attempts integer NOT NULL DEFAULT 0,
    refunded_total_minor bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant_id, enrolment_id)
)"""
ENROLMENTS_MAPPING = """
[enrolments]
table = "course_enrolments"
key_column = "enrolment_id"
tenant_column = "tenant_id"
paid = { column = "state", values = ["enrolled"] }

[enrolments.default]
payment_state = "{status}"
last_problem = "{error}"

[enrolments.counters]
payment_attempts = { count = "payments" }
refunded_total_minor = { sum = "amount_refunded_minor" }

[enrolments.on.succeeded]
state = "enrolled"
paid_amount_minor = "{amount_received_minor}"
paid_on = "{paid_at}"
receipt_note = "Paid {amount_received_minor} {currency} via {provider_title} ({provider_ref})"

[enrolments.on.refunded]
state = "withdrawn"
"""

USER_TABLE = '[d]\ntable = "{t}"\nkey_column = "id"\ntenant_column = "tenant_id"\n'
PROVIDERS = {
    "jobs": ("stripe", "USD"),
    "bookings": ("paystack", "NGN"),
    "invoices": ("stripe", "USD"),
    "referrals": ("mpesa", "KES"),
    "enrolments": ("stripe", "USD"),
}


@pytest.fixture(scope="module")
async def all_domains(engine, tmp_path_factory) -> Domains:
    """The four built-in domains plus the user's fifth, from its own mapping file."""
    async with engine.begin() as conn:
        await conn.execute(text(ENROLMENTS_TABLE))
    extra: Path = tmp_path_factory.mktemp("config") / "enrolments.toml"
    extra.write_text(ENROLMENTS_MAPPING)  # noqa: ASYNC240 - a tiny config file written before anything runs
    domains = Domains(load_domains(BUILTIN_DOMAINS, extra))
    await domains.bind(engine)
    return domains


def scenario_observations(payment: Any, scenario: str) -> list[Any]:
    """The observations a gateway would produce for each scenario."""
    amount, currency = payment.amount_minor, payment.currency
    success = {"session_id": payment.provider_ref, "charge_id": "ch_1", "receipt_number": "QK12ABC"}
    if scenario == "paid":
        return [
            observation(payment, S.PENDING, 0, currency=currency),
            observation(payment, S.PROCESSING, 1, currency=currency),
            observation(payment, S.SUCCEEDED, 2, amount=amount, currency=currency, evidence=success),
        ]
    if scenario == "failed":
        return [
            observation(payment, S.PENDING, 0, currency=currency),
            observation(
                payment, S.FAILED, 1, currency=currency, evidence={"detail": "Request cancelled by user"}
            ),
        ]
    if scenario == "refunded":
        return [
            observation(payment, S.REFUNDED, 3, amount=amount, currency=currency, refunded=amount),
            observation(payment, S.SUCCEEDED, 1, amount=amount, currency=currency, evidence=success),
        ]
    assert scenario == "mismatched"
    return [observation(payment, S.SUCCEEDED, 1, amount=amount - 1000, currency=currency, evidence=success)]


def expected_rows(domain: str, scenario: str, payment: Any, t0: Any) -> tuple[dict, list[dict]]:
    """What the user should see: the entity's row, and its per-payment rows."""
    ref, currency = payment.provider_ref, payment.currency
    paid_at = t0 + timedelta(minutes=2 if scenario == "paid" else 1)
    if domain == "jobs":
        request = {"provider": "stripe", "session_id": ref, "amount_minor": 5000, "currency": currency}
        paid = {
            "amount_paid_minor": 5000,
            "currency": currency,
            "paid_at": paid_at,
            "payment_note": f"Paid via Stripe - Session: {ref}",
            "transaction_ref": ref,
        }
        unpaid = {"status": "open", "amount_paid_minor": None, "paid_at": None, "payment_note": None}
        details = f"charge_id=ch_1, receipt_number=QK12ABC, session_id={ref}"
        return {
            "paid": (
                {"status": "paid", "payment_status": "paid", **paid},
                [
                    request
                    | {
                        "status": "succeeded",
                        "amount_received_minor": 5000,
                        "paid_at": paid_at,
                        "transaction_details": details,
                    }
                ],
            ),
            "failed": (
                unpaid | {"payment_status": "failed"},
                [request | {"status": "failed", "amount_received_minor": None, "transaction_details": None}],
            ),
            "refunded": (
                {"status": "refunded", "payment_status": "refunded", **paid},
                [request | {"status": "refunded", "amount_received_minor": 5000, "paid_at": paid_at}],
            ),
            "mismatched": (
                unpaid | {"payment_status": "pending"},
                [request | {"status": "pending", "amount_received_minor": None, "paid_at": None}],
            ),
        }[scenario]
    if domain == "bookings":
        paid = {"amount_paid_minor": 5000, "currency": currency, "paid_at": paid_at, "payment_reference": ref}
        unpaid = {"status": "pending", "amount_paid_minor": None, "paid_at": None, "payment_reference": ref}
        return {
            "paid": ({"status": "confirmed", "payment_status": "escrow", **paid}, []),
            "failed": (unpaid | {"payment_status": "failed"}, []),
            "refunded": ({"status": "cancelled", "payment_status": "refunded", **paid}, []),
            "mismatched": (unpaid | {"payment_status": "pending"}, []),
        }[scenario]
    if domain == "invoices":
        record = {
            "provider": "stripe",
            "provider_ref": ref,
            "amount_minor": 5000,
            "currency": currency,
            "paid_at": paid_at,
            "receipt": "QK12ABC",
        }
        return {
            "paid": (
                {"status": "paid", "amount_paid_minor": 5000, "currency": currency, "paid_at": paid_at},
                [record | {"status": "succeeded", "amount_refunded_minor": 0}],
            ),
            "failed": ({"status": "uncollectible", "amount_paid_minor": 0, "paid_at": None}, []),
            "refunded": (
                {"status": "paid", "amount_paid_minor": 5000, "currency": currency, "paid_at": paid_at},
                [record | {"status": "refunded", "amount_refunded_minor": 5000}],
            ),
            "mismatched": ({"status": "open", "amount_paid_minor": 0, "paid_at": None}, []),
        }[scenario]
    if domain == "referrals":
        paid = {
            "paid_at": paid_at,
            "amount_paid_minor": 5000,
            "currency": currency,
            "mpesa_receipt": "QK12ABC",
            "stk_pushes_sent": 1,
            "last_error": None,
        }
        unpaid = {"status": "pending", "paid_at": None, "mpesa_receipt": None, "stk_pushes_sent": 1}
        return {
            "paid": ({"status": "paid", **paid}, []),
            "failed": (unpaid | {"last_error": "Request cancelled by user"}, []),
            "refunded": ({"status": "refunded", **paid}, []),
            "mismatched": (unpaid | {"last_error": None}, []),
        }[scenario]
    assert domain == "enrolments"
    note = f"Paid 5000 USD via Stripe ({ref})"
    return {
        "paid": (
            {
                "state": "enrolled",
                "payment_state": "succeeded",
                "paid_amount_minor": 5000,
                "paid_on": paid_at,
                "receipt_note": note,
                "last_problem": None,
                "payment_attempts": 1,
                "refunded_total_minor": 0,
            },
            [],
        ),
        "failed": (
            {
                "state": "applied",
                "payment_state": "failed",
                "paid_amount_minor": None,
                "last_problem": "Request cancelled by user",
                "payment_attempts": 1,
            },
            [],
        ),
        "refunded": (
            {
                "state": "withdrawn",
                "payment_state": "refunded",
                "paid_amount_minor": 5000,
                "receipt_note": note,
                "refunded_total_minor": 5000,
            },
            [],
        ),
        "mismatched": (
            {
                "state": "applied",
                "payment_state": "pending",
                "paid_amount_minor": None,
                "last_problem": None,
                "payment_attempts": 1,
            },
            [],
        ),
    }[scenario]


async def rows_of(engine: Any, domains: Domains, payment: Any) -> tuple[list[dict], list[dict]]:
    bound = domains.get(payment.domain)
    t, m = bound.main.table, bound.main.mapping
    main = await fetch(
        engine,
        select(t).where(t.c[m.tenant_column] == payment.tenant, t.c[m.key_column] == payment.entity_id),
    )
    children: list[Any] = []
    if bound.per_payment is not None:
        ct, cm = bound.per_payment.table, bound.per_payment.mapping
        children = await fetch(
            engine,
            select(ct).where(
                ct.c[cm.tenant_column] == payment.tenant, ct.c[cm.entity_column] == payment.entity_id
            ),
        )
    return [dict(r._mapping) for r in main], [dict(r._mapping) for r in children]


async def alerts_about(engine: Any, payment: Any) -> list[dict]:
    rows = await fetch(
        engine,
        select(outbox.c.payload).where(
            outbox.c.topic == "paysync.alerts.v1", outbox.c.payload["payment_id"].astext == str(payment.id)
        ),
    )
    return [r.payload for r in rows]


@pytest.mark.parametrize("scenario", ["paid", "failed", "refunded", "mismatched"])
@pytest.mark.parametrize("domain", ["jobs", "bookings", "invoices", "referrals", "enrolments"])
async def test_each_domain_shows_the_right_rows(engine, all_domains, tenant, domain, scenario) -> None:
    provider, currency = PROVIDERS[domain]
    payment = await register_payment(
        engine,
        tenant.id,
        provider=provider,
        domain=domain,
        currency=currency,
        provider_ref=f"ref_{uuid.uuid4().hex[:16]}",
    )
    observations = scenario_observations(payment, scenario)
    await project(engine, observations, all_domains)
    await project(engine, observations[:1], all_domains)  # a redelivery changes nothing

    main, children = await rows_of(engine, all_domains, payment)
    want_main, want_children = expected_rows(domain, scenario, payment, T0)
    assert len(main) == 1
    assert {k: main[0][k] for k in want_main} == want_main
    assert [{k: c[k] for k in w} for c, w in zip(children, want_children, strict=True)] == want_children

    row = await payment_row(engine, payment)
    assert (
        row.status
        == {"paid": "succeeded", "failed": "failed", "refunded": "refunded", "mismatched": "pending"}[
            scenario
        ]
    )
    alerts = await alerts_about(engine, payment)
    if scenario == "mismatched":
        assert row.flags == ["amount_mismatch"] and row.paid_at is None
        assert [(a["kind"], a["entity"]["domain"]) for a in alerts] == [("amount_mismatch", domain)]
        assert (
            f"40.00 {currency} paid for {payment.provider_ref}, but 50.00 {currency}" in alerts[0]["detail"]
        )
    else:
        assert row.flags == [] and alerts == []


async def test_a_mismatch_is_alerted_once_however_often_it_is_seen(engine, domains, tenant) -> None:
    payment = await register_payment(engine, tenant.id, domain="invoices")
    short = observation(payment, S.SUCCEEDED, 1, amount=4000)
    await project(engine, [short], domains)
    await project(engine, [short, observation(payment, S.SUCCEEDED, 2, amount=3000)], domains)
    await project(engine, [observation(payment, S.SUCCEEDED, 3, currency="EUR")], domains)

    alerts = await alerts_about(engine, payment)
    assert sorted(a["kind"] for a in alerts) == ["amount_mismatch", "currency_mismatch"]
    assert alerts[0]["facts"]["expected_amount_minor"] == 5000
    assert (await payment_row(engine, payment)).status == "pending"


async def test_a_referral_follows_its_successful_push_whatever_order_pushes_are_seen(
    engine, domains, tenant
) -> None:
    shown = []
    for order in ("failed first", "paid first"):
        referral = f"ref-{uuid.uuid4().hex[:8]}"
        first = await register_payment(
            engine,
            tenant.id,
            provider="mpesa",
            domain="referrals",
            entity_id=referral,
            currency="KES",
            provider_ref=f"ws_CO_{uuid.uuid4().hex[:12]}",
        )
        second = await register_payment(
            engine,
            tenant.id,
            provider="mpesa",
            domain="referrals",
            entity_id=referral,
            currency="KES",
            provider_ref=f"ws_CO_{uuid.uuid4().hex[:12]}",
        )
        failed = [observation(first, S.FAILED, 1, currency="KES", evidence={"detail": "DS timeout"})]
        paid = [observation(second, S.SUCCEEDED, 5, currency="KES", evidence={"receipt_number": "QK9"})]
        for batch in (failed, paid) if order == "failed first" else (paid, failed):
            await project(engine, batch, domains)
        main, _ = await rows_of(engine, domains, first)
        shown.append({k: main[0][k] for k in ("status", "stk_pushes_sent", "last_error", "mpesa_receipt")})
    assert shown == [{"status": "paid", "stk_pushes_sent": 2, "last_error": None, "mpesa_receipt": "QK9"}] * 2


async def test_an_escrow_the_app_released_is_never_taken_back(engine, domains, tenant) -> None:
    payment = await register_payment(
        engine, tenant.id, provider="paystack", domain="bookings", currency="NGN"
    )
    await project(engine, [observation(payment, S.SUCCEEDED, 1, currency="NGN")], domains)
    async with engine.begin() as conn:  # the service was delivered: the app releases the money
        await conn.execute(
            text(
                "UPDATE bookings SET payment_status = 'released', status = 'completed' "
                "WHERE tenant_id = :t AND booking_id = :b"
            ),
            {"t": tenant.id, "b": payment.entity_id},
        )
    await project(engine, [observation(payment, S.SUCCEEDED, 9, currency="NGN")], domains)  # a late re-check

    main, _ = await rows_of(engine, domains, payment)
    assert (main[0]["status"], main[0]["payment_status"]) == ("completed", "released")


@pytest.mark.parametrize(
    ("table_sql", "mapping", "complaint"),
    [
        (
            None,
            '[d]\ntable = "no_such_table"\nkey_column = "id"\ntenant_column = "tenant_id"',
            "table 'no_such_table' does not exist",
        ),
        (
            "CREATE TABLE {t} (tenant_id text, id text, PRIMARY KEY (tenant_id, id))",
            USER_TABLE + '[d.default]\nstate = "{{status}}"',
            r"has no column\(s\) \['state'\]",
        ),
        (
            "CREATE TABLE {t} (tenant_id text, id text, state text)",
            USER_TABLE + '[d.default]\nstate = "{{status}}"',
            "needs a primary key or unique constraint on \\(tenant_id, id\\)",
        ),
        (
            "CREATE TABLE {t} (tenant_id text, id text, n integer, PRIMARY KEY (tenant_id, id))",
            USER_TABLE + '[d.default]\nn = "{{status}}"',
            "column 'n' .* cannot take {status}",
        ),
        (
            "CREATE TABLE {t} (tenant_id text, id text, n integer, PRIMARY KEY (tenant_id, id))",
            USER_TABLE + '[d.default]\nn = "many"',
            "'many' is not a valid value for column 'n'",
        ),
    ],
)
async def test_a_mapping_that_does_not_fit_the_database_stops_the_start(
    engine, tmp_path, table_sql, mapping, complaint
) -> None:
    table = f"user_table_{uuid.uuid4().hex[:8]}"
    if table_sql:
        async with engine.begin() as conn:
            await conn.execute(text(table_sql.format(t=table)))
    path = tmp_path / "d.toml"
    path.write_text(mapping.format(t=table))
    with pytest.raises(DomainConfigError, match=complaint):
        await Domains(load_domains(path)).bind(engine)
