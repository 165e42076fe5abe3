"""Gateway budgets: on-demand checks go first; a 429 cuts the rate and pauses; the rate climbs back."""

from __future__ import annotations

from paysync_reconciler.budget import GatewayBudget, Priority, priority


class Clock:
    """A clock the test moves."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def drain(budget: GatewayBudget) -> int:
    taken = 0
    while budget.try_take():
        taken += 1
    return taken


def test_a_sweep_takes_no_token_while_an_on_demand_check_waits_for_one():
    clock = Clock()
    budget = GatewayBudget(rate=10, burst=2, clock=clock)
    assert drain(budget) == 2  # sweeps spent the burst
    with priority(Priority.ON_DEMAND):
        assert not budget.try_take()  # the on-demand caller waits for the next token...
    clock.now += 0.15
    assert not budget.try_take()  # ...and the sweep, though a token is there, lets it go first
    with priority(Priority.ON_DEMAND):
        assert budget.try_take()
    clock.now += 1.0  # nobody on-demand wanted one for a while: sweeps go on
    assert budget.try_take()
    assert budget.taken == {Priority.SWEEP: 3, Priority.ON_DEMAND: 1}


def test_the_rate_is_never_exceeded():
    clock = Clock()
    budget = GatewayBudget(rate=25, burst=5, clock=clock)
    taken = 0
    for _ in range(1000):  # ten seconds in steps of 10 ms
        taken += drain(budget)
        clock.now += 0.01
    assert taken <= 25 * 10 + 5


def test_a_429_halves_the_rate_and_pauses_for_retry_after_then_the_rate_recovers():
    clock = Clock()
    budget = GatewayBudget(rate=20, burst=1, slowdown_factor=0.5, recovery_seconds=10, clock=clock)
    drain(budget)
    budget.slow_down(retry_after=2.0)
    assert budget.current_rate == 10
    clock.now += 1.9
    assert not budget.try_take()  # still within Retry-After
    assert budget.wait_time() > 0
    clock.now += 0.2
    assert budget.try_take()
    clock.now += 5  # half the recovery time: half of the full rate back
    assert 19 <= budget.current_rate <= 20
    clock.now += 10
    assert budget.current_rate == 20
    assert budget.slowdowns == 1


def test_429s_in_the_same_moment_cut_the_rate_once():
    budget = GatewayBudget(rate=20, burst=1, clock=Clock())
    for _ in range(8):  # eight requests in flight, all answered 429
        budget.slow_down()
    assert budget.current_rate == 10 and budget.slowdowns == 1


def test_429s_that_keep_coming_slow_down_to_a_floor_not_to_a_stop():
    clock = Clock()
    budget = GatewayBudget(rate=20, burst=1, recovery_seconds=1000, clock=clock)
    for _ in range(50):
        budget.slow_down()
        clock.now += 1.0
    assert 1.0 <= budget.current_rate < 1.1  # 5% of the rate (plus what it recovered meanwhile)
