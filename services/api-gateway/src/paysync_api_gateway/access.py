"""What each kind of API key may do: the one place `/v1` routes are checked against a key's scopes.

- **Secret keys** (`psk_…`, kept on servers) carry scopes: `read` for every `GET`, `write` for
  everything that registers, changes or starts work (`POST`, `PUT`, `PATCH`, `DELETE`), with the
  exceptions in `_SCOPE_OF` (asking for a stream token or checking one entity only reads), and
  `override` for setting a payment's status by hand (`POST /v1/payments/{id}/override`), given only
  when asked for by name. A key without the scope a route needs is refused 403 `forbidden`, naming
  the scope. Keys issued before scopes existed have `read` and `write`. Operator routes
  (`/admin/v1`) take the operator token, never a tenant key.
- **Publishable keys** (`ppk_…`, safe to ship in a web page) reach only `_PUBLISHABLE`: what a page
  showing one payment or one entity's payments needs. Anyone can read a web page's key, so a
  publishable key cannot list or count the tenant's payments (`GET /v1/payments`, `/v1/stats`),
  register, check in bulk, read history or sync issues, or ask for a tenant-wide stream token.

A route added without an entry here needs `read` (GET) or `write` (anything else) from a secret key,
and is closed to publishable keys: new routes are never opened to web pages by accident.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from paysync_core.errors import PaysyncError

Scope = Literal["read", "write", "override"]
SCOPES: tuple[Scope, ...] = ("read", "write", "override")
#: What a secret key issued without `scopes` may do: an override is a decision, never a default.
DEFAULT_SCOPES: tuple[Scope, ...] = ("read", "write")

#: Routes (method, path template) whose scope is not the one their method implies.
_SCOPE_OF: dict[tuple[str, str], Scope] = {
    ("POST", "/v1/stream-tokens"): "read",
    ("POST", "/v1/domains/{domain}/{entity_id}/payments/refresh"): "read",
    ("POST", "/v1/payments/{payment_id}/override"): "override",
}

#: Everything a publishable key may call: one payment, one entity's payments, that entity's check
#: (rate-limited per key, see `presses.py`), the follow-up of a check, an entity's stream token.
_PUBLISHABLE: frozenset[tuple[str, str]] = frozenset(
    {
        ("GET", "/v1/payments/{payment_id}"),
        ("GET", "/v1/domains/{domain}/{entity_id}/payments"),
        ("POST", "/v1/domains/{domain}/{entity_id}/payments/refresh"),
        ("GET", "/v1/reconcile-requests/{request_id}"),
        ("POST", "/v1/stream-tokens"),
    }
)


class Forbidden(PaysyncError):
    """A valid key that may not do this: a missing scope, or a route closed to publishable keys."""

    code = "forbidden"

    def __init__(self, message: str, problems: list[dict[str, str]] | None = None) -> None:
        self.problems = problems or []
        super().__init__(message)


@dataclass(frozen=True, slots=True)
class KeyAccess:
    """What one live API key grants: its tenant, kind, scopes and expiry."""

    key_id: int
    tenant: str
    kind: Literal["secret", "publishable"]
    scopes: frozenset[str]
    expires_at: datetime | None


def required_scope(method: str, route: str) -> Scope:
    """The scope a secret key needs for `method` on the route with this path template."""
    method = "GET" if method == "HEAD" else method
    return _SCOPE_OF.get((method, route), "read" if method == "GET" else "write")


def authorize(access: KeyAccess, method: str, route: str) -> None:
    """Refuse (403 `forbidden`) a key that may not call `method` on `route` (a path template)."""
    method = "GET" if method == "HEAD" else method
    if access.kind == "publishable":
        if (method, route) not in _PUBLISHABLE:
            raise Forbidden(
                f"a publishable key cannot call {method} {route}; use a secret key from your server",
                [{"field": "authorization", "problem": "publishable keys only read one payment or entity"}],
            )
        return
    scope = required_scope(method, route)
    if scope not in access.scopes:
        raise Forbidden(
            f"this API key lacks the {scope!r} scope that {method} {route} needs",
            [{"field": "scope", "problem": f"missing {scope}"}],
        )


def require_entity_stream(access: KeyAccess, entity_id: str | None) -> None:
    """A publishable key's stream token must name one entity: a tenant's whole stream is not for a page."""
    if access.kind == "publishable" and entity_id is None:
        raise Forbidden(
            "a publishable key may ask only for one entity's stream token (`domain` and `entity_id`)",
            [{"field": "entity_id", "problem": "required with a publishable key"}],
        )
