"""`/admin/v1/tenants/{id}/cors`: the web origins whose pages may call `/v1` with a tenant's keys."""

from __future__ import annotations

import re
from typing import Annotated

from fastapi import APIRouter, Depends
from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from paysync_api_gateway.admin import Operator
from paysync_api_gateway.deps import Engine, Origins
from paysync_api_gateway.inputs import strict_parameters
from paysync_core.db import tenants as tenant_repo

router = APIRouter(
    prefix="/admin/v1/tenants/{tenant_id}", tags=["admin"], dependencies=[Depends(strict_parameters)]
)
#: What a browser sends as `Origin`: scheme, host, and a port only when it is not the default.
_ORIGIN = re.compile(r"^(?P<scheme>https?)://(?P<host>[a-z0-9.-]+|\[::1\])(?::(?P<port>[0-9]{1,5}))?$")
_LOCAL_HOSTS = {"localhost", "127.0.0.1", "[::1]"}


def web_origin(value: str) -> str:
    """`https://host[:port]` (or `http://` for localhost only), as browsers send it: lower case, no path."""
    match = _ORIGIN.match(value.lower())
    if match is None:
        raise ValueError("is not an origin: scheme://host[:port], no path, query or trailing slash")
    scheme, host, port = match["scheme"], match["host"], match["port"]
    if scheme == "http" and host not in _LOCAL_HOSTS:
        raise ValueError("must be https (http only for localhost)")
    if host.startswith(".") or host.endswith(".") or ".." in host:
        raise ValueError("has no valid host name")
    if port is not None and not 0 < int(port) < 65536:
        raise ValueError("has no valid port")
    default = {"https": "443", "http": "80"}[scheme]
    return f"{scheme}://{host}" if port in (None, default) else f"{scheme}://{host}:{int(port)}"


class CorsSettings(BaseModel):
    """The origins (e.g. `https://shop.example`) whose pages may call the API with the tenant's keys."""

    model_config = ConfigDict(extra="forbid")
    allowed_origins: list[Annotated[str, Field(max_length=255), AfterValidator(web_origin)]] = Field(
        max_length=50, description="Empty: no web page may call the API (the default)"
    )


@router.get("/cors")
async def get_cors(tenant_id: str, engine: Engine, _: Operator) -> CorsSettings:
    """The origins the tenant allows."""
    async with engine.connect() as conn:
        return CorsSettings(allowed_origins=await tenant_repo.cors_origins(conn, tenant_id))


@router.put("/cors")
async def set_cors(
    tenant_id: str, body: CorsSettings, engine: Engine, origins: Origins, _: Operator
) -> CorsSettings:
    """Replace the origins the tenant allows: this replica applies them at once, the others within
    `PAYSYNC_API_GATEWAY_API_KEY_CACHE_SECONDS`."""
    allowed = sorted(set(body.allowed_origins))
    async with engine.begin() as conn:
        await tenant_repo.set_cors_origins(conn, tenant_id, allowed)
    origins.forget()
    return CorsSettings(allowed_origins=allowed)
