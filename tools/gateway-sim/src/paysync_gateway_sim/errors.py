"""Errors the simulator answers: a gateway's own error shape, or a control-API refusal."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


class GatewayError(Exception):
    """An answer in the gateway's own error format, raised anywhere below a gateway route."""

    def __init__(
        self, status: int, body: Mapping[str, Any], headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(f"{status}")
        self.status = status
        self.body = dict(body)
        self.headers = dict(headers or {})


class ScenarioError(Exception):
    """A control-API request that cannot apply: unknown payment (404) or a step that makes no sense (409)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def not_found(what: str) -> ScenarioError:
    """404 for an account or payment the simulator does not hold."""
    return ScenarioError(404, f"no such {what}")


def conflict(message: str) -> ScenarioError:
    """409 for a step the payment's current state does not allow."""
    return ScenarioError(409, message)
