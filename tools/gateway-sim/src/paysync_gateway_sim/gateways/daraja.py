"""M-Pesa Express (STK Push) requests and their lives; each ends in one callback to its CallBackURL."""

from __future__ import annotations

import heapq

from paysync_core.contracts.common import Provider
from paysync_core.testing.builders import mpesa as build
from paysync_gateway_sim.contracts import Action, ActionRequest, PaymentSpec, PaymentView
from paysync_gateway_sim.errors import conflict, not_found
from paysync_gateway_sim.state import Account, JsonDict, Outgoing, StkRequest

#: The ResultCode each scenario step ends a push with.
RESULT_CODES = {Action.PAY: 0, Action.FAIL: 1, Action.CANCEL: 1032, Action.ABANDON: 1037, Action.EXPIRE: 1019}
TIMEOUT_CODE = 1037  # DS timeout: nobody answered the prompt in time
_NAMES = {0: "success", 1032: "cancelled", 1037: "timeout", 1019: "expired"}


class DarajaSim:
    """Daraja's side of every scenario."""

    provider = Provider.MPESA

    def __init__(self, stk_timeout: float | None) -> None:
        self.stk_timeout = stk_timeout

    def push(
        self,
        account: Account,
        *,
        amount: int,
        phone: str,
        callback_url: str | None,
        account_reference: str,
        description: str,
    ) -> StkRequest:
        """A prompt sent to the customer's phone, pending until answered."""
        request = StkRequest(
            merchant_request_id=build.merchant_request_id(),
            checkout_request_id=build.checkout_request_id(),
            amount=amount,
            phone=phone,
            callback_url=callback_url,
            account_reference=account_reference,
            description=description,
            created_at=account.clock.time(),
        )
        account.stk[request.checkout_request_id] = request
        heapq.heappush(account.stk_deadlines, (request.created_at, request.checkout_request_id))
        account.stk_pending_phones[phone] = request.checkout_request_id
        return request

    def pending_for(self, account: Account, phone: str) -> StkRequest | None:
        """A push to this phone that nobody has answered yet."""
        found = account.stk.get(account.stk_pending_phones.get(phone, ""))
        return found if found is not None and found.pending else None

    def create(self, account: Account, spec: PaymentSpec) -> tuple[str, list[Outgoing]]:
        """A push made directly (control API); amounts are whole shillings on the wire."""
        if spec.kind not in (None, "stk_push"):
            raise conflict(f"Daraja has no {spec.kind}")
        if spec.amount_minor % 100:
            raise conflict("M-Pesa amounts are whole shillings: amount_minor must be a multiple of 100")
        request = self.push(
            account,
            amount=spec.amount_minor // 100,
            phone=spec.phone,
            callback_url=spec.callback_url or account.webhook_url,
            account_reference=spec.account_reference,
            description=spec.description,
        )
        return request.checkout_request_id, []

    def render(self, request: StkRequest) -> JsonDict:
        """What the simulator knows about a push (the query answer omits the receipt and amount)."""
        return {
            "MerchantRequestID": request.merchant_request_id,
            "CheckoutRequestID": request.checkout_request_id,
            "ResultCode": request.result_code,
            "ResultDesc": request.result_desc,
            "MpesaReceiptNumber": request.receipt,
            "Amount": request.amount,
            "PhoneNumber": request.phone,
            "AccountReference": request.account_reference,
        }

    def view(self, account: Account, ref: str) -> PaymentView:
        """A push's state for the control API."""
        request = self._get(account, ref)
        code = request.result_code
        status = "pending" if code is None else _NAMES.get(code, "failed")
        return PaymentView(
            provider=self.provider,
            kind="stk_push",
            ref=ref,
            status=status,
            amount_minor=request.amount * 100,
            currency="KES",
            object=self.render(request),
        )

    def refs(self, account: Account) -> list[str]:
        """Every CheckoutRequestID of the account."""
        return list(account.stk)

    def act(self, account: Account, ref: str, action: Action, req: ActionRequest) -> list[Outgoing]:
        """End a pending push with the step's ResultCode and send its callback."""
        request = self._get(account, ref)
        if action not in RESULT_CODES:
            raise conflict(f"{action.value} does not apply to an STK Push")
        if not request.pending:
            raise conflict(f"the STK Push already ended with ResultCode {request.result_code}")
        code = RESULT_CODES[action]
        if action is Action.FAIL and req.result_code is not None:
            if req.result_code == 0:
                raise conflict("ResultCode 0 is a success: use pay")
            code = req.result_code
        return [self.complete(account, request, code)]

    def complete(self, account: Account, request: StkRequest, code: int) -> Outgoing:
        """Record the result and build the callback Daraja POSTs to the CallBackURL."""
        now = account.clock.now()
        request.result_code = code
        request.result_desc = build.RESULT_DESCRIPTIONS.get(code, "The service request has failed.")
        request.receipt = build.mpesa_receipt() if code == 0 else None
        request.completed_at = now
        if account.stk_pending_phones.get(request.phone) == request.checkout_request_id:
            del account.stk_pending_phones[request.phone]
        body = build.stk_callback(
            checkout_request_id=request.checkout_request_id,
            merchant_request_id=request.merchant_request_id,
            result_code=code,
            # Daraja sends the amount as a JSON float (1.00) and TransactionDate as a number.
            result_desc=request.result_desc,
            amount=float(request.amount),
            receipt=request.receipt,
            transaction_date=now,
            phone=int(request.phone),
        )
        return Outgoing(
            account.id,
            self.provider,
            "stkCallback",
            request.checkout_request_id,
            build.to_body(body),
            url=request.callback_url,
        )

    def sweep(self, account: Account) -> list[Outgoing]:
        """End the pushes nobody answered within the prompt's time limit (ResultCode 1037)."""
        if self.stk_timeout is None:
            return []
        deadline, out = account.clock.time() - self.stk_timeout, []
        while account.stk_deadlines and account.stk_deadlines[0][0] <= deadline:
            request = account.stk[heapq.heappop(account.stk_deadlines)[1]]
            if request.pending:
                out.append(self.complete(account, request, TIMEOUT_CODE))
        return out

    def _get(self, account: Account, ref: str) -> StkRequest:
        request = account.stk.get(ref)
        if request is None:
            raise not_found("payment")
        return request
