"""Listed pages read into observations exactly as webhooks are; the cheap references match them."""

from __future__ import annotations

import json
import multiprocessing

import pytest

from paysync_core.contracts import PaymentObservation, Provider
from paysync_core.domain.status import UnifiedStatus as S
from paysync_core.testing.builders import paystack as paystack_build
from paysync_core.testing.builders import stripe as stripe_build
from paysync_reconciler.listing import PoolReader, read_pages
from paysync_reconciler.stripe_events import refs_of


def events_page() -> tuple[bytes, list[dict]]:
    session = stripe_build.checkout_session(
        amount_total=2000, status="complete", payment_status="paid", payment_intent="pi_test_1"
    )
    intent = stripe_build.payment_intent(
        id="pi_test_1", status="succeeded", amount=2000, amount_received=2000
    )
    events = [
        stripe_build.stripe_event("checkout.session.completed", session),
        stripe_build.stripe_event("payment_intent.succeeded", intent),
        stripe_build.stripe_event("customer.created", {"id": "cus_1", "object": "customer"}),
    ]
    return json.dumps({"object": "list", "data": events, "has_more": False}).encode(), events


def test_a_stripe_events_page_reads_as_its_webhooks_would():
    body, events = events_page()
    (listed,) = read_pages("stripe", "acme", [body])
    assert [item.status for item in listed] == [S.SUCCEEDED, S.SUCCEEDED]  # the unmapped type is skipped
    session = PaymentObservation.from_bytes(listed[0].value)
    assert session.observation_id == events[0]["id"] and session.source == "reconcile" and session.verified
    assert session.aliases == ("pi_test_1",) and listed[0].refs == (session.provider_ref, "pi_test_1")
    assert listed[0].key == f"acme:stripe:{session.provider_ref}".encode()


def test_the_cheap_references_of_an_event_cover_what_its_observation_is_about():
    body, events = events_page()
    (listed,) = read_pages("stripe", "acme", [body])
    for event, item in zip(events, listed, strict=False):
        assert set(item.refs) <= set(refs_of(event))


def test_a_paystack_page_reads_each_transaction_as_verify_would():
    paid = paystack_build.paystack_transaction(reference="ref-1", amount=50_000, status="success")
    open_ = paystack_build.paystack_transaction(reference="ref-2", amount=50_000, status="abandoned")
    (listed,) = read_pages(Provider.PAYSTACK.value, "acme", [json.dumps([paid, open_]).encode()])
    assert [(i.provider_ref, i.status) for i in listed] == [("ref-1", S.SUCCEEDED), ("ref-2", S.PENDING)]


async def test_the_page_readers_are_gone_when_closed_and_none_starts_after() -> None:
    reader = PoolReader(workers=1)
    page, _ = events_page()
    [listed] = await reader(Provider.STRIPE, "t-x", [page])  # a worker process reads it
    assert len(listed) == 2 and multiprocessing.active_children()
    reader.close()
    assert multiprocessing.active_children() == []  # exited, not left to the interpreter's exit
    with pytest.raises(RuntimeError):
        await reader(Provider.STRIPE, "t-x", [page])


async def test_started_page_readers_are_spawned_before_the_first_page_and_stop_when_closed() -> None:
    reader = PoolReader(workers=1)
    reader.start()  # the service's start-up: the first sweep does not wait for an interpreter to start
    assert multiprocessing.active_children()
    page, _ = events_page()
    [listed] = await reader(Provider.STRIPE, "t-x", [page])
    assert len(listed) == 2
    reader.close()
    assert multiprocessing.active_children() == []
