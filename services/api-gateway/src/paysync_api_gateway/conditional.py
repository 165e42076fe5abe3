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
        body = json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode()
        headers = {**NO_STORE, "ETag": etag_of(body)}
        if self.if_none_match and _matches(self.if_none_match, headers["ETag"]):
            return Response(status_code=304, headers=headers)
        return Response(body, media_type="application/json", headers=headers)


async def conditional_read(
    if_none_match: Annotated[str | None, _IF_NONE_MATCH] = None,
) -> ConditionalRead:
    """The request's `If-None-Match`, ready to answer (a dependency, on the event loop)."""
    return ConditionalRead(if_none_match)


#: Declare as a parameter of a status read: `read: Conditional`, then `return read.answer(page)`.
Conditional = Annotated[ConditionalRead, Depends(conditional_read)]
