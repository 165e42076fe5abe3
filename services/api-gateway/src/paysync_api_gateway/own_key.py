"""`GET /v1/key`: what the calling API key may do (its tenant, kind, scopes, expiry), never the key itself.

The console reads it at sign-in to offer only what the key may do (bulk checks, handling sync
issues, overrides); the API still decides on every call (`access.py`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from paysync_api_gateway.access import KeyAccess
from paysync_api_gateway.auth import current_key
from paysync_api_gateway.conditional import NO_STORE
from paysync_api_gateway.inputs import strict_parameters

router = APIRouter(prefix="/v1", dependencies=[Depends(strict_parameters)])


class KeyInfo(BaseModel):
    """The calling key's tenant and access."""

    tenant: str
    key_id: int
    kind: Literal["secret", "publishable"]
    scopes: list[str]
    expires_at: datetime | None


@router.get("/key", response_model=KeyInfo)
async def own_key(key: Annotated[KeyAccess, Depends(current_key)]) -> JSONResponse:
    """The tenant and scopes of the API key this request carries (a secret key; 403 for a publishable one)."""
    info = KeyInfo(
        tenant=key.tenant,
        key_id=key.key_id,
        kind=key.kind,
        scopes=sorted(key.scopes),
        expires_at=key.expires_at,
    )
    return JSONResponse(info.model_dump(mode="json"), headers=NO_STORE)
