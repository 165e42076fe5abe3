"""The domain mapping: validated at start-up, rendered as typed values or templates."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from paysync_core.domain.status import UnifiedStatus as S
from paysync_core.domains import DomainConfigError, load_domains
from paysync_status_projector.settings import BUILTIN_DOMAINS

HEAD = '[x]\ntable = "t"\nkey_column = "id"\ntenant_column = "tenant_id"\n'


def write(tmp_path: Path, text: str, name: str = "domains.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_builtin_domains_are_the_four_from_the_field_reports() -> None:
    assert sorted(load_domains(BUILTIN_DOMAINS)) == ["bookings", "invoices", "jobs", "referrals"]


def test_builtin_jobs_domain_writes_the_paid_note_and_typed_values() -> None:
    jobs = load_domains(BUILTIN_DOMAINS)["jobs"]
    paid_at = datetime(2026, 3, 1, tzinfo=UTC)
    values = jobs.values_for(
        S.SUCCEEDED,
        {
            "status": "succeeded",
            "provider_title": "Stripe",
            "session_id": "cs_test_1",
            "amount_received_minor": 1250,
            "currency": "USD",
            "paid_at": paid_at,
            "provider_ref": "cs_test_1",
        },
    )
    assert values["payment_note"] == "Paid via Stripe - Session: cs_test_1"
    assert values["amount_paid_minor"] == 1250 and values["paid_at"] == paid_at
    assert values["status"] == "paid" and values["payment_status"] == "paid"


def test_before_money_moves_only_the_payment_status_of_a_job_is_written() -> None:
    jobs = load_domains(BUILTIN_DOMAINS)["jobs"]
    assert jobs.values_for(S.PROCESSING, {"status": "processing"}) == {"payment_status": "processing"}


def test_a_refund_keeps_what_the_success_wrote_and_adds_its_own() -> None:
    jobs = load_domains(BUILTIN_DOMAINS)["jobs"]
    values = jobs.values_for(
        S.REFUNDED,
        {
            "status": "refunded",
            "provider_title": "Stripe",
            "session_id": "cs_1",
            "amount_received_minor": 100,
        },
    )
    assert values["status"] == "refunded" and values["payment_status"] == "refunded"
    assert values["payment_note"] == "Paid via Stripe - Session: cs_1" and values["amount_paid_minor"] == 100


def test_invoice_payment_records_exist_only_once_money_moved() -> None:
    records = load_domains(BUILTIN_DOMAINS)["invoices"].per_payment
    assert records is not None
    assert [s for s in S if records.has_row(s)] == [S.SUCCEEDED, S.PARTIALLY_REFUNDED, S.REFUNDED, S.DISPUTED]


def test_a_fifth_domain_is_added_beside_the_builtin_ones(tmp_path) -> None:
    extra = write(tmp_path, HEAD.replace("[x]", "[courses]") + '[courses.on.succeeded]\nstate = "enrolled"\n')
    assert sorted(load_domains(BUILTIN_DOMAINS, extra)) == [
        "bookings",
        "courses",
        "invoices",
        "jobs",
        "referrals",
    ]


def test_a_domain_defined_twice_is_refused(tmp_path) -> None:
    again = write(tmp_path, HEAD.replace("[x]", "[jobs]"))
    with pytest.raises(DomainConfigError, match="'jobs' is defined twice"):
        load_domains(BUILTIN_DOMAINS, again)


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        (
            '[x]\ntable = "t; drop table payments"\nkey_column = "id"\ntenant_column = "tenant_id"',
            "table must be",
        ),
        ('[x]\ntable = "t"\nkey_column = "Id"\ntenant_column = "tenant_id"', "key_column must be"),
        (HEAD + 'schema = "a b"', "schema must be"),
        (HEAD + '[x.on.paid]\nstatus = "p"', "'paid' is not a unified status"),
        (HEAD + '[x.on.succeeded]\n"bad col" = "p"', "column 'bad col'"),
        (HEAD + '[x.on.succeeded]\nnote = "{card_number}"', "unknown name"),
        (HEAD + "[x.on.succeeded]\nn = 5", "values are strings"),
        (HEAD + '[x.on.succeeded]\nn = "{amount_minor:,}"', "without a format spec"),
        (HEAD + 'tabel = "typo"', r"unknown key\(s\) \['tabel'\]"),
        (HEAD + '[x.on.succeeded]\nid = "{provider_ref}"', "'id' is filled by paysync"),
        # Written for processing only: after processing -> pending (newer) the row would still say processing.
        (HEAD + '[x.on.processing]\nstate = "busy"', "'state' is written before money moves but not for"),
        # Written for refunded only: a dispute after the refund would keep it, a dispute alone would not.
        (HEAD + '[x.on.refunded]\nnote = "gone"', r"'note' is not written for \['succeeded'"),
        (HEAD + '[x.counters]\nn = { count = "observations" }', 'count = "payments" is the only count'),
        (HEAD + '[x.counters]\nn = { sum = "paid_at" }', "can sum one of"),
        (
            HEAD + '[x.counters]\nn = { count = "payments" }\n[x.default]\nn = "1"',
            "are counters and also written",
        ),
        (
            HEAD + 'paid = { column = "state", values = ["paid"] }\n[x.on.succeeded]\nstate = "done"',
            "on.succeeded must write 'state' as one of the paid values",
        ),
        (
            HEAD + '[x.per_payment]\ntable = "c"\nkey_column = "pid"\ntenant_column = "tenant_id"',
            "entity_column must be",
        ),
        (HEAD + '[x.keep]\nstate = "released"', "keep.state: a list"),
        ("[x\n", "domains.toml"),
    ],
)
def test_invalid_mappings_are_refused_with_a_clear_error(tmp_path, text, complaint) -> None:
    with pytest.raises(DomainConfigError, match=complaint):
        load_domains(write(tmp_path, text))
