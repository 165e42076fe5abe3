"""Paystack per tenant: verify and list transactions for reconciliation, initialize for checkout."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import httpx
import structlog

from paysync_core.contracts.common import Provider
from paysync_core.contracts.observation import PaymentObservation
from paysync_core.credentials import PaystackCredentials
from paysync_core.domain.status import UnifiedStatus as S
from paysync_core.errors import GatewayError
from paysync_core.providers import paystack as adapter
from paysync_core.providers._common import JsonObject, first_time, get_str
from paysync_core.providers.clients.errors import NotFoundAtGateway
from paysync_core.providers.clients.http import (
    DEFAULT_TIMEOUT,
    GatewayHttp,
    error_for_status,
    json_object,
    text_field,
)
from paysync_core.providers.clients.observe import Initiated, observe_facts
from paysync_core.providers.clients.retry import RequestBudget, RetryPolicy, Sleep
from paysync_core.providers.modes import object_mode
from paysync_core.providers.tables import StatusRow, StatusTable

log = structlog.get_logger()

DEFAULT_API_BASE = "https://api.paystack.co"
_STATUSES = "Paystack docs, Payments, Verify payments, transaction statuses"
_PAID_TIMES = ("paid_at", "paidAt", "transaction_date")


def _as(table: StatusTable, key: str) -> S | None:
    row = table.row(key)
    if row is None:
        raise LookupError(f"{table.name} has no row {key!r}")
    return row.status


TRANSACTION_STATUS = StatusTable(
    name="paystack.transaction.status",
    title="Paystack transaction fetched (verify or list), by data.status",
    key_label="status",
    rows=(
        StatusRow("success", _as(adapter.EVENTS, "charge.success"), "the charge succeeded", _STATUSES),
        StatusRow("failed", S.FAILED, "the charge failed, e.g. declined by the bank", _STATUSES),
        StatusRow(
            "abandoned",
            S.PENDING,
            "the customer has not completed the transaction; a newly initialized one reports "
            "this until it is paid, so it is not an end",
            _STATUSES,
        ),
        StatusRow(
            "ongoing",
            S.REQUIRES_ACTION,
            "the customer is completing an action, e.g. entering an OTP",
            _STATUSES,
        ),
        StatusRow("pending", S.PROCESSING, "the transaction is being processed", _STATUSES),
        StatusRow("processing", S.PROCESSING, "as pending, for direct debit", _STATUSES),
        StatusRow("queued", S.PROCESSING, "queued to be processed later", _STATUSES),
        StatusRow(
            "reversed",
            _as(adapter.REFUND_PROCESSED, "full"),
            "reversed: the money went back to the customer (as a full refund)",
            _STATUSES,
        ),
    ),
    notes=(
        "A reversed transaction reports its whole amount as refunded.",
        "Any other status gives `(none)`: it never overwrites a known status.",
    ),
)


class PaystackGatewayClient:
    """One tenant's Paystack integration over the caller's AsyncClient (Bearer secret key)."""

    provider = Provider.PAYSTACK

    def __init__(
        self,
        tenant: str,
        credentials: PaystackCredentials,
        http: httpx.AsyncClient,
        *,
        policy: RetryPolicy | None = None,
        budget: RequestBudget | None = None,
        timeout: httpx.Timeout = DEFAULT_TIMEOUT,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self.tenant = tenant
        self._clock = clock
        self._base = (credentials.api_base or DEFAULT_API_BASE).rstrip("/")
        self._headers = {
            "Authorization": f"Bearer {credentials.secret_key.get_secret_value()}",
            "Accept": "application/json",
        }
        self._gateway = GatewayHttp(http, Provider.PAYSTACK, policy or RetryPolicy(), budget, timeout, sleep)

    # -- queries -------------------------------------------------------------------------

    async def verify(self, reference: str) -> JsonObject:
        """GET /transaction/verify/:reference: the transaction's `data`, which must be that reference's."""
        path = f"/transaction/verify/{quote(reference, safe='')}"
        body = await self._get(path, None, operation="transaction.verify", reference=reference)
        data = _data_object(body)
        answered = data.get("reference")
        if answered is not None and answered != reference:
            # What we observe is the transaction we asked about; an answer about another is no answer.
            raise GatewayError(
                f"verify answered for another reference ({str(answered)[:40]})",
                provider="paystack",
                retryable=False,
                status_code=200,
            )
        return data

    async def list_transactions(
        self,
        *,
        start: datetime,
        end: datetime,
        status: str | None = None,
        per_page: int = 100,
        max_pages: int = 1000,
    ) -> AsyncIterator[JsonObject]:
        """GET /transaction in the window [start, end], every page (`perPage`, `page`, `meta`).

        Pages are offsets into a list sorted newest first, so an `end` in the past keeps them
        from shifting while new transactions arrive.
        """
        page = 1
        while True:
            if page > max_pages:
                log.warning("paystack.transaction_list.truncated", tenant=self.tenant, pages=max_pages)
                return
            params: dict[str, str | int] = {
                "perPage": per_page,
                "page": page,
                "from": _iso(start),
                "to": _iso(end, round_up=True),
            }
            if status:
                params["status"] = status
            body = await self._get("/transaction", params, operation="transaction.list")
            items = body.get("data")
            if not isinstance(items, list):
                raise GatewayError(
                    "list answer without a data array", provider="paystack", retryable=False, status_code=200
                )
            for item in items:
                if isinstance(item, dict):
                    yield item
            meta = body.get("meta")
            meta = meta if isinstance(meta, dict) else {}
            page_count = _int(meta.get("pageCount"))
            if (
                not items
                or (page_count is not None and page >= page_count)
                or (page_count is None and len(items) < per_page)
            ):
                return
            page += 1

    # -- observations ----------------------------------------------------------------------

    async def observe(self, reference: str) -> PaymentObservation:
        """The transaction's state now, as a verified observation."""
        return self.observation_for(await self.verify(reference))

    async def observe_window(
        self, *, start: datetime, end: datetime, status: str | None = None
    ) -> AsyncIterator[PaymentObservation]:
        """Observations of every transaction in the window (optionally of one status)."""
        async for transaction in self.list_transactions(start=start, end=end, status=status):
            yield self.observation_for(transaction)

    def observation_for(self, transaction: JsonObject) -> PaymentObservation:
        """A verified observation of one transaction object, from verify or from the list."""
        facts, _ = adapter.transaction_facts(transaction, "charge.success")
        status = get_str(transaction, "status", "data.status", max_length=40)
        row = TRANSACTION_STATUS.row(status)
        facts = replace(
            facts, status=row.status if row else None, mode=object_mode(Provider.PAYSTACK, transaction)
        )
        if row is not None and row.status is S.REFUNDED:
            facts = replace(facts, amount_refunded_minor=facts.amount_minor)
        observed_at = self._clock()
        # Money that moved has its own time; a state before that holds as of Paystack's answer.
        moved = facts.status is not None and facts.status.money_moved
        return observe_facts(
            Provider.PAYSTACK,
            facts,
            tenant=self.tenant,
            observed_at=observed_at,
            provider_time=first_time(transaction, _PAID_TIMES, observed_at) if moved else observed_at,
            kind="transaction",
            id_parts=(status, facts.amount_minor),
        )

    # -- initiation ------------------------------------------------------------------------

    async def initialize_transaction(
        self,
        *,
        email: str,
        amount_minor: int,
        reference: str,
        callback_url: str | None,
        domain: str,
        entity_id: str,
        currency: str | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> Initiated:
        """POST /transaction/initialize; the reference to register and the authorization_url."""
        if amount_minor <= 0:
            raise ValueError("amount_minor must be positive")
        payload: dict[str, Any] = {
            "email": email,
            "amount": amount_minor,
            "reference": reference,
            "metadata": {**(metadata or {}), "paysync_domain": domain, "paysync_entity_id": entity_id},
        }
        if currency:
            payload["currency"] = currency.upper()
        if callback_url:  # else the callback URL set on Paystack's dashboard
            payload["callback_url"] = callback_url

        async def attempt() -> JsonObject:
            response = await self._gateway.send(
                "POST", f"{self._base}/transaction/initialize", headers=self._headers, json_body=payload
            )
            return self._answer(response, reference=None)

        # Not idempotent: repeated only when Paystack cannot have acted on it.
        body = await self._gateway.retrying(attempt, operation="transaction.initialize", idempotent=False)
        data = _data_object(body)
        log.info(
            "paystack.transaction.initialized",
            tenant=self.tenant,
            reference=reference,
            domain=domain,
            entity_id=entity_id,
        )
        return Initiated(
            provider=Provider.PAYSTACK,
            provider_ref=get_str(data, "reference", "data.reference", required=False) or reference,
            checkout_url=get_str(data, "authorization_url", "data.authorization_url", max_length=2000),
            details={"access_code": text_field(data, "access_code") or ""},
        )

    # -- plumbing ----------------------------------------------------------------------------

    async def _get(
        self,
        path: str,
        params: Mapping[str, str | int] | None,
        *,
        operation: str,
        reference: str | None = None,
    ) -> JsonObject:
        async def attempt() -> JsonObject:
            response = await self._gateway.send(
                "GET", f"{self._base}{path}", headers=self._headers, params=params
            )
            return self._answer(response, reference=reference)

        return await self._gateway.retrying(attempt, operation=operation)

    def _answer(self, response: httpx.Response, *, reference: str | None) -> JsonObject:
        """The JSON body of a 2xx answer whose `status` is true; otherwise the typed error."""
        body = _lenient_json(response)
        message = text_field(body, "message") or "no message"
        if response.status_code < 300 and body.get("status") is True:
            return body
        if reference is not None and _is_not_found(response.status_code, body):
            raise NotFoundAtGateway(
                f"{message}", provider="paystack", reference=reference, status_code=response.status_code
            )
        if response.status_code < 300:  # 200 with status false: Paystack refused it
            raise GatewayError(
                message, provider="paystack", retryable=False, status_code=response.status_code
            )
        raise error_for_status(response, Provider.PAYSTACK, message)


def _lenient_json(response: httpx.Response) -> JsonObject:
    try:
        return json_object(response, Provider.PAYSTACK)
    except GatewayError:
        if response.status_code < 300:
            raise
        return {}  # an error page from a proxy: the status code speaks for it


def _is_not_found(status_code: int, body: JsonObject) -> bool:
    """Whether Paystack itself says the transaction is unknown, in its envelope (`status: false`).

    A 404 without that envelope is a path nobody serves (a wrong base URL, a misrouting proxy): a
    fault of ours that must count against the gateway, not answer the check.
    """
    if body.get("status") is not False or status_code not in (400, 404):
        return False
    message = (text_field(body, "message") or "").lower()
    return body.get("code") == "transaction_not_found" or "not found" in message


def _data_object(body: JsonObject) -> JsonObject:
    data = body.get("data")
    if not isinstance(data, dict):
        raise GatewayError(
            "answer without a data object", provider="paystack", retryable=False, status_code=200
        )
    return data


def _iso(moment: datetime, *, round_up: bool = False) -> str:
    """ISO 8601 in UTC to the millisecond; an end bound rounds up so nothing at its edge is lost."""
    moment = moment.astimezone(UTC)
    millis, rest = divmod(moment.microsecond, 1000)
    if round_up and rest:
        moment += timedelta(microseconds=1000 - rest)
        millis = moment.microsecond // 1000
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{millis:03d}Z"


def _int(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return None
