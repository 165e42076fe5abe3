"""`GET /admin/v1/topics`: partitions, retention, end offsets and consumer lag (`paysync topics describe`)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query
from fastapi.responses import JSONResponse

from paysync_api_gateway.admin import Operator
from paysync_api_gateway.deps import Settings
from paysync_api_gateway.inputs import InvalidInput, strict_parameters
from paysync_core import topics
from paysync_core.topic_description import UnknownTopics, describe_topics

router = APIRouter(prefix="/admin/v1", tags=["admin"], dependencies=[Depends(strict_parameters)])


@router.get("/topics")
async def describe(
    _: Operator,
    settings: Settings,
    topic: Annotated[list[str] | None, Query(description="Only these topics (default: every one)")] = None,
) -> JSONResponse:
    """Each topic's partitions, `retention.ms` and end offsets, and each consumer group's lag on it."""
    names = topic or [spec.name for spec in topics.ALL]
    try:
        reports = await describe_topics(settings.common.kafka_bootstrap, names)
    except UnknownTopics as exc:
        problems = [{"field": "topic", "problem": f"no such topic: {name}"} for name in exc.missing]
        raise InvalidInput("the request is not valid", problems) from None
    return JSONResponse([r.to_json() for r in reports], headers={"Cache-Control": "no-store"})
