"""`GET /v1/payments/{id}/history`: every observation behind a payment's status, in order."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Response
from pydantic import BaseModel, Field

from paysync_api_gateway.auth import current_tenant
from paysync_api_gateway.conditional import Conditional
from paysync_api_gateway.deps import Engine, Pool, Settings
from paysync_api_gateway.inputs import strict_parameters
from paysync_api_gateway.service import decode_cursor, encode_cursor, get_payment
from paysync_core.db import history as history_repo

router = APIRouter(prefix="/v1", dependencies=[Depends(strict_parameters)])


class RawRecord(BaseModel):
    """Where the webhook behind an observation sits on the raw topic (for `paysync replay`)."""

    topic: str
    partition: int
    offset: int | None


class HistoryEntry(BaseModel):
    """One observation of the payment, as the projector applied it, and the status right after."""

    seq: int = Field(description="Increases in the order the projector applied observations")
    observation_id: str
    source: str = Field(description="webhook, reconcile, manual, replay or override")
    verified: bool
    kind: str = Field(description="verified, or hint (an unsigned callback: changes nothing by itself)")
    status: str | None = Field(description="What the observation said; null when it could not tell")
    provider_time: datetime
    recorded_at: datetime
    provider_event_id: str | None
    event_type: str | None
    raw_record: RawRecord | None
    amount_minor: int | None
    currency: str | None
    status_after: str = Field(description="The payment's status right after this observation was applied")
    refused: str | None = Field(description="Why it was recorded and not applied (a test/live mismatch)")
    override: dict[str, str | None] | None = Field(default=None, description="An override: by, reason")
    evidence: dict[str, Any]


class HistoryPage(BaseModel):
    """One page of a payment's history, oldest first; pass `next_cursor` as `cursor` for the next."""

    payment_id: str
    status: str
    items: list[HistoryEntry]
    next_cursor: str | None


@router.get("/payments/{payment_id}/history", response_model=HistoryPage)
async def payment_history(
    payment_id: str,
    tenant: Annotated[str, Depends(current_tenant)],
    engine: Engine,
    pool: Pool,
    settings: Settings,
    read: Conditional,
    cursor: str | None = None,
    limit: Annotated[int | None, Query(ge=1, le=500)] = None,
) -> Response:
    """Every observation behind the payment's status, in the order applied, each with the status after it."""
    after = decode_cursor(cursor, int)[1] if cursor else None
    size = limit or settings.page_size
    payment = await get_payment(engine, pool, tenant, payment_id)  # NotFound for another tenant's
    async with engine.connect() as conn:
        rows = await history_repo.history(conn, uuid.UUID(payment["id"]), after=after, limit=size + 1)
    more = len(rows) > size
    page = HistoryPage(
        payment_id=payment["id"],
        status=payment["status"],
        items=[HistoryEntry.model_validate(history_repo.history_entry(r)) for r in rows[:size]],
        next_cursor=encode_cursor(rows[size - 1].created_at, rows[size - 1].id) if more else None,
    )
    return read.answer(page)
