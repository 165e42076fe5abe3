"""The OpenAPI document tells the truth: every status each route answers, with the one error shape.

Codes that follow from what a route is are added to every route by `document_answers`
(`openapi_answers.py`, called once by `app.py`): 401 where an API key or the operator token is
checked (and 429 for API keys, throttled when they fail), 400 for unknown query parameters, 422
where there is anything to validate, 404 where a path names a resource, 400 and 413 where a body is
read, 304 on conditional reads, 500 everywhere. Codes particular to a route
(409, 503, 202) are declared on it with `errors(...)`. Every error is a `Problem`.
"""

from __future__ import annotations

from typing import Any

from paysync_api_gateway.schemas import Problem

#: Every error answer the API gives, and what it means in general.
ERRORS: dict[int, str] = {
    400: "Unknown query parameter (`unknown_parameter`), body that is not JSON (`malformed_json`) or "
    "a cursor this API did not hand out (`bad_cursor`)",
    401: "Missing, unknown or revoked credentials (`unauthenticated`)",
    402: "The gateway declined to start the payment (`gateway_declined`)",
    403: "The key lacks the scope (`forbidden`) or the page's origin is not allowed (`origin_not_allowed`)",
    404: "No such resource for this tenant (`not_found`)",
    409: "Contradicts what is there (`conflict`)",
    413: "Body over the size limit (`payload_too_large`)",
    422: "A field is not valid (`invalid_request`; `problems` names each)",
    429: "Too many requests of this kind; see `Retry-After`",
    500: "The request failed; it has been logged (`internal_error`)",
    502: "The gateway refused the request (`gateway_rejected`, `gateway_error`): its words, never a secret",
    503: "Not available now; see `Retry-After` (`database_unavailable`: the database connection was lost)",
}


def errors(
    *codes: int, answers: dict[int | str, dict[str, Any]] | None = None, **descriptions: str
) -> dict[int | str, dict[str, Any]]:
    """`responses=` for these error codes, each a `Problem` (`e503="…"` overrides a description), and
    the route's other `answers` (a 202, a second success)."""
    problems: dict[int | str, dict[str, Any]] = {
        code: {"model": Problem, "description": descriptions.get(f"e{code}", ERRORS[code])} for code in codes
    }
    return {**(answers or {}), **problems}


NOT_MODIFIED: dict[int | str, dict[str, Any]] = {
    304: {"description": "Not modified: the `ETag` sent in `If-None-Match` is still the answer's"}
}
