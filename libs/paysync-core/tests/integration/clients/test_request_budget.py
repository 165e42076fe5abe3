"""Every request a client sends takes a token from the caller's budget first."""

from __future__ import annotations

import time

import pytest

from paysync_core.errors import RateLimited
from paysync_core.providers.clients import BudgetExhausted, RetryPolicy
from paysync_core.ratelimit import TokenBucket

pytestmark = pytest.mark.integration


class CountingBucket:
    """A TokenBucket that counts the tokens it handed out."""

    def __init__(self, rate: float, burst: float) -> None:
        self.bucket = TokenBucket(rate, burst)
        self.taken = 0

    def try_take(self, tokens: float = 1.0) -> bool:
        ok = self.bucket.try_take(tokens)
        self.taken += int(ok)
        return ok

    def wait_time(self, tokens: float = 1.0) -> float:
        return self.bucket.wait_time(tokens)


async def test_requests_are_paced_by_the_bucket_retries_and_tokens_included(clients, sim, mpesa_account):
    bucket = CountingBucket(rate=20.0, burst=1.0)  # one now, then one every 50 ms
    client = clients.daraja(mpesa_account, budget=bucket)
    ref = sim.client.create_payment(mpesa_account.id, kind="stk_push", amount_minor=100).ref
    sim.client.burst(mpesa_account.id, "server_error", 2)  # the token request and one query fail once
    before = sim.requests(mpesa_account)

    started = time.monotonic()
    for _ in range(3):
        await client.query_stk_push(ref)
    elapsed = time.monotonic() - started

    sent = sim.requests(mpesa_account) - before
    assert sent == 6  # token (failed, retried) + 3 queries + 1 retry
    assert bucket.taken == sent  # not one request without a token
    assert elapsed >= (sent - 1) / 20.0 * 0.9


async def test_an_exhausted_budget_refuses_before_sending(clients, sim, stripe_account):
    bucket = CountingBucket(rate=0.1, burst=1.0)  # one token, the next in ten seconds
    client = clients.stripe(stripe_account, budget=bucket, policy=RetryPolicy(max_budget_wait=0.5))
    ref = sim.client.create_payment(stripe_account.id, kind="payment_intent").ref
    await client.observe(ref)
    before = sim.requests(stripe_account)

    with pytest.raises(BudgetExhausted) as caught:
        await client.observe(ref)

    assert isinstance(caught.value, RateLimited) and caught.value.retryable
    assert caught.value.retry_after is not None and caught.value.retry_after > 5  # when to come back
    assert sim.requests(stripe_account) == before  # nothing went out over budget
