"""What an endpoint may declare it needs; `app.py` puts each one on the app once, at start.

Every dependency of the API is `async def`, even those that only read an attribute: FastAPI runs a
plain `def` dependency on a worker thread, a thread hop per dependency and request
(`tests/unit/test_dependencies.py` keeps it so).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import httpx
from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncEngine

from paysync_api_gateway.cors import OriginDirectory
from paysync_api_gateway.driver_pool import DriverPool
from paysync_api_gateway.key_cache import ApiKeyCache
from paysync_api_gateway.limits import FailedKeyThrottle
from paysync_api_gateway.presses import RefreshPresses
from paysync_api_gateway.refresh import RefreshCoordinator
from paysync_api_gateway.registrations import CredentialModes
from paysync_api_gateway.settings import ApiGatewaySettings
from paysync_api_gateway.wakeups import MatcherWakeups
from paysync_core.contracts import PaymentObservation
from paysync_core.publishers import TopicPublisher

if TYPE_CHECKING:  # stream.py declares its endpoint with these aliases
    from paysync_api_gateway.stream import StreamSlots


async def settings(request: Request) -> ApiGatewaySettings:
    """The api-gateway's settings."""
    return request.app.state.settings


async def engine(request: Request) -> AsyncEngine:
    """The database engine."""
    return request.app.state.engine


async def driver_pool(request: Request) -> DriverPool:
    """The driver pool (`driver_pool.py`): the one-statement work of the routes front ends call in a loop."""
    return request.app.state.driver_pool


async def matcher_wakeups(request: Request) -> MatcherWakeups:
    """The wake-ups of the projector's matcher after new registrations."""
    return request.app.state.matcher_wakeups


async def refresh(request: Request) -> RefreshCoordinator:
    """The coordinator of on-demand checks and their replies."""
    return request.app.state.refresh


async def failed_keys(request: Request) -> FailedKeyThrottle:
    """The throttle of failed API-key checks."""
    return request.app.state.failed_keys


async def api_keys(request: Request) -> ApiKeyCache:
    """The cache of API-key checks."""
    return request.app.state.api_keys


async def credential_modes(request: Request) -> CredentialModes:
    """The cipher of tenants' gateway credentials, and the modes of those decrypted already."""
    return request.app.state.credential_modes


async def cors_origins(request: Request) -> OriginDirectory:
    """Every tenant's allowed web origins."""
    return request.app.state.cors_origins


async def refresh_presses(request: Request) -> RefreshPresses:
    """Refresh presses in flight, and each key's rate of them."""
    return request.app.state.refresh_presses


async def notifier(request: Request) -> httpx.AsyncClient:
    """The HTTP client of the notifier's internal live stream."""
    return request.app.state.notifier


async def observations_out(request: Request) -> TopicPublisher[PaymentObservation]:
    """The publisher of observations (an operator's override is one)."""
    return request.app.state.observations_out


async def stream_slots(request: Request) -> StreamSlots:
    """The live streams each tenant (and the instance) may hold at once."""
    return request.app.state.stream_slots


Settings = Annotated[ApiGatewaySettings, Depends(settings)]
Engine = Annotated[AsyncEngine, Depends(engine)]
Pool = Annotated[DriverPool, Depends(driver_pool)]
Wakeups = Annotated[MatcherWakeups, Depends(matcher_wakeups)]
Refresh = Annotated[RefreshCoordinator, Depends(refresh)]
FailedKeys = Annotated[FailedKeyThrottle, Depends(failed_keys)]
ApiKeys = Annotated[ApiKeyCache, Depends(api_keys)]
Modes = Annotated[CredentialModes, Depends(credential_modes)]
Origins = Annotated[OriginDirectory, Depends(cors_origins)]
Presses = Annotated[RefreshPresses, Depends(refresh_presses)]
Notifier = Annotated[httpx.AsyncClient, Depends(notifier)]
Slots = Annotated["StreamSlots", Depends(stream_slots)]
Observations = Annotated[TopicPublisher[PaymentObservation], Depends(observations_out)]
