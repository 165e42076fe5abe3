"""API-side faults: the rate limiter and its over-limit count, commanded bursts, seeded ratios."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import httpx

from paysync_gateway_sim import SimulatorClient, SimulatorError


def test_stripe_default_limit_refuses_the_26th_request_in_a_second_and_counts_it(
    gateway_sim: SimulatorClient, make_id: Callable[[str], str], http: httpx.Client
) -> None:
    account = gateway_sim.create_account("stripe", id=make_id("stripe"))
    assert account.rate_limit == 25  # Stripe's documented test-mode limit
    auth = {"Authorization": f"Bearer {account.secret_key}"}

    def burst() -> list[httpx.Response]:  # 40 at once: far faster than the 25/s refill on any host
        with ThreadPoolExecutor(max_workers=40) as pool:
            return list(
                pool.map(lambda _: http.get(f"{gateway_sim.stripe_base}/v1/events", headers=auth), range(40))
            )

    started = time.monotonic()
    answers = burst()
    while not any(a.status_code == 429 for a in answers) and len(answers) < 400:
        answers += burst()  # a host so stalled that the bucket refilled between requests: press on
    elapsed = time.monotonic() - started

    refused = [a for a in answers if a.status_code == 429]
    assert refused, "going on faster than the limit is refused"
    assert len(answers) - len(refused) >= 25  # the bucket starts full: a second's worth served
    assert len(answers) - len(refused) <= 25 + elapsed * 25 + 1  # a second's worth, then what refilled
    assert refused[0].json()["error"]["code"] == "rate_limit"
    assert refused[0].json()["error"]["type"] == "invalid_request_error"
    assert refused[0].headers["stripe-should-retry"] == "true"
    api = gateway_sim.account_stats(account.id).api
    assert (api.requests, api.over_limit, api.served) == (
        len(answers),
        len(refused),
        len(answers) - len(refused),
    )


def test_a_client_that_paces_itself_is_never_over_the_limit(
    gateway_sim: SimulatorClient, make_id: Callable[[str], str], http: httpx.Client
) -> None:
    account = gateway_sim.create_account("paystack", id=make_id("paystack"), rate_limit=40)
    auth = {"Authorization": f"Bearer {account.secret_key}"}
    sent = time.monotonic() - 1
    for _ in range(48):  # more than the bucket holds, never faster than 32 per second
        time.sleep(max(0.0, sent + 1 / 32 - time.monotonic()))  # after a stall: no catching up
        sent = time.monotonic()
        assert http.get(f"{gateway_sim.paystack_base}/transaction", headers=auth).status_code == 200
    assert gateway_sim.account_stats(account.id).api.over_limit == 0


def test_bursts_answer_the_next_requests_in_each_gateways_own_error_shape(
    gateway_sim: SimulatorClient, make_id: Callable[[str], str], http: httpx.Client, daraja
) -> None:
    stripe_account = gateway_sim.create_account("stripe", id=make_id("stripe"))
    paystack_account = gateway_sim.create_account("paystack", id=make_id("paystack"))

    def stripe_get() -> httpx.Response:
        auth = {"Authorization": f"Bearer {stripe_account.secret_key}"}
        return http.get(f"{gateway_sim.stripe_base}/v1/events", headers=auth)

    def paystack_get() -> httpx.Response:
        auth = {"Authorization": f"Bearer {paystack_account.secret_key}"}
        return http.get(f"{gateway_sim.paystack_base}/transaction", headers=auth)

    gateway_sim.burst(stripe_account.id, "rate_limit", 2)
    gateway_sim.burst(stripe_account.id, "server_error", 1)
    assert [stripe_get().status_code for _ in range(4)] == [429, 429, 500, 200]
    assert stripe_get().status_code == 200
    gateway_sim.burst(stripe_account.id, "server_error", 1)
    assert stripe_get().json()["error"]["type"] == "api_error"

    gateway_sim.burst(paystack_account.id, "rate_limit", 1)
    limited = paystack_get()
    assert (
        limited.status_code == 429 and limited.json()["status"] is False and "retry-after" in limited.headers
    )

    token = daraja.token()
    gateway_sim.burst(daraja.account.id, "rate_limit", 1)
    gateway_sim.burst(daraja.account.id, "quota", 1)
    spike, quota = daraja.push(token).json(), daraja.push(token).json()
    assert (spike["errorCode"], spike["errorMessage"]) == (
        "500.003.02",
        "Error Occurred: Spike Arrest Violation",
    )
    assert (quota["errorCode"], quota["errorMessage"]) == ("500.003.03", "Error Occurred: Quota Violation")

    stripe_api = gateway_sim.account_stats(stripe_account.id).api
    assert (stripe_api.injected_rate_limit, stripe_api.injected_server_error, stripe_api.over_limit) == (
        2,
        2,
        0,
    )
    assert gateway_sim.account_stats(daraja.account.id).api.injected_quota == 1


def test_ratio_faults_follow_the_seed(gateway_sim: SimulatorClient, http: httpx.Client) -> None:
    def outcomes(account_id: str) -> list[int]:
        with contextlib.suppress(SimulatorError):  # recreated with the same id: the same generator
            gateway_sim.delete_account(account_id)
        account = gateway_sim.create_account(
            "stripe",
            id=account_id,
            rate_limit=0,
            faults={"api": {"rate_limit_ratio": 0.3, "server_error_ratio": 0.2}},
        )
        auth = {"Authorization": f"Bearer {account.secret_key}"}
        return [http.get(f"{gateway_sim.stripe_base}/v1/events", headers=auth).status_code for _ in range(30)]

    first, again = outcomes("seeded-ratio-check"), outcomes("seeded-ratio-check")

    assert first == again  # same seed and account: the same requests fail
    assert {429, 500, 200} <= set(first)


def test_requests_are_counted_per_operation_refused_ones_included(
    gateway_sim: SimulatorClient, make_id: Callable[[str], str], http: httpx.Client
) -> None:
    stripe = gateway_sim.create_account("stripe", id=make_id("stripe"))
    paystack = gateway_sim.create_account("paystack", id=make_id("paystack"))
    intent = gateway_sim.create_payment(
        stripe.id, kind="payment_intent", amount_minor=500, currency="usd"
    ).ref
    stripe_auth = {"Authorization": f"Bearer {stripe.secret_key}"}
    for _ in range(3):
        http.get(f"{gateway_sim.stripe_base}/v1/events", headers=stripe_auth)
    gateway_sim.burst(stripe.id, "server_error", 1)
    assert (
        http.get(f"{gateway_sim.stripe_base}/v1/payment_intents/{intent}", headers=stripe_auth).status_code
        == 500
    )
    http.get(f"{gateway_sim.stripe_base}/v1/payment_intents/{intent}", headers=stripe_auth)
    http.get(
        f"{gateway_sim.paystack_base}/transaction", headers={"Authorization": f"Bearer {paystack.secret_key}"}
    )

    stats = gateway_sim.stats()
    assert stats.accounts[stripe.id].api.by_operation == {
        "GET /v1/events": 3,
        "GET /v1/payment_intents/{intent_id}": 2,
    }
    assert stats.accounts[paystack.id].api.by_operation == {"GET /transaction": 1}
    assert stats.total.api.by_operation["GET /v1/events"] >= 3
