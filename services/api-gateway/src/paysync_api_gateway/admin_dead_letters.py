"""`/admin/v1/dead-letters`: list, show and redrive dead letters, as `paysync dlq list|show|redrive`.

The view, the filters and the redrive ledger are `paysync_core.dlq_view`, which the CLI uses too.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import structlog
from fastapi import APIRouter, Depends, Query
from fastapi.responses import JSONResponse
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from paysync_api_gateway.admin import Operator
from paysync_api_gateway.deps import Engine, Settings
from paysync_api_gateway.inputs import CleanText, InvalidInput, strict_parameters
from paysync_api_gateway.service import NotFound
from paysync_core import dlq_view
from paysync_core.dlq_view import Selection
from paysync_core.kafka import DurableProducer

router = APIRouter(prefix="/admin/v1", tags=["admin"], dependencies=[Depends(strict_parameters)])
log = structlog.get_logger()


def _selection(
    topic: str | None, reason: str | None, tenant: str | None, since: datetime | None, until: datetime | None
) -> Selection:
    """The view's selection; InvalidInput naming `topic` for a topic that has no dead letters."""
    try:
        names = dlq_view.dlq_topics(topic)
    except ValueError as exc:
        problems = [{"field": "topic", "problem": str(exc)}]
        raise InvalidInput("the request is not valid", problems) from None
    return Selection(names, reason, tenant, since, until)


class Redrive(BaseModel):
    """The letters to redrive after a fix (the filters of the list), and who decided it (kept in the
    redrive ledger)."""

    model_config = ConfigDict(extra="forbid")
    topic: CleanText | None = None
    reason: Annotated[CleanText, Field(min_length=1, max_length=200)] | None = None
    tenant: CleanText | None = None
    since: AwareDatetime | None = None
    until: AwareDatetime | None = None
    by: Annotated[CleanText, Field(min_length=1, max_length=100)]


@router.get("/dead-letters")
async def list_dead_letters(
    _: Operator,
    engine: Engine,
    settings: Settings,
    topic: Annotated[str | None, Query(description="A topic, or its .dlq; default: every one")] = None,
    reason: Annotated[str | None, Query(description="An error type, or words of the error")] = None,
    tenant: Annotated[str | None, Query(description="Only letters of this tenant's records")] = None,
    since: Annotated[AwareDatetime | None, Query(description="Written at or after")] = None,
    until: Annotated[AwareDatetime | None, Query(description="Written before")] = None,
) -> JSONResponse:
    """Dead letters not redriven yet, oldest first per partition, and their counts per topic."""
    selection = _selection(topic, reason, tenant, since, until)
    letters = await dlq_view.in_view(settings.common.kafka_bootstrap, engine, selection)
    body = {"counts": dlq_view.counts(letters), "letters": [x.summary() for x in letters]}
    return JSONResponse(body, headers={"Cache-Control": "no-store"})


@router.get("/dead-letters/{letter_id}")
async def show_dead_letter(letter_id: str, _: Operator, engine: Engine, settings: Settings) -> JSONResponse:
    """One letter: reason, error, source position, the original record, and whether it was redriven."""
    try:
        found, ledger = await dlq_view.find(settings.common.kafka_bootstrap, engine, letter_id)
    except ValueError:
        raise NotFound(f"no dead letter {letter_id!r}: ids are <dlq topic>:<partition>:<offset>") from None
    if found is None:
        raise NotFound(f"no dead letter {letter_id!r}")
    body = found.details() | {"redriven": dlq_view.ledger_json(ledger)}
    return JSONResponse(body, headers={"Cache-Control": "no-store"})


@router.post("/dead-letters/redrive")
async def redrive_dead_letters(
    body: Redrive, _: Operator, engine: Engine, settings: Settings
) -> JSONResponse:
    """Republish the selected letters' originals to their source topics (after a fix); they leave the
    view; counts before and after. One that fails again comes back as a new letter with its new error."""
    bootstrap = settings.common.kafka_bootstrap
    selection = _selection(body.topic, body.reason, body.tenant, body.since, body.until)
    letters = await dlq_view.in_view(bootstrap, engine, selection)
    sender = DurableProducer(bootstrap, client_id="paysync-api-gateway-redrive")
    await sender.start()
    try:
        report: dict[str, Any] = await dlq_view.redrive(letters, sender, engine, body.by)
    finally:
        await sender.stop()
    log.info("dead_letters.redriven", count=len(report["redriven"]), skipped=len(report["skipped"]))
    return JSONResponse(report, headers={"Cache-Control": "no-store"})
