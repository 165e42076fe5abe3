"""The gateway errors the clients add to paysync's: each says why, and whether a retry can help."""

from __future__ import annotations

from paysync_core.errors import GatewayError, RateLimited


class GatewayUnreachable(GatewayError):
    """No answer from the gateway: connection refused, reset or timed out."""

    code = "gateway_unreachable"

    def __init__(self, message: str, *, provider: str, request_sent: bool) -> None:
        self.request_sent = request_sent  # False only when the gateway cannot have acted on it
        super().__init__(message, provider=provider, retryable=True)


class BudgetExhausted(RateLimited):
    """paysync's own request budget has no token soon enough; nothing was sent."""

    code = "budget_exhausted"


class GatewayBusy(GatewayError):
    """The gateway turned the request away without acting on it (e.g. a subscriber lock)."""

    code = "gateway_busy"

    def __init__(
        self, message: str, *, provider: str, status_code: int | None, retry_after: float | None = None
    ) -> None:
        super().__init__(
            message, provider=provider, retryable=True, status_code=status_code, retry_after=retry_after
        )


class NotFoundAtGateway(GatewayError):
    """The gateway does not know the reference asked about; asking again will not help."""

    code = "not_found_at_gateway"

    def __init__(self, message: str, *, provider: str, reference: str, status_code: int | None) -> None:
        self.reference = reference
        super().__init__(message, provider=provider, retryable=False, status_code=status_code)


class GatewayRejected(GatewayError):
    """The gateway refused the request as made (bad credentials, invalid field); fix, then retry."""

    code = "gateway_rejected"

    def __init__(
        self, message: str, *, provider: str, status_code: int | None, gateway_code: str | None = None
    ) -> None:
        self.gateway_code = gateway_code
        super().__init__(message, provider=provider, retryable=False, status_code=status_code)
