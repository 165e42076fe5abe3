"""M-Pesa (Daraja) per tenant: STK Push Query for reconciliation, STK Push to start a payment."""

from __future__ import annotations

import asyncio
import base64
import functools
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

import httpx
import structlog

from paysync_core.contracts.common import Provider
from paysync_core.contracts.observation import PaymentObservation
from paysync_core.credentials import MpesaCredentials
from paysync_core.domain.status import UnifiedStatus as S
from paysync_core.errors import GatewayError, RateLimited
from paysync_core.phones import mask_phone, normalize_msisdn
from paysync_core.providers._common import Facts, JsonObject
from paysync_core.providers.clients.daraja_auth import DarajaTokens, TokenRejected
from paysync_core.providers.clients.errors import GatewayBusy, GatewayRejected, NotFoundAtGateway
from paysync_core.providers.clients.http import DEFAULT_TIMEOUT, GatewayHttp, json_object, text_field
from paysync_core.providers.clients.observe import Initiated, observe_facts
from paysync_core.providers.clients.retry import RequestBudget, RetryPolicy, Sleep, retry_after_seconds
from paysync_core.providers.mpesa import CURRENCY, EAST_AFRICA_TIME, status_for_result_code

log = structlog.get_logger()
T = TypeVar("T")

DEFAULT_API_BASE = "https://api.safaricom.co.ke"
QUERY_PATH = "/mpesa/stkpushquery/v1/query"
PUSH_PATH = "/mpesa/stkpush/v1/processrequest"

STILL_PROCESSING_CODE = "500.001.1001"  # with "The transaction is being processed"
INVALID_TOKEN_CODES = frozenset({"404.001.03", "401.003.01"})
SPIKE_ARREST_CODE = "500.003.02"
QUOTA_CODE = "500.003.03"
# 500.001.1001 also answers for bad till credentials: asking again will not fix those.
_REFUSALS = ("merchant does not exist", "wrong credentials", "invalid credentials")


@dataclass(frozen=True, slots=True)
class StkQueryResult:
    """Daraja's final word on one STK Push: its ResultCode and what it maps to."""

    checkout_request_id: str
    result_code: int
    result_desc: str | None
    merchant_request_id: str | None

    @property
    def status(self) -> S | None:
        """The unified status, from the adapter's ResultCode table."""
        return status_for_result_code(self.result_code)


@dataclass(frozen=True, slots=True)
class StillProcessing:
    """The customer has not answered the prompt yet ("The transaction is being processed")."""

    checkout_request_id: str
    detail: str | None = None


class DarajaGatewayClient:
    """One tenant's Daraja app and till over the caller's AsyncClient."""

    provider = Provider.MPESA

    def __init__(
        self,
        tenant: str,
        credentials: MpesaCredentials,
        http: httpx.AsyncClient,
        *,
        policy: RetryPolicy | None = None,
        budget: RequestBudget | None = None,
        timeout: httpx.Timeout = DEFAULT_TIMEOUT,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        sleep: Sleep = asyncio.sleep,
        monotonic: Callable[[], float] = time.monotonic,
        token_refresh_margin: float = 60.0,
    ) -> None:
        self.tenant = tenant
        self._credentials = credentials
        self._clock = clock
        self._base = (credentials.api_base or DEFAULT_API_BASE).rstrip("/")
        self._gateway = GatewayHttp(http, Provider.MPESA, policy or RetryPolicy(), budget, timeout, sleep)
        self.tokens = DarajaTokens(
            credentials, self._base, self._gateway, refresh_margin=token_refresh_margin, monotonic=monotonic
        )

    # -- queries -------------------------------------------------------------------------

    async def query_stk_push(self, checkout_request_id: str) -> StkQueryResult | StillProcessing:
        """POST /mpesa/stkpushquery/v1/query: the push's ResultCode, or that it is still pending."""

        async def once(token: str) -> StkQueryResult | StillProcessing:
            body = {**self._password_fields(), "CheckoutRequestID": checkout_request_id}
            response = await self._gateway.send(
                "POST", self._query_url, headers=_bearer(token), json_body=body
            )
            return _query_answer(response, checkout_request_id)

        return await self._authorized(once, operation="stkpushquery", idempotent=True)

    async def observe(self, checkout_request_id: str) -> PaymentObservation:
        """The push's state now, as a verified observation (pending while still processing)."""
        return self.observation_for(await self.query_stk_push(checkout_request_id))

    def observation_for(self, result: StkQueryResult | StillProcessing) -> PaymentObservation:
        """A verified observation of a query answer; the id repeats for the same answer."""
        status: S | None
        if isinstance(result, StillProcessing):
            status, key, detail = S.PENDING, "processing", result.detail
        else:
            status, key, detail = result.status, str(result.result_code), result.result_desc
        facts = Facts(
            provider_ref=result.checkout_request_id,
            status=status,
            currency=CURRENCY,
            evidence={"detail": detail},
        )
        observed_at = self._clock()
        # The query answer carries no time of its own: what Daraja said holds as of asking.
        return observe_facts(
            Provider.MPESA,
            facts,
            tenant=self.tenant,
            observed_at=observed_at,
            provider_time=observed_at,
            kind="stkpushquery",
            id_parts=("query", key),
        )

    # -- initiation ------------------------------------------------------------------------

    async def stk_push(
        self,
        *,
        amount_minor: int,
        phone: str,
        account_reference: str,
        description: str,
        callback_base_url: str,
    ) -> Initiated:
        """POST /mpesa/stkpush/v1/processrequest; the CheckoutRequestID to register."""
        if amount_minor <= 0 or amount_minor % 100:
            raise ValueError("M-Pesa takes whole shillings: amount_minor must be a positive multiple of 100")
        if not 0 < len(account_reference) <= 12:
            raise ValueError("AccountReference must be 1-12 characters")
        msisdn = normalize_msisdn(phone)
        token_path = self._credentials.callback_token.get_secret_value()
        callback = f"{callback_base_url.rstrip('/')}/webhooks/{self.tenant}/mpesa/{token_path}"

        async def once(token: str) -> JsonObject:
            body = {
                **self._password_fields(),
                **self._collector_fields(),
                "Amount": amount_minor // 100,
                "PartyA": msisdn,
                "PhoneNumber": msisdn,
                "CallBackURL": callback,
                "AccountReference": account_reference,
                "TransactionDesc": (description or account_reference)[:13],
            }
            response = await self._gateway.send(
                "POST", self._push_url, headers=_bearer(token), json_body=body
            )
            if response.status_code >= 300:
                raise _failure(response, _quiet_json(response))
            return json_object(response, Provider.MPESA)

        # A push repeated after Daraja acted on it would prompt the customer twice: only
        # refusals at the door (rate limits, a locked subscriber, a refused token) are repeated.
        answer = await self._authorized(once, operation="stkpush", idempotent=False)
        if str(answer.get("ResponseCode")) != "0" or not isinstance(answer.get("CheckoutRequestID"), str):
            raise GatewayRejected(
                f"STK Push not accepted: {text_field(answer, 'ResponseDescription')}",
                provider="mpesa",
                status_code=200,
                gateway_code=str(answer.get("ResponseCode")),
            )
        checkout_id = answer["CheckoutRequestID"]
        log.info(
            "mpesa.stk_push.sent",
            tenant=self.tenant,
            checkout_request_id=checkout_id,
            phone=mask_phone(msisdn),
            amount_kes=amount_minor // 100,
        )
        return Initiated(
            provider=Provider.MPESA,
            provider_ref=checkout_id,
            customer_message=text_field(answer, "CustomerMessage"),
            details={"merchant_request_id": text_field(answer, "MerchantRequestID") or ""},
        )

    # -- plumbing ----------------------------------------------------------------------------

    # Parsed once, on first use (a malformed api_base still fails the call, not the construction):
    # httpx parses a string URL on every request (some 25 µs of the client's CPU a query).
    @functools.cached_property
    def _query_url(self) -> httpx.URL:
        return httpx.URL(f"{self._base}{QUERY_PATH}")

    @functools.cached_property
    def _push_url(self) -> httpx.URL:
        return httpx.URL(f"{self._base}{PUSH_PATH}")

    async def _authorized(
        self, once: Callable[[str], Awaitable[T]], *, operation: str, idempotent: bool
    ) -> T:
        """`once` with a cached token; a refused token is renewed once and the call made again."""
        token = await self.tokens.get()
        try:
            return await self._gateway.retrying(
                lambda: once(token), operation=operation, idempotent=idempotent
            )
        except TokenRejected:
            log.info("mpesa.token.refused", tenant=self.tenant, operation=operation)
            self.tokens.invalidate(token)
        token = await self.tokens.get()
        try:
            return await self._gateway.retrying(
                lambda: once(token), operation=operation, idempotent=idempotent
            )
        except TokenRejected as exc:
            raise GatewayRejected(
                "Daraja refused a freshly issued access token", provider="mpesa", status_code=exc.status_code
            ) from exc

    def _collector_fields(self) -> dict[str, str]:
        """Who collects: a PayBill collects itself; a Buy Goods till collects for its store number."""
        till = self._credentials.till_number
        if till:
            return {"TransactionType": "CustomerBuyGoodsOnline", "PartyB": till}
        return {"TransactionType": "CustomerPayBillOnline", "PartyB": self._credentials.shortcode}

    def _password_fields(self) -> dict[str, str]:
        """BusinessShortCode, Timestamp (EAT, `YYYYMMDDHHmmss`) and Password = b64(code+passkey+ts)."""
        stamp = self._clock().astimezone(EAST_AFRICA_TIME).strftime("%Y%m%d%H%M%S")
        shortcode = self._credentials.shortcode
        raw = f"{shortcode}{self._credentials.passkey.get_secret_value()}{stamp}"
        return {
            "BusinessShortCode": shortcode,
            "Password": base64.b64encode(raw.encode()).decode(),
            "Timestamp": stamp,
        }


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", "Accept": "application/json"}


def _query_answer(response: httpx.Response, checkout_request_id: str) -> StkQueryResult | StillProcessing:
    body = _quiet_json(response)
    if response.status_code >= 300 or "errorCode" in body:
        code, message = text_field(body, "errorCode"), text_field(body, "errorMessage") or ""
        if code == STILL_PROCESSING_CODE and "being processed" in message.lower():
            return StillProcessing(checkout_request_id, message)
        if "invalid checkoutrequestid" in message.lower():
            raise NotFoundAtGateway(
                f"{code}: {message}",
                provider="mpesa",
                reference=checkout_request_id,
                status_code=response.status_code,
            )
        raise _failure(response, body)
    result = body.get("ResultCode")
    if isinstance(result, str) and re.fullmatch(r"-?[0-9]{1,9}", result):
        result = int(result)
    if isinstance(result, bool) or not isinstance(result, int):
        raise GatewayError(
            "STK Push Query answer without a ResultCode",
            provider="mpesa",
            retryable=False,
            status_code=response.status_code,
        )
    answered = text_field(body, "CheckoutRequestID", 255)
    if answered is not None and answered != checkout_request_id:
        # The observation is about the push we asked for; an answer about another one is no answer.
        raise GatewayError(
            f"STK Push Query answered for another CheckoutRequestID ({answered[:40]})",
            provider="mpesa",
            retryable=False,
            status_code=response.status_code,
        )
    return StkQueryResult(
        checkout_request_id=checkout_request_id,
        result_code=result,
        result_desc=text_field(body, "ResultDesc", 500),
        merchant_request_id=text_field(body, "MerchantRequestID"),
    )


def _failure(response: httpx.Response, body: JsonObject) -> GatewayError:
    """The typed error for a Daraja error answer (`requestId`, `errorCode`, `errorMessage`)."""
    status = response.status_code
    code = text_field(body, "errorCode")
    message = text_field(body, "errorMessage") or f"HTTP {status}"
    lowered = message.lower()
    described = f"{code or status}: {message}"
    retry_after = retry_after_seconds(response.headers)
    if status == 401 or code in INVALID_TOKEN_CODES or "invalid access token" in lowered:
        return TokenRejected(described, status_code=status)
    if status == 429 or code in (SPIKE_ARREST_CODE, QUOTA_CODE):
        return RateLimited(
            described, provider="mpesa", retryable=True, status_code=status, retry_after=retry_after
        )
    if "lock subscriber" in lowered or "being processed" in lowered:
        return GatewayBusy(described, provider="mpesa", status_code=status, retry_after=retry_after)
    if status < 500 or any(words in lowered for words in _REFUSALS):
        return GatewayRejected(described, provider="mpesa", status_code=status, gateway_code=code)
    return GatewayError(
        described, provider="mpesa", retryable=True, status_code=status, retry_after=retry_after
    )


def _quiet_json(response: httpx.Response) -> dict[str, Any]:
    try:
        return json_object(response, Provider.MPESA)
    except GatewayError:
        if response.status_code < 300:
            raise
        return {}
