"""The domain mapping: validated at start-up, rendered as typed values or templates."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import pytest

from paysync_core.domain.status import UnifiedStatus
from paysync_status_projector.domains import DomainConfigError, load_domains
from paysync_status_projector.settings import BUILTIN_DOMAINS


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "domains.toml"
    path.write_text(text)
    return path


def test_builtin_jobs_domain_writes_the_paid_note_and_typed_values() -> None:
    jobs = load_domains(BUILTIN_DOMAINS)["jobs"]
    paid_at = datetime(2026, 3, 1, tzinfo=timezone.utc)
    values = jobs.values_for(UnifiedStatus.SUCCEEDED, {
        "provider_title": "Stripe", "session_id": "cs_test_1", "amount_received_minor": 1250,
        "currency": "USD", "paid_at": paid_at, "provider_ref": "cs_test_1"})
    assert values["payment_note"] == "Paid via Stripe - Session: cs_test_1"
    assert values["amount_paid_minor"] == 1250 and values["paid_at"] == paid_at
    assert values["status"] == "paid"
    assert jobs.values_for(UnifiedStatus.PENDING, {}) is None


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        ('[x]\ntable = "t; drop table payments"\nkey_column = "id"\ntenant_column = "tenant_id"', "table must be"),
        ('[x]\ntable = "t"\nkey_column = "Id"\ntenant_column = "tenant_id"', "key_column must be"),
        ('[x]\ntable = "t"\nkey_column = "id"\ntenant_column = "tenant_id"\n[x.on.paid]\nstatus = "p"', "'paid' is not a unified status"),
        ('[x]\ntable = "t"\nkey_column = "id"\ntenant_column = "tenant_id"\n[x.on.succeeded]\n"bad col" = "p"', "column 'bad col'"),
        ('[x]\ntable = "t"\nkey_column = "id"\ntenant_column = "tenant_id"\n[x.on.succeeded]\nnote = "{card_number}"', "unknown name"),
        ('[x]\ntable = "t"\nkey_column = "id"\ntenant_column = "tenant_id"\n[x.on.succeeded]\nn = 5', "values are strings"),
        ("[x\n", "domains.toml"),
    ],
)
def test_invalid_mappings_are_refused_with_a_clear_error(tmp_path, text, complaint) -> None:
    with pytest.raises(DomainConfigError, match=complaint):
        load_domains(write(tmp_path, text))
