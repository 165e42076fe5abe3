"""Conditional status reads: every answer carries an `ETag` and `Cache-Control: no-store`, and
`If-None-Match` with the current tag is answered 304 without a body.

The tag is a hash of the exact body sent, so it changes exactly when the answer changes: a new
status, a new page, a new count. `no-store` keeps shared caches out (the answer is a tenant's data
and goes stale on its own); the client keeps the tag itself and revalidates with it.
"""

from __future__ import annotations

import hashlib
import json
from typing import Annotated, Any

from fastapi import Depends, Header, Response
from pydantic import BaseModel

NO_STORE = {"Cache-Control": "no-store"}

#: `json.dumps(…, ensure_ascii=False, separators=(",", ":"))` without making an encoder per answer.
_ENCODE = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
#: JSONResponse's rendering (no NaN or Infinity), likewise.
_ENCODE_STRICT = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode
_NO_STORE = (b"cache-control", b"no-store")
_JSON = (b"content-type", b"application/json")

_IF_NONE_MATCH = Header(
    description="The `ETag` of an answer you hold: 304 without a body while the answer is the same"
)


def etag_of(body: bytes) -> str:
    """A strong entity tag of a body: the first 128 bits of its SHA-256."""
    return f'"{hashlib.sha256(body).hexdigest()[:32]}"'


def _matches(if_none_match: str, etag: str) -> bool:
    """RFC 9110 weak comparison, as `If-None-Match` wants: `W/` is ignored, `*` matches any."""
    tags = {tag.strip().removeprefix("W/") for tag in if_none_match.split(",")}
    return "*" in tags or etag in tags


class ConditionalRead:
    """A status read's `If-None-Match`; `answer` renders the body, tags it and says 304 when it matches."""

    def __init__(self, if_none_match: str | None) -> None:
        self.if_none_match = if_none_match

    def answer(self, content: BaseModel | dict[str, Any] | list[Any]) -> Response:
        """200 with the body, its `ETag` and `no-store`; 304 with the same headers if the client has it."""
        data = content.model_dump(mode="json") if isinstance(content, BaseModel) else content
        body = _ENCODE(data).encode()
        etag = etag_of(body)
        tag = (b"etag", etag.encode())
        if self.if_none_match and _matches(self.if_none_match, etag):
            return Prepared(304, b"", [_NO_STORE, tag])
        return Prepared(200, body, [_NO_STORE, tag, (b"content-length", b"%d" % len(body)), _JSON])


def no_store_json(content: dict[str, Any], status_code: int) -> Response:
    """`JSONResponse(content, status_code, headers=NO_STORE)`, the same bytes, prepared (`Prepared`)."""
    body = _ENCODE_STRICT(content).encode()
    return Prepared(status_code, body, [_NO_STORE, (b"content-length", b"%d" % len(body)), _JSON])


class Prepared(Response):
    """A response whose headers come encoded, in the order Starlette's `Response` would encode them:
    its building of them from a dict was a twentieth of a status read's CPU (bench/README.md, API reads
    and registrations)."""

    def __init__(self, status_code: int, body: bytes, raw_headers: list[tuple[bytes, bytes]]) -> None:
        self.status_code, self.body, self.raw_headers, self.background = status_code, body, raw_headers, None


async def conditional_read(
    if_none_match: Annotated[str | None, _IF_NONE_MATCH] = None,
) -> ConditionalRead:
    """The request's `If-None-Match`, ready to answer (a dependency, on the event loop)."""
    return ConditionalRead(if_none_match)


#: Declare as a parameter of a status read: `read: Conditional`, then `return read.answer(page)`.
Conditional = Annotated[ConditionalRead, Depends(conditional_read)]
