"""The status merge: rules from docs/status-model.md, and order-independence as a property."""

from __future__ import annotations

import pickle
from dataclasses import astuple, replace
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from paysync_core.contracts import DisputeFact, Evidence, PaymentObservation
from paysync_core.domain.merge import (
    AMOUNT_MISMATCH,
    CURRENCY_MISMATCH,
    Expectation,
    PaymentState,
    apply,
    merge_all,
    observe,
)
from paysync_core.domain.observation import Dispute, Observation
from paysync_core.domain.status import UnifiedStatus as S

T0 = datetime(2026, 1, 1, tzinfo=UTC)
EXPECTED = Expectation(amount_minor=5000, currency="USD")


def obs(
    status: S | None,
    minute: int = 0,
    *,
    oid: str | None = None,
    verified: bool = True,
    amount: int | None = 5000,
    currency: str = "USD",
    refunded: int | None = None,
    dispute: Dispute | None = None,
) -> Observation:
    return Observation(
        observation_id=oid or f"o-{status}-{minute}-{amount}-{refunded}-{verified}",
        provider_time=T0 + timedelta(minutes=minute),
        verified=verified,
        status=status,
        amount_minor=amount,
        currency=currency,
        amount_refunded_minor=refunded,
        dispute=dispute,
    )


def status_of(*observations: Observation, expected: Expectation = EXPECTED) -> S:
    return merge_all(observations, expected).status


def test_nothing_observed_is_pending() -> None:
    assert status_of() is S.PENDING


def test_newer_open_status_wins_whatever_the_order() -> None:
    a, b = obs(S.REQUIRES_ACTION, 1), obs(S.PROCESSING, 2)
    assert status_of(a, b) is S.PROCESSING
    assert status_of(b, a) is S.PROCESSING


def test_failed_attempt_then_retry_shows_the_retry() -> None:
    assert status_of(obs(S.PROCESSING, 5), obs(S.FAILED, 3)) is S.PROCESSING


def test_success_is_never_replaced_by_pending_or_failed() -> None:
    assert status_of(obs(S.SUCCEEDED, 1), obs(S.FAILED, 9), obs(S.PENDING, 10)) is S.SUCCEEDED


def test_unverified_hint_never_marks_money_moved() -> None:
    assert status_of(obs(S.SUCCEEDED, 1, verified=False)) is S.PENDING


def test_undetermined_status_never_overwrites_a_known_one() -> None:
    assert status_of(obs(S.PROCESSING, 1), obs(None, 5)) is S.PROCESSING


def test_amount_mismatch_is_flagged_not_accepted() -> None:
    state = merge_all([obs(S.SUCCEEDED, 1, amount=4000)], EXPECTED)
    assert state.status is S.PENDING
    assert AMOUNT_MISMATCH in state.flags


def test_currency_mismatch_is_flagged_not_accepted() -> None:
    state = merge_all([obs(S.SUCCEEDED, 1, currency="EUR")], EXPECTED)
    assert state.status is S.PENDING
    assert state.flags == {CURRENCY_MISMATCH}


def test_nothing_registered_accepts_any_amount() -> None:
    state = merge_all([obs(S.SUCCEEDED, 1, amount=1)], Expectation())
    assert state.status is S.SUCCEEDED and state.success.amount_minor == 1


def test_refunds_move_forward_from_success_even_when_seen_first() -> None:
    partial = obs(S.PARTIALLY_REFUNDED, 10, refunded=1000)
    full = obs(S.REFUNDED, 20, refunded=5000)
    assert status_of(partial) is S.PARTIALLY_REFUNDED
    assert status_of(full, partial, obs(S.SUCCEEDED, 1)) is S.REFUNDED
    assert merge_all([partial, full], EXPECTED).refunded_minor == 5000


def test_dispute_open_then_won_is_succeeded_and_lost_is_disputed() -> None:
    opened = obs(S.DISPUTED, 5, dispute=Dispute("dp_1", "open"))
    won = obs(S.SUCCEEDED, 9, dispute=Dispute("dp_1", "won"))
    lost = obs(S.DISPUTED, 9, dispute=Dispute("dp_1", "lost"))
    assert status_of(obs(S.SUCCEEDED, 1), opened) is S.DISPUTED
    assert status_of(won, opened) is S.SUCCEEDED
    assert status_of(opened, lost) is S.DISPUTED


def test_paid_at_is_the_earliest_success() -> None:
    state = merge_all([obs(S.SUCCEEDED, 7, oid="late"), obs(S.SUCCEEDED, 2, oid="early")], EXPECTED)
    assert state.paid_at == T0 + timedelta(minutes=2)


def test_state_survives_its_json_form() -> None:
    state = merge_all(
        [
            obs(S.PROCESSING, 1),
            obs(S.SUCCEEDED, 2),
            obs(S.PARTIALLY_REFUNDED, 3, refunded=10),
            obs(S.DISPUTED, 4, dispute=Dispute("dp", "open")),
            obs(S.SUCCEEDED, 5, amount=1),
        ],
        EXPECTED,
    )
    assert PaymentState.from_json(state.to_json()) == state


# -- properties -------------------------------------------------------------------------------

observations = st.builds(
    obs,
    status=st.none() | st.sampled_from(list(S)),
    minute=st.integers(0, 30),
    verified=st.booleans(),
    amount=st.sampled_from([5000, 5000, 4000, None]),
    currency=st.sampled_from(["USD", "USD", "EUR"]),
    refunded=st.none() | st.integers(0, 5000),
    dispute=st.none()
    | st.builds(
        Dispute,
        dispute_id=st.sampled_from(["dp_1", "dp_2"]),
        state=st.sampled_from(["open", "won", "lost"]),
    ),
)


@settings(max_examples=500)
@given(st.lists(observations, max_size=12), st.data())
def test_any_order_and_any_duplication_gives_the_same_state(items, data) -> None:
    reference = merge_all(items, EXPECTED)
    shuffled = data.draw(st.permutations(items))
    duplicated = shuffled + data.draw(st.lists(st.sampled_from(items), max_size=8)) if items else shuffled
    again = data.draw(st.permutations(duplicated))
    assert merge_all(again, EXPECTED) == reference
    assert merge_all(again, EXPECTED).status is reference.status


@settings(max_examples=300)
@given(st.lists(observations, max_size=8), st.lists(observations, max_size=8))
def test_join_of_partial_states_equals_folding_everything(left, right) -> None:
    """Two replicas that each saw part of the stream agree with one that saw all of it."""
    joined = merge_all(left, EXPECTED).join(merge_all(right, EXPECTED))
    assert joined == merge_all(left + right, EXPECTED)


@settings(max_examples=300)
@given(st.lists(observations, max_size=8), st.booleans())
def test_a_state_survives_pickling(items, overridden) -> None:
    """A replay's worker processes ship their states pickled (by fields, in order: `pickled_by_fields`),
    the facts' words included (which `==` does not compare)."""
    told = [replace(o, evidence=(("detail", f"d{n}"), ("session_id", f"cs{n}"))) for n, o in enumerate(items)]
    state = merge_all(told, EXPECTED)
    if overridden:
        state = apply(state, replace(obs(S.CANCELED, 40), override=True), EXPECTED)
    again = pickle.loads(pickle.dumps(state, protocol=pickle.HIGHEST_PROTOCOL))
    assert astuple(again) == astuple(state) and again.status is state.status


@settings(max_examples=300)
@given(st.lists(observations, min_size=1, max_size=10))
def test_money_once_moved_is_never_unseen(items) -> None:
    state = PaymentState()
    moved = False
    for o in items:
        state = apply(state, o, EXPECTED)
        moved = moved or state.status.money_moved
        assert not moved or state.status.money_moved


# -- what the projector shows beside the status (domain rows, status changes) ------------------


def with_evidence(o: Observation, **evidence: str) -> Observation:
    return replace(o, evidence=tuple(sorted({**dict(o.evidence), **evidence}.items())))


def test_refunding_everything_received_is_a_full_refund_however_worded() -> None:
    state = merge_all([obs(S.SUCCEEDED, 1), obs(S.PARTIALLY_REFUNDED, 2, refunded=5000)], EXPECTED)
    assert state.status is S.REFUNDED and state.amount_refunded_minor == 5000


def test_a_partial_refund_reported_without_its_amount_is_still_a_refund() -> None:
    state = merge_all([obs(S.SUCCEEDED, 1), obs(S.PARTIALLY_REFUNDED, 2, refunded=None)], EXPECTED)
    assert state.status is S.PARTIALLY_REFUNDED


def test_a_full_refund_without_its_amount_refunds_what_was_received() -> None:
    state = merge_all([obs(S.SUCCEEDED, 1), obs(S.REFUNDED, 2, refunded=None)], EXPECTED)
    assert state.status is S.REFUNDED and state.amount_refunded_minor == 5000


def test_the_failure_reason_is_shown_only_while_the_payment_stands_failed() -> None:
    failed = with_evidence(obs(S.FAILED, 2), detail="Request cancelled by user")
    assert merge_all([obs(S.PENDING, 1), failed], EXPECTED).failure_detail == "Request cancelled by user"
    assert merge_all([failed, obs(S.PROCESSING, 3)], EXPECTED).failure_detail is None
    assert merge_all([failed, obs(S.SUCCEEDED, 1)], EXPECTED).failure_detail is None


def test_as_of_is_the_newest_verified_fact_and_hints_do_not_move_it() -> None:
    state = merge_all(
        [obs(S.PENDING, 1), obs(S.SUCCEEDED, 4), obs(S.FAILED, 9, verified=False), obs(None, 12)], EXPECTED
    )
    assert state.as_of == T0 + timedelta(minutes=4)


def test_the_earliest_success_keeps_its_receipt() -> None:
    late = with_evidence(obs(S.SUCCEEDED, 7, oid="late"), receipt_number="LATE")
    early = with_evidence(obs(S.SUCCEEDED, 2, oid="early"), receipt_number="EARLY", session_id="cs_1")
    for order in ([late, early], [early, late]):
        success = merge_all(order, EXPECTED).success
        assert (success.evidence_of("receipt_number"), success.evidence_of("session_id")) == ("EARLY", "cs_1")


def test_the_new_facts_survive_the_json_form() -> None:
    state = merge_all(
        [
            with_evidence(obs(S.FAILED, 1), detail="declined"),
            with_evidence(obs(S.SUCCEEDED, 2), charge_id="ch_1"),
            obs(S.PARTIALLY_REFUNDED, 3),
        ],
        EXPECTED,
    )
    again = PaymentState.from_json(state.to_json())
    assert again == state
    assert again.success.evidence == state.success.evidence and again.latest_open.detail == "declined"
    assert (again.as_of, again.refund_seen) == (state.as_of, True)


# -- the wire message, read by the merge ------------------------------------------------------


def test_the_wire_message_becomes_what_the_merge_reads() -> None:
    message = PaymentObservation(
        observation_id="evt_1",
        tenant="acme",
        provider="stripe",
        provider_ref="cs_test_1",
        status=S.SUCCEEDED,
        amount_minor=5000,
        currency="USD",
        amount_refunded_minor=0,
        dispute=DisputeFact(dispute_id="dp_1", state="won"),
        provider_time=T0,
        source="webhook",
        verified=True,
        evidence=Evidence(session_id="cs_test_1", raw_offset=7, detail="ok"),
        observed_at=T0 + timedelta(seconds=1),
    )
    assert message.to_domain() == Observation(
        observation_id="evt_1",
        provider_time=T0,
        verified=True,
        status=S.SUCCEEDED,
        amount_minor=5000,
        currency="USD",
        amount_refunded_minor=0,
        dispute=Dispute("dp_1", "won"),
        evidence=(("detail", "ok"), ("raw_offset", "7"), ("session_id", "cs_test_1")),
    )
    state = merge_all([message.to_domain()], EXPECTED)
    assert (state.status, state.success.evidence_of("raw_offset")) == (S.SUCCEEDED, "7")


# -- operator overrides -----------------------------------------------------------------------


def override(status: S, minute: int) -> Observation:
    return replace(obs(status, minute, oid=f"override-{status}-{minute}", amount=None), override=True)


def test_an_override_sets_the_status_and_older_gateway_facts_never_undo_it() -> None:
    state = merge_all([obs(S.PENDING, 1), override(S.FAILED, 10), obs(S.SUCCEEDED, 5)], EXPECTED)
    assert state.status is S.FAILED and state.gateway_status is S.SUCCEEDED
    assert not state.override_contradicted


def test_a_newer_gateway_fact_that_disagrees_contradicts_the_override_without_changing_it() -> None:
    state = merge_all([override(S.SUCCEEDED, 10), obs(S.FAILED, 11)], EXPECTED)
    assert state.status is S.SUCCEEDED and state.override_contradicted
    agrees = merge_all([override(S.SUCCEEDED, 10), obs(S.SUCCEEDED, 11)], EXPECTED)
    assert agrees.status is S.SUCCEEDED and not agrees.override_contradicted


def test_the_newest_override_wins_and_the_state_keeps_it_through_json() -> None:
    state = merge_all([override(S.SUCCEEDED, 20), override(S.CANCELED, 10), obs(S.PENDING, 1)], EXPECTED)
    assert state.status is S.SUCCEEDED
    assert PaymentState.from_json(state.to_json()) == state


overrides = st.builds(override, status=st.sampled_from(list(S)), minute=st.integers(0, 30))
with_overrides = st.lists(observations | overrides, min_size=1, max_size=12)


@settings(max_examples=500)
@given(with_overrides, st.data())
def test_with_overrides_any_order_and_duplication_gives_the_same_state(items, data) -> None:
    reference = merge_all(items, EXPECTED)
    again = data.draw(st.permutations(items + data.draw(st.lists(st.sampled_from(items), max_size=4))))
    assert merge_all(again, EXPECTED) == reference


@settings(max_examples=500)
@given(st.lists(observations, max_size=10), st.sampled_from(list(S)), st.lists(observations, max_size=6))
def test_an_override_holds_against_every_older_observation(before, status, older_after) -> None:
    """Observations older than the override, arriving before or after it, never change what it set."""
    late = override(status, 31)  # newer than every generated observation (minutes 0..30)
    state = merge_all([*before, late, *older_after], EXPECTED)
    assert state.status is status and not state.override_contradicted


@settings(max_examples=500)
@given(st.lists(observations, max_size=10), st.sampled_from(list(S)), observations)
def test_a_newer_verified_fact_contradicts_exactly_when_the_gateway_status_differs(
    items, status, newer
) -> None:
    early = override(status, -1)  # older than every generated observation
    state = merge_all([*items, early, newer], EXPECTED)
    assert state.status is status
    gateway = merge_all([*items, newer], EXPECTED)
    moved = gateway.as_of is not None
    assert state.override_contradicted == (moved and gateway.status is not status)


successes = st.builds(
    obs,
    status=st.just(S.SUCCEEDED),
    minute=st.integers(0, 30),
    amount=st.sampled_from([5000, 5000, 4000, None]),
    currency=st.sampled_from(["USD", "USD", "EUR"]),
)


@settings(max_examples=500)
@given(st.lists(successes | observations | overrides, max_size=10), successes | observations)
def test_folding_one_observation_is_joining_what_it_establishes(before, one) -> None:
    """`apply` builds a success's join directly (the usual observation): the same state as the join."""
    state = merge_all(before, EXPECTED)
    assert apply(state, one, EXPECTED) == state.join(observe(one, EXPECTED))
