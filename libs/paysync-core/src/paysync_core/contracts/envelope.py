"""The raw webhook record: the audit log and the replay source."""

from __future__ import annotations

import base64
import binascii
from typing import Annotated, Literal

from pydantic import BeforeValidator, Field, PlainSerializer

from paysync_core.contracts.common import Contract, Provider, TenantId, UtcDatetime, Verdict


def _decode_body(value: object) -> object:
    # What base64.b64decode(value, validate=True) does, without its wrapper (once per raw record read):
    # strict (a character outside the alphabet, or bad padding, is an error); non-ASCII text a ValueError.
    return binascii.a2b_base64(value, strict_mode=True) if isinstance(value, str) else value


#: Bytes that travel as base64 text in JSON and stay bytes in Python.
Base64Body = Annotated[
    bytes,
    BeforeValidator(_decode_body),
    PlainSerializer(lambda b: base64.b64encode(b).decode("ascii"), when_used="json"),
]


class RawWebhook(Contract):
    """A webhook exactly as a gateway sent it, with webhook-ingest's verdict on its authenticity."""

    schema_version: Literal[1] = 1
    ingest_id: str = Field(description="Unique per HTTP request accepted")
    tenant: TenantId
    provider: Provider
    received_at: UtcDatetime
    remote_addr: str | None = None
    headers: dict[str, str] = Field(default_factory=dict, description="Selected request headers")
    body: Base64Body = Field(description="The raw request body, base64 on the wire")
    verdict: Verdict
