"""The circuit breaker: open after repeated failures, one trial after the cool-down, closed on success."""

from __future__ import annotations

from paysync_reconciler.breaker import CircuitBreaker, CircuitState


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_it_opens_after_the_threshold_and_then_refuses_calls():
    breaker = CircuitBreaker(threshold=3, cooldown=30, clock=Clock())
    assert [breaker.record_failure() for _ in range(3)] == [False, False, True]
    assert breaker.state is CircuitState.OPEN and not breaker.allow()
    assert breaker.retry_after() == 30


def test_a_success_resets_the_count_of_failures_in_a_row():
    breaker = CircuitBreaker(threshold=2, cooldown=30, clock=Clock())
    breaker.record_failure()
    assert breaker.record_success() is False
    assert breaker.record_failure() is False and breaker.state is CircuitState.CLOSED


def test_after_the_cool_down_one_trial_goes_out_and_decides():
    clock = Clock()
    breaker = CircuitBreaker(threshold=1, cooldown=10, clock=clock)
    assert breaker.record_failure() is True
    clock.now = 10
    assert breaker.allow() and not breaker.allow()  # one trial at a time
    assert breaker.record_failure() is False  # failed trial: open again, not a new incident
    assert breaker.state is CircuitState.OPEN and not breaker.allow()
    clock.now = 20
    assert breaker.allow()
    assert breaker.record_success() is True  # closed: the incident is over
    assert breaker.allow() and breaker.allow()
