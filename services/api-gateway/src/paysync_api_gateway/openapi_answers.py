"""Adds to every route the answers that follow from what it is (the rules: `contract.py`)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute

from paysync_api_gateway.admin import operator
from paysync_api_gateway.auth import current_key, current_tenant
from paysync_api_gateway.conditional import conditional_read
from paysync_api_gateway.contract import NOT_MODIFIED, errors
from paysync_api_gateway.stream_tokens import stream_access


def _calls(dependant: Dependant) -> Iterator[Callable[..., Any]]:
    for sub in dependant.dependencies:
        if sub.call is not None:
            yield sub.call
        yield from _calls(sub)


def _codes_of(route: APIRoute) -> list[int]:
    calls = set(_calls(route.dependant))
    dependant = route.dependant
    # Every router refuses unknown or unstorable parameters (`strict_parameters`); any route can meet a
    # database connection the server dropped (503 `database_unavailable`, errors.py).
    codes = [400, 422, 500, 503]
    if calls & {current_key, current_tenant, stream_access}:  # keys are throttled per address when they fail;
        codes += [401, 403, 429]  # 403: a scope the key lacks, or a page's origin the tenant does not allow
    if operator in calls:
        codes += [401]
    if route.body_field is not None:
        codes += [400, 413, 422]
    if dependant.path_params:
        codes += [404]
    return sorted(set(codes))


def _api_routes(routes: list[Any]) -> Iterator[APIRoute]:
    """Every APIRoute, those of included routers too (FastAPI keeps those as the router included)."""
    for route in routes:
        if isinstance(route, APIRoute):
            yield route
        elif (router := getattr(route, "original_router", None)) is not None:
            yield from _api_routes(router.routes)


def document_answers(app: FastAPI) -> None:
    """Add to each route the answers that follow from what it is (see `contract.py`)."""
    for route in _api_routes(app.routes):
        for code, answer in errors(*_codes_of(route)).items():
            route.responses.setdefault(code, answer)
        if conditional_read in set(_calls(route.dependant)):
            route.responses.setdefault(304, NOT_MODIFIED[304])
    app.openapi_schema = None
