"""Payment ids: derived, stable across releases."""

from __future__ import annotations

import uuid

from paysync_core.domain.ids import payment_id_for


def test_a_payment_id_is_pinned_to_its_reference() -> None:
    # Stored ids depend on this exact value: a changed namespace or format must fail here.
    assert payment_id_for("acme", "stripe", "cs_test_1") == uuid.UUID("d3b7cf8d-8cc1-5de5-8ced-82e64cc7a067")


def test_each_part_of_the_reference_changes_the_id() -> None:
    ids = {
        payment_id_for("acme", "stripe", "cs_test_1"),
        payment_id_for("other", "stripe", "cs_test_1"),
        payment_id_for("acme", "paystack", "cs_test_1"),
        payment_id_for("acme", "stripe", "cs_test_2"),
    }
    assert len(ids) == 4
