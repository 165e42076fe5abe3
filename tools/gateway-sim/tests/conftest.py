"""Helpers shared by the simulator's tests: gateway HTTP clients the way integrators call them."""

from __future__ import annotations

import base64
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx
import pytest

from paysync_core.providers.mpesa import EAST_AFRICA_TIME
from paysync_gateway_sim import SimulatorClient
from paysync_gateway_sim.contracts import Account


def unique(prefix: str) -> str:
    """An account id no other test uses."""
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def make_id() -> Callable[[str], str]:
    """Make account ids no other test uses."""
    return unique


@dataclass
class Daraja:
    """A Daraja integrator: OAuth, then STK Push and its query with the documented password."""

    http: httpx.Client
    account: Account

    def token(self) -> str:
        response = self.http.get(
            "/oauth/v1/generate",
            params={"grant_type": "client_credentials"},
            auth=(self.account.consumer_key or "", self.account.consumer_secret or ""),
        )
        assert response.status_code == 200, response.text
        return response.json()["access_token"]

    def credentials(self) -> dict[str, str]:
        timestamp = datetime.now(EAST_AFRICA_TIME).strftime("%Y%m%d%H%M%S")
        raw = f"{self.account.shortcode}{self.account.passkey}{timestamp}"
        return {
            "BusinessShortCode": self.account.shortcode or "",
            "Timestamp": timestamp,
            "Password": base64.b64encode(raw.encode()).decode(),
        }

    def push(
        self,
        token: str,
        *,
        phone: str = "254708374149",
        amount: int = 10,
        callback: str = "https://example.com/cb",
        **fields: Any,
    ) -> httpx.Response:
        body: dict[str, Any] = {
            **self.credentials(),
            "TransactionType": "CustomerPayBillOnline",
            "Amount": amount,
            "PartyA": phone,
            "PartyB": self.account.shortcode,
            "PhoneNumber": phone,
            "CallBackURL": callback,
            "AccountReference": "INV-1",
            "TransactionDesc": "Job payment",
            **fields,
        }
        return self.http.post(
            "/mpesa/stkpush/v1/processrequest", json=body, headers={"Authorization": f"Bearer {token}"}
        )

    def query(self, token: str, checkout_request_id: str) -> httpx.Response:
        body = {**self.credentials(), "CheckoutRequestID": checkout_request_id}
        return self.http.post(
            "/mpesa/stkpushquery/v1/query", json=body, headers={"Authorization": f"Bearer {token}"}
        )


@pytest.fixture
def daraja(gateway_sim: SimulatorClient) -> Iterator[Daraja]:
    """A fresh Daraja app on the simulator and a client for it."""
    account = gateway_sim.create_account("mpesa", id=unique("mpesa"))
    with httpx.Client(base_url=gateway_sim.daraja_base, timeout=5) as http:
        yield Daraja(http, account)


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    """A plain HTTP client."""
    with httpx.Client(timeout=5) as client:
        yield client
