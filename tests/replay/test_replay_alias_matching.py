"""How a replay matches what named no payment against the aliases it binds, as the projector's parking does.

Unit tests of `paysync_cli.replay_alias.AliasBindings` (no broker, no database): the integration tests
in `test_replay.py` show the same through `paysync replay` against the projector.
"""

from __future__ import annotations

import uuid

from paysync_cli.replay_alias import AliasBindings, Orphan
from paysync_core.contracts import PaymentObservation
from paysync_dev.service_fixtures import stripe_paid


def seen(ref: str, *aliases: str, verified: bool = True) -> PaymentObservation:
    """A Stripe observation of `ref` (its aliases too) in tenant `acme`."""
    return stripe_paid("acme", ref).model_copy(update={"aliases": aliases, "verified": verified})


def key(obs: PaymentObservation) -> tuple[str, str]:
    return (obs.tenant, obs.observation_id)


def test_an_observation_held_is_matched_by_an_alias_learnt_later_and_binds_its_own_in_turn() -> None:
    payment = uuid.uuid4()
    refund = seen("pi_1", "ch_1")  # names the payment intent, which a later record binds
    dispute = seen("ch_1")  # names the charge, which only the refund binds
    bindings = AliasBindings()
    bindings.hold([dispute, refund])
    bindings.learn(payment, "acme", "stripe", [seen("cs_1", "pi_1")])

    matched = bindings.settle([])

    assert matched.payment_of == {key(refund): payment, key(dispute): payment}
    assert matched.replayed == {key(refund): refund, key(dispute): dispute}


def test_a_hint_binds_nothing_and_a_reference_keeps_its_first_binding() -> None:
    first, second = uuid.uuid4(), uuid.uuid4()
    bindings = AliasBindings()
    bindings.learn(first, "acme", "stripe", [seen("cs_1", "pi_1"), seen("cs_2", "pi_2", verified=False)])
    bindings.learn(second, "acme", "stripe", [seen("cs_3", "pi_1")])
    named_by_a_hint, named_twice = seen("pi_2"), seen("pi_1")
    bindings.hold([named_by_a_hint, named_twice])

    assert bindings.settle([]).payment_of == {key(named_twice): first}


def test_an_observation_parked_before_is_matched_once_even_if_the_replay_held_it_too() -> None:
    payment = uuid.uuid4()
    refund = seen("pi_1")
    bindings = AliasBindings()
    bindings.hold([refund])
    bindings.learn(payment, "acme", "stripe", [seen("cs_1", "pi_1")])
    other = seen("pi_1")  # parked before the replay, never replayed
    parked = [Orphan.of(refund), Orphan.of(other), Orphan.of(seen("pi_9"))]

    matched = bindings.settle(parked)

    assert matched.payment_of == {key(refund): payment, key(other): payment}
    assert matched.replayed == {key(refund): refund}


def test_shares_replayed_in_other_processes_match_each_others_observations() -> None:
    payment = uuid.uuid4()
    held_here, bound_there = AliasBindings(), AliasBindings()
    refund = seen("pi_1")
    held_here.hold([refund])
    bound_there.learn(payment, "acme", "stripe", [seen("cs_1", "pi_1")])

    held_here.absorb(bound_there)

    assert held_here.settle([]).payment_of == {key(refund): payment}
