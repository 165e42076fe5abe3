"""A raw webhook record read as payment observations: the normalizer's rule, shared with replay."""

from __future__ import annotations

from paysync_core.contracts import ObservationSource, RawWebhook, Verdict
from paysync_core.providers import adapter_for
from paysync_core.providers.base import ParseContext, Parsed


def normalize_raw(
    raw: RawWebhook,
    *,
    partition: int | None,
    offset: int | None,
    source: ObservationSource = ObservationSource.WEBHOOK,
    phone_key: str = "",
) -> Parsed:
    """The observations a raw record stands for, seen through `source` (MalformedPayload if it has none).

    webhook-ingest's normalizer reads live records (`webhook`); `paysync replay` re-reads old ones with
    today's adapters (`replay`). The record's position goes into each observation's evidence. With
    `phone_key`, an M-Pesa payer's number becomes the observation's `phone_hash` (never the number).
    """
    # The position as a plain mapping: each observation validates it as its Evidence (not once more here).
    position = {"ingest_id": raw.ingest_id, "raw_partition": partition, "raw_offset": offset}
    verified = raw.verdict is Verdict.VERIFIED
    ctx = ParseContext(raw.tenant, source, verified, raw.received_at, position, phone_key)
    return adapter_for(raw.provider).parse(raw.body, ctx)
