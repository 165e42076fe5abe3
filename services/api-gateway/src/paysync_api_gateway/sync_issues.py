"""`/v1/sync-issues`: what paysync could not settle on its own, and people handling it by hand.

An issue is `open`, `acknowledged` (someone is on it; still open) or `resolved`. By hand: acknowledge
an open one, resolve an open or acknowledged one with a note, reopen a resolved one; each is audited
with the API key that did it. The projector and the reconciler keep their own rules on the same rows
(docs/status-model.md#sync-issues-by-hand): they resolve an issue whose cause is gone, whoever
acknowledged it, and raise a new occurrence when a resolved cause comes back.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.ext.asyncio import AsyncConnection

from paysync_api_gateway import issues_repository as repo
from paysync_api_gateway.auth import current_tenant
from paysync_api_gateway.conditional import NO_STORE, Conditional
from paysync_api_gateway.contract import errors
from paysync_api_gateway.deps import Engine, Settings
from paysync_api_gateway.inputs import CleanText, strict_parameters
from paysync_api_gateway.schemas import SyncIssue
from paysync_api_gateway.service import Conflict, NotFound, decode_cursor, encode_cursor
from paysync_core.contracts.alert import AlertKind

router = APIRouter(prefix="/v1", dependencies=[Depends(strict_parameters)])
Tenant = Annotated[str, Depends(current_tenant)]
Note = Annotated[CleanText, Field(min_length=1, max_length=2000)]


class IssueState(StrEnum):
    """Where an issue stands."""

    OPEN = "open"
    ACKNOWLEDGED = "acknowledged"
    RESOLVED = "resolved"


class IssueAction(BaseModel):
    """One change made by hand, as audited."""

    action: str = Field(description="acknowledge, resolve or reopen")
    note: str | None
    api_key_id: int | None = Field(description="The API key that made it (its id; see `api_key_prefix`)")
    api_key_prefix: str | None
    at: datetime


class HandledSyncIssue(SyncIssue):
    """A sync issue, where it stands, and what people did about it."""

    state: IssueState
    acknowledged_at: datetime | None
    resolved_at: datetime | None = Field(description="By hand (see `actions`) or when its cause went away")
    actions: list[IssueAction] = Field(description="Changes made by hand, oldest first")


class HandledSyncIssuePage(BaseModel):
    """One page of sync issues; pass `next_cursor` as `cursor` for the next."""

    items: list[HandledSyncIssue]
    next_cursor: str | None


class OptionalNote(BaseModel):
    """Why (optional)."""

    model_config = ConfigDict(extra="forbid")
    note: Note | None = None


class RequiredNote(BaseModel):
    """Why: required to resolve an issue."""

    model_config = ConfigDict(extra="forbid")
    note: Note


async def acting_key(request: Request, _: Tenant) -> str:
    """The API key this (authenticated) request came with: the audit records its id and prefix."""
    return request.headers.get("authorization", "").partition(" ")[2].strip()


ActingKey = Annotated[str, Depends(acting_key)]


@router.get("/sync-issues", response_model=HandledSyncIssuePage)
async def list_sync_issues(
    tenant: Tenant,
    engine: Engine,
    settings: Settings,
    read: Conditional,
    state: Annotated[
        IssueState | None, Query(description="Default: unresolved (open or acknowledged)")
    ] = None,
    kind: AlertKind | None = None,
    domain: str | None = None,
    entity_id: str | None = None,
    cursor: str | None = None,
    limit: Annotated[int | None, Query(ge=1, le=500)] = None,
) -> Response:
    """Drift and stuck-payment issues, newest first, filtered; page with `cursor`."""
    filters = {k: str(v) for k, v in {"kind": kind, "domain": domain, "entity_id": entity_id}.items() if v}
    after = decode_cursor(cursor, int) if cursor else None
    size = limit or settings.page_size
    async with engine.connect() as conn:
        rows = await repo.list_issues(conn, tenant, state=state, filters=filters, after=after, limit=size + 1)
        items = await _views(conn, rows[:size])
    last = rows[size - 1] if len(rows) > size else None
    page = HandledSyncIssuePage(
        items=items, next_cursor=encode_cursor(last.opened_at, last.id) if last else None
    )
    return read.answer(page)


@router.get("/sync-issues/{issue_id}", response_model=HandledSyncIssue)
async def get_sync_issue(issue_id: str, tenant: Tenant, engine: Engine, read: Conditional) -> Response:
    """One sync issue with its audit; 404 for another tenant's."""
    async with engine.connect() as conn:
        return read.answer(await _view(conn, await _issue(conn, tenant, issue_id)))


@router.post("/sync-issues/{issue_id}/acknowledge", response_model=HandledSyncIssue, responses=errors(409))
async def acknowledge(
    issue_id: str, tenant: Tenant, engine: Engine, key: ActingKey, body: OptionalNote | None = None
) -> JSONResponse:
    """Say someone is on it: an open issue becomes `acknowledged` (409 otherwise)."""
    return await _change(engine, tenant, issue_id, "acknowledge", body.note if body else None, key)


@router.post("/sync-issues/{issue_id}/resolve", response_model=HandledSyncIssue, responses=errors(409))
async def resolve(
    issue_id: str, body: RequiredNote, tenant: Tenant, engine: Engine, key: ActingKey
) -> JSONResponse:
    """Close an open or acknowledged issue, with a note (409 if resolved already)."""
    return await _change(engine, tenant, issue_id, "resolve", body.note, key)


@router.post("/sync-issues/{issue_id}/reopen", response_model=HandledSyncIssue, responses=errors(409))
async def reopen(
    issue_id: str, tenant: Tenant, engine: Engine, key: ActingKey, body: OptionalNote | None = None
) -> JSONResponse:
    """Open a resolved issue again (409 if it is not resolved, or a newer occurrence is open)."""
    return await _change(engine, tenant, issue_id, "reopen", body.note if body else None, key)


#: The states each action applies to.
_FROM = {
    "acknowledge": {IssueState.OPEN},
    "resolve": {IssueState.OPEN, IssueState.ACKNOWLEDGED},
    "reopen": {IssueState.RESOLVED},
}


async def _change(
    engine: Engine, tenant: str, issue_id: str, action: str, note: str | None, key: str
) -> JSONResponse:
    """Apply `action` to the issue under a row lock (the projector and reconciler update the same rows)."""
    async with engine.begin() as conn:
        issue = await _issue(conn, tenant, issue_id, lock=True)
        state = _state_of(issue)
        if state not in _FROM[action]:
            raise Conflict(f"sync issue {issue.id} is {state.value}: it cannot be {action}d")
        if action == "reopen" and (newer := await repo.other_open_occurrence(conn, issue)) is not None:
            raise Conflict(f"sync issue {issue.id} came back as sync issue {newer}, which is open")
        await repo.record_action(conn, issue, action, note, key)
        view = await _view(conn, await _issue(conn, tenant, issue_id))
    return JSONResponse(view.model_dump(mode="json"), headers=NO_STORE)


async def _issue(conn: AsyncConnection, tenant: str, issue_id: str, *, lock: bool = False) -> Any:
    """The tenant's issue; NotFound for another tenant's or anything that is not an id."""
    row = None
    if issue_id.isascii() and issue_id.isdigit() and len(issue_id) < 19:
        row = await repo.get_issue(conn, tenant, int(issue_id), lock=lock)
    if row is None:
        raise NotFound(f"no sync issue {issue_id!r}")
    return row


def _state_of(issue: Any) -> IssueState:
    if issue.resolved_at is not None:
        return IssueState.RESOLVED
    return IssueState.ACKNOWLEDGED if issue.acknowledged_at is not None else IssueState.OPEN


async def _view(conn: AsyncConnection, issue: Any) -> HandledSyncIssue:
    return (await _views(conn, [issue]))[0]


async def _views(conn: AsyncConnection, rows: list[Any]) -> list[HandledSyncIssue]:
    """The API's view of issues rows, each with its audit."""
    actions = await repo.actions_of(conn, [r.id for r in rows])
    return [
        HandledSyncIssue(
            **SyncIssue.model_validate(r, from_attributes=True).model_dump(),
            state=_state_of(r),
            acknowledged_at=r.acknowledged_at,
            resolved_at=r.resolved_at,
            actions=[IssueAction.model_validate(a, from_attributes=True) for a in actions.get(r.id, [])],
        )
        for r in rows
    ]
