"""A scripted scenario: three payments per gateway, two paid and one failed, half the webhooks dropped.

Whatever the webhooks did, every final state can be read back the way a reconciler would ask.
"""

from __future__ import annotations

import base64
import contextlib
from datetime import datetime

import httpx

from paysync_core.contracts.common import Verdict
from paysync_core.providers import adapter_for
from paysync_core.providers.mpesa import EAST_AFRICA_TIME
from paysync_core.testing.builders.requests import webhook_request
from paysync_gateway_sim import SimulatorClient, SimulatorError
from paysync_gateway_sim.contracts import Account
from paysync_gateway_sim.testing import WebhookReceiver

STEPS = ("pay", "pay", "fail")
# Fixed ids: with the simulator's seed they fix which webhooks drop, so this scenario replays exactly.
IDS = {"stripe": "scenario-stripe", "paystack": "scenario-paystack", "mpesa": "scenario-mpesa"}


def _fresh(sim: SimulatorClient, provider: str, receiver: WebhookReceiver) -> Account:
    with contextlib.suppress(SimulatorError):  # left over from an earlier run on the same simulator
        sim.delete_account(IDS[provider])
    return sim.create_account(
        provider,
        id=IDS[provider],
        webhook_url=receiver.url(f"/{provider}"),
        faults={"webhooks": {"drop_ratio": 0.5}},
    )


def _stripe_states(
    sim: SimulatorClient, account: Account, refs: list[str], http: httpx.Client
) -> list[tuple]:
    states = []
    for ref in refs:
        session = http.get(
            f"{sim.stripe_base}/v1/checkout/sessions/{ref}",
            params={"expand[]": "payment_intent"},
            headers={"Authorization": f"Bearer {account.secret_key}"},
        ).json()
        intent = session["payment_intent"]
        error = (intent["last_payment_error"] or {}).get("code")
        states.append((session["payment_status"], intent["status"], error))
    return states


def _paystack_states(
    sim: SimulatorClient, account: Account, refs: list[str], http: httpx.Client
) -> list[str]:
    auth = {"Authorization": f"Bearer {account.secret_key}"}
    return [
        http.get(f"{sim.paystack_base}/transaction/verify/{ref}", headers=auth).json()["data"]["status"]
        for ref in refs
    ]


def _mpesa_states(sim: SimulatorClient, account: Account, refs: list[str], http: httpx.Client) -> list[str]:
    token = http.get(
        f"{sim.daraja_base}/oauth/v1/generate",
        params={"grant_type": "client_credentials"},
        auth=(account.consumer_key or "", account.consumer_secret or ""),
    ).json()["access_token"]
    timestamp = datetime.now(EAST_AFRICA_TIME).strftime("%Y%m%d%H%M%S")
    password = base64.b64encode(f"{account.shortcode}{account.passkey}{timestamp}".encode()).decode()
    codes = []
    for ref in refs:
        body = {
            "BusinessShortCode": account.shortcode,
            "Password": password,
            "Timestamp": timestamp,
            "CheckoutRequestID": ref,
        }
        answer = http.post(
            f"{sim.daraja_base}/mpesa/stkpushquery/v1/query",
            json=body,
            headers={"Authorization": f"Bearer {token}"},
        )
        codes.append(answer.json()["ResultCode"])
    return codes


def test_every_final_state_is_readable_though_half_the_webhooks_were_dropped(
    gateway_sim: SimulatorClient, webhook_receiver: WebhookReceiver, http: httpx.Client
) -> None:
    accounts = {p: _fresh(gateway_sim, p, webhook_receiver) for p in IDS}
    refs: dict[str, list[str]] = {}
    for provider, account in accounts.items():
        refs[provider] = []
        for step in STEPS:
            ref = gateway_sim.create_payment(account.id, amount_minor=10_000).ref
            gateway_sim.act(account.id, ref, step)
            refs[provider].append(ref)

    stats = {p: gateway_sim.wait_for_deliveries(a.id).webhooks for p, a in accounts.items()}
    # Stripe: 3 events per paid session, 1 for the failed attempt; Paystack: charge.success only;
    # M-Pesa: one callback per push, failed or not.
    assert {p: s.queued for p, s in stats.items()} == {"stripe": 7, "paystack": 2, "mpesa": 3}
    dropped = sum(s.dropped for s in stats.values())
    delivered = sum(s.delivered for s in stats.values())
    assert dropped + delivered == 12 and 0 < dropped < 12
    for provider, account in accounts.items():
        arrived = webhook_receiver.on(f"/{provider}")
        assert len(arrived) == stats[provider].delivered
        if provider == "paystack":
            for webhook in arrived:
                request = webhook_request(webhook.body, headers=webhook.headers)
                assert (
                    adapter_for("paystack").authenticate(request, {"secret_key": account.secret_key})
                    is Verdict.VERIFIED
                )

    assert _stripe_states(gateway_sim, accounts["stripe"], refs["stripe"], http) == [
        ("paid", "succeeded", None),
        ("paid", "succeeded", None),
        ("unpaid", "requires_payment_method", "card_declined"),
    ]
    assert _paystack_states(gateway_sim, accounts["paystack"], refs["paystack"], http) == [
        "success",
        "success",
        "failed",
    ]
    assert _mpesa_states(gateway_sim, accounts["mpesa"], refs["mpesa"], http) == ["0", "0", "1"]
