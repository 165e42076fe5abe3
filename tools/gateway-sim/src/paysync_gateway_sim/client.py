"""`SimulatorClient`: a typed, synchronous client of the control API, for tests, the demo and benchmarks."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import httpx

from paysync_gateway_sim.contracts import (
    Account,
    AccountSpec,
    AccountStats,
    AccountUpdate,
    Action,
    ActionRequest,
    ActionResult,
    ApiFaults,
    Burst,
    BurstKind,
    DeliveryRecord,
    Faults,
    PaymentSpec,
    PaymentView,
    Provider,
    Stats,
    WebhookFaults,
)

#: A running simulator to use instead of starting one (tests, CLI).
URL_ENV = "PAYSYNC_GATEWAY_SIM_URL"


class SimulatorError(Exception):
    """The control API refused: 404 unknown account or payment, 409 step not allowed, 422 invalid input."""

    def __init__(self, status: int, detail: object) -> None:
        super().__init__(f"{status}: {detail}")
        self.status = status
        self.detail = detail


class SimulatorClient:
    """Drive a running simulator; `stripe_base`, `paystack_base`, `daraja_base` are the gateway base URLs."""

    def __init__(self, base_url: str, *, timeout: float = 10.0) -> None:
        self.base_url = base_url.rstrip("/")
        self._http = httpx.Client(base_url=f"{self.base_url}/_sim", timeout=timeout)

    @property
    def stripe_base(self) -> str:
        """Stripe's API base (requests go to `{stripe_base}/v1/...`)."""
        return f"{self.base_url}/stripe"

    @property
    def paystack_base(self) -> str:
        """Paystack's API base (`{paystack_base}/transaction/...`)."""
        return f"{self.base_url}/paystack"

    @property
    def daraja_base(self) -> str:
        """Daraja's API base (`{daraja_base}/oauth/v1/generate`, `{daraja_base}/mpesa/...`)."""
        return f"{self.base_url}/daraja"

    def base_for(self, provider: Provider | str) -> str:
        """The API base of one gateway."""
        return {"stripe": self.stripe_base, "paystack": self.paystack_base, "mpesa": self.daraja_base}[
            Provider(provider).value
        ]

    def close(self) -> None:
        """Release the connection pool."""
        self._http.close()

    def __enter__(self) -> SimulatorClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def _call(
        self, method: str, path: str, *, body: Any = None, params: Mapping[str, Any] | None = None
    ) -> Any:
        payload = body.model_dump(mode="json", exclude_unset=True) if hasattr(body, "model_dump") else body
        query = {k: v for k, v in (params or {}).items() if v is not None}
        response = self._http.request(method, path, json=payload, params=query)
        if response.status_code >= 400:
            try:
                detail = response.json().get("detail")
            except ValueError:
                detail = response.text
            raise SimulatorError(response.status_code, detail)
        return response.json() if response.content else None

    # --- the simulator ---------------------------------------------------------------------------

    def health(self) -> dict[str, Any]:
        """Liveness and the seed in force."""
        return self._call("GET", "/health")

    def reset(self, seed: int | None = None) -> None:
        """Forget everything (every test sharing this simulator loses its accounts)."""
        self._call("POST", "/reset", body={"seed": seed})

    def advance(self, seconds: float, account: str | None = None) -> None:
        """Move simulated time forward (one account's, or all) and apply expiries."""
        self._call("POST", "/clock/advance", body={"seconds": seconds, "account": account})

    # --- accounts --------------------------------------------------------------------------------

    def create_account(self, provider: Provider | str, **fields: Any) -> Account:
        """A new account; see AccountSpec for the fields (credentials left out are generated)."""
        spec = AccountSpec(provider=Provider(provider), **fields)
        return Account.model_validate(self._call("POST", "/accounts", body=spec))

    def account(self, account_id: str) -> Account:
        """One account, credentials included."""
        return Account.model_validate(self._call("GET", f"/accounts/{account_id}"))

    def update_account(self, account_id: str, **fields: Any) -> Account:
        """Change webhook_url, rate_limit or lock_subscriber."""
        update = AccountUpdate(**fields)
        return Account.model_validate(self._call("PATCH", f"/accounts/{account_id}", body=update))

    def delete_account(self, account_id: str) -> None:
        """Forget an account."""
        self._call("DELETE", f"/accounts/{account_id}")

    def set_faults(
        self,
        account_id: str,
        *,
        webhooks: WebhookFaults | Mapping[str, Any] | None = None,
        api: ApiFaults | Mapping[str, Any] | None = None,
    ) -> Account:
        """Replace the account's faults (parts left out go back to no faults)."""
        faults = Faults(
            webhooks=WebhookFaults.model_validate(webhooks or {}), api=ApiFaults.model_validate(api or {})
        )
        answer = self._call("PUT", f"/accounts/{account_id}/faults", body=faults.model_dump())
        return Account.model_validate(answer)

    def burst(self, account_id: str, kind: BurstKind | str, count: int) -> None:
        """Answer the account's next `count` API requests with `kind` (rate_limit, server_error, quota)."""
        burst = Burst(kind=BurstKind(kind), count=count)
        self._call("POST", f"/accounts/{account_id}/faults/burst", body=burst)

    def expire_tokens(self, account_id: str) -> int:
        """Expire the account's Daraja access tokens now; returns how many."""
        return self._call("POST", f"/accounts/{account_id}/tokens/expire")["expired"]

    # --- payments and scenarios --------------------------------------------------------------------

    def create_payment(self, account_id: str, **spec: Any) -> PaymentView:
        """A payment made directly; see PaymentSpec (amount_minor, currency, metadata, kind, phone…)."""
        result = self._call("POST", f"/accounts/{account_id}/payments", body=PaymentSpec(**spec))
        return ActionResult.model_validate(result).payment

    def payment(self, account_id: str, ref: str) -> PaymentView:
        """One payment's state."""
        return PaymentView.model_validate(self._call("GET", f"/accounts/{account_id}/payments/{ref}"))

    def payments(self, account_id: str) -> list[PaymentView]:
        """Every payment of the account."""
        return [PaymentView.model_validate(p) for p in self._call("GET", f"/accounts/{account_id}/payments")]

    def act(self, account_id: str, ref: str, action: Action | str, **options: Any) -> ActionResult:
        """A scenario step; see ActionRequest for options (amount_minor, outcome, result_code, retry)."""
        body = ActionRequest(**options)
        path = f"/accounts/{account_id}/payments/{ref}/{Action(action).value}"
        return ActionResult.model_validate(self._call("POST", path, body=body))

    def pay(self, account_id: str, ref: str) -> ActionResult:
        """The customer pays."""
        return self.act(account_id, ref, Action.PAY)

    def fail(self, account_id: str, ref: str, **options: Any) -> ActionResult:
        """The payment attempt fails (declined card, insufficient M-Pesa balance…)."""
        return self.act(account_id, ref, Action.FAIL, **options)

    def cancel(self, account_id: str, ref: str) -> ActionResult:
        """The customer (or merchant) cancels."""
        return self.act(account_id, ref, Action.CANCEL)

    def refund(self, account_id: str, ref: str, amount_minor: int | None = None) -> ActionResult:
        """Refund part (`amount_minor`) or the rest of a paid payment."""
        return self.act(account_id, ref, Action.REFUND, amount_minor=amount_minor)

    def dispute(self, account_id: str, ref: str, outcome: str = "open") -> ActionResult:
        """Open a dispute, or close it won or lost."""
        return self.act(account_id, ref, Action.DISPUTE, outcome=outcome)

    # --- reading ---------------------------------------------------------------------------------

    def stats(self) -> Stats:
        """Every account's counters."""
        return Stats.model_validate(self._call("GET", "/stats"))

    def account_stats(self, account_id: str) -> AccountStats:
        """One account's API and webhook counters."""
        return self.stats().accounts[account_id]

    def deliveries(
        self,
        account: str | None = None,
        *,
        outcome: str | None = None,
        label: str | None = None,
        after: int = 0,
        limit: int = 1000,
    ) -> list[DeliveryRecord]:
        """The webhook delivery log, oldest first."""
        params = {"account": account, "outcome": outcome, "label": label, "after": after, "limit": limit}
        return [DeliveryRecord.model_validate(r) for r in self._call("GET", "/deliveries", params=params)]

    def wait_for_deliveries(self, account_id: str, timeout: float = 10.0) -> AccountStats:
        """Wait until none of the account's webhooks is queued, held or in flight; its counters then."""
        deadline = time.monotonic() + timeout
        while True:
            stats = self.account_stats(account_id)
            if stats.webhooks.pending == 0:
                return stats
            if time.monotonic() > deadline:
                raise TimeoutError(f"{stats.webhooks.pending} webhooks of {account_id} still pending")
            time.sleep(0.02)
