"""Popular client libraries, pointed at the simulator, for every call paysync's own clients make.

A library written against the real gateway fails here when the simulator drifts from it: a path
it answers differently, a field its models require. pypaystack2 validates every answer with its
pydantic models and leaves `data` at None when one does not fit, so `data` is checked each time.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from daraja import AsyncMpesa
from daraja.models import MpesaConfig
from pypaystack2 import AsyncPaystackClient
from pypaystack2.enums import Currency, TransactionStatus

from paysync_gateway_sim import SimulatorClient
from paysync_gateway_sim.contracts import Account

pytestmark = pytest.mark.integration


def _paystack(sim: SimulatorClient, secret_key: str) -> AsyncPaystackClient:
    client = AsyncPaystackClient(secret_key=secret_key)
    client.transactions._BASE_URL = sim.paystack_base  # the library's one base URL, at the simulator
    return client


async def test_pypaystack2_initializes_verifies_fetches_and_lists_with_filters_and_pages(
    gateway_sim: SimulatorClient, make_id: Callable[[str], str]
) -> None:
    account = gateway_sim.create_account("paystack", id=make_id("paystack"), rate_limit=0)
    transactions = _paystack(gateway_sim, account.secret_key or "").transactions
    references = [f"ord-{uuid.uuid4().hex[:12]}" for _ in range(3)]
    for reference in references:
        started = await transactions.initialize(
            amount=50_000,
            email="ada@example.com",
            currency=Currency.NGN,
            reference=reference,
            callback_url="https://shop.test/paid",
            metadata={"paysync_domain": "bookings", "paysync_entity_id": reference},
        )
        assert started.status and started.data is not None, started.raw
        assert started.data.reference == reference and started.data.authorization_url
    gateway_sim.pay(account.id, references[0])

    verified = await transactions.verify(references[0])
    assert verified.data is not None, verified.raw
    assert (verified.data.reference, verified.data.status, verified.data.amount) == (
        references[0],
        "success",
        50_000,
    )
    fetched = await transactions.get_transaction(str(verified.data.id))
    assert fetched.data is not None and fetched.data.reference == references[0], fetched.raw

    now = datetime.now(UTC)
    window = {
        "start_date": (now - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%S.000Z"),
        "end_date": (now + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%S.000Z"),
    }
    pages = [await transactions.get_transactions(page=page, pagination=2, **window) for page in (1, 2)]
    for listed in pages:
        assert listed.data is not None, listed.raw
    assert sorted(t.reference for page in pages for t in page.data) == sorted(references)
    assert pages[0].meta and pages[0].meta["pageCount"] == 2
    paid = await transactions.get_transactions(status=TransactionStatus.SUCCESS, **window)
    assert paid.data is not None and [t.reference for t in paid.data] == [references[0]]


class _ToSimulator(httpx.AsyncBaseTransport):
    """Sends what a library addresses to the gateway's own host to the simulator instead."""

    def __init__(self, base: str) -> None:
        self._base = httpx.URL(base)
        self._inner = httpx.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        request.url = self._base.copy_with(path=self._base.path + request.url.path, query=request.url.query)
        return await self._inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self._inner.aclose()


def _daraja_sdk(sim: SimulatorClient, account: Account) -> AsyncMpesa:
    key, secret = account.consumer_key or "", account.consumer_secret or ""
    config = MpesaConfig(consumer_key=key, consumer_secret=secret, passkey=account.passkey, max_retries=0)
    client = AsyncMpesa(config)
    # The SDK builds absolute sandbox URLs; its one HTTP client sends them to the simulator.
    client._client._transport = _ToSimulator(sim.daraja_base)
    return client


@pytest.mark.parametrize("till", [None, "5123456"], ids=["paybill", "buy-goods-till"])
async def test_daraja_sdk_py_gets_a_token_pushes_and_queries(
    gateway_sim: SimulatorClient, make_id: Callable[[str], str], webhook_receiver, till: str | None
) -> None:
    account = gateway_sim.create_account("mpesa", id=make_id("mpesa"), rate_limit=0, till_number=till)
    async with _daraja_sdk(gateway_sim, account) as mpesa:
        assert await mpesa.get_access_token()
        pushed = await mpesa.stk_push(
            {
                "BusinessShortCode": int(account.shortcode or 0),
                "TransactionType": "CustomerBuyGoodsOnline" if till else "CustomerPayBillOnline",
                "Amount": 150,
                "PartyA": 254708374149,
                "PartyB": int(till or account.shortcode or 0),
                "PhoneNumber": 254708374149,
                "CallBackURL": webhook_receiver.url("/daraja-sdk"),
                "AccountReference": "JOB-17",
                "TransactionDesc": "Job payment",
            }
        )
        assert pushed.ResponseCode == "0" and pushed.CheckoutRequestID.startswith("ws_CO_")

        gateway_sim.pay(account.id, pushed.CheckoutRequestID)
        queried = await mpesa.stk_query(
            {"BusinessShortCode": account.shortcode, "CheckoutRequestID": pushed.CheckoutRequestID}
        )
    assert (queried.ResultCode, queried.CheckoutRequestID) == ("0", pushed.CheckoutRequestID)
    assert queried.MerchantRequestID == pushed.MerchantRequestID
    webhook_receiver.wait_for("/daraja-sdk", 1)
