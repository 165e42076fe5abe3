"""What the API accepts as input: text PostgreSQL can store, bounded JSON, known query parameters.

Everything here answers with a problem naming the field, never lets bad input reach the
database (where a NUL or a lone surrogate is an asyncpg error, that is a 500).
"""

from __future__ import annotations

import json
import math
import re
from typing import Annotated, Any

from fastapi import Request
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from pydantic import AfterValidator
from starlette.datastructures import QueryParams

from paysync_core.errors import PaysyncError

_LONE_SURROGATE = re.compile("[\ud800-\udfff]")
_NO_QUERY = QueryParams()


class InvalidInput(PaysyncError):
    """Input the API refuses; `problems` names each field and what is wrong with it."""

    code = "invalid_request"

    def __init__(self, message: str, problems: list[dict[str, str]]) -> None:
        self.problems = problems
        super().__init__(message)


class UnknownParameter(InvalidInput):
    """A query parameter the route does not take (a typo would otherwise silently widen a filter)."""

    code = "unknown_parameter"


def text_problem(value: str) -> str | None:
    """Why a text cannot be accepted, or None: PostgreSQL stores no NUL, UTF-8 has no lone surrogates.

    Shared by every text input: path ids, query filters, body strings, headers like `Last-Event-ID`.
    """
    if "\x00" in value:
        return "contains a NUL character"
    if _LONE_SURROGATE.search(value):
        return "contains a lone surrogate, which is not Unicode text"
    return None


def _clean(value: str) -> str:
    problem = text_problem(value)
    if problem:
        raise ValueError(problem)
    return value


#: A string without NUL characters or lone surrogates (a body field).
CleanText = Annotated[str, AfterValidator(_clean)]


def json_problems(value: Any, field: str, *, max_depth: int, max_bytes: int) -> list[dict[str, str]]:
    """Problems of a free-form JSON value (metadata): unstorable text, NaN/Infinity, too deep, too big."""
    problems = _walk(value, field, 0, max_depth)
    if not problems:
        size = len(json.dumps(value, ensure_ascii=False).encode())
        if size > max_bytes:
            too_big = f"is {size} bytes as JSON; at most {max_bytes} are kept"
            problems.append({"field": field, "problem": too_big})
    return problems


def require_storable_json(value: Any, field: str, *, max_depth: int, max_bytes: int) -> None:
    """Raise InvalidInput naming every problem `json_problems` finds."""
    problems = json_problems(value, field, max_depth=max_depth, max_bytes=max_bytes)
    if problems:
        raise InvalidInput("the request is not valid", problems)


def _walk(value: Any, field: str, depth: int, max_depth: int) -> list[dict[str, str]]:
    if isinstance(value, dict | list) and depth >= max_depth:
        return [{"field": field, "problem": f"nests deeper than {max_depth} levels"}]
    if isinstance(value, dict):
        problems = [
            {"field": f"{field}.{key}", "problem": f"key {p}"} for key in value if (p := text_problem(key))
        ]
        for key, item in value.items():
            problems += _walk(item, f"{field}.{key}", depth + 1, max_depth)
        return problems
    if isinstance(value, list):
        return [p for i, item in enumerate(value) for p in _walk(item, f"{field}.{i}", depth + 1, max_depth)]
    if isinstance(value, float) and not math.isfinite(value):
        return [{"field": field, "problem": "NaN and Infinity are not JSON numbers"}]
    if isinstance(value, str) and (problem := text_problem(value)):
        return [{"field": field, "problem": problem}]
    return []


def _declared(dependant: Dependant, kind: str) -> set[str]:
    """Names of the route's `query_params` or `header_params`, those of its dependencies included."""
    names = {field.alias for field in getattr(dependant, kind)}
    for sub_dependant in dependant.dependencies:
        names |= _declared(sub_dependant, kind)
    return names


#: Where a route keeps what `_parameters_of` found (routes are not hashable: no cache can key on them).
_PARAMETERS = "_paysync_parameters"


def _parameters_of(route: APIRoute) -> tuple[frozenset[str], tuple[str, ...]]:
    """The query parameters a route takes, and the headers it declares (sorted, as sent): found once a
    route, since a request's walk of its dependencies was a tenth of a status read's CPU."""
    found = getattr(route, _PARAMETERS, None)
    if found is None:
        headers = sorted({name.replace("_", "-") for name in _declared(route.dependant, "header_params")})
        found = (frozenset(_declared(route.dependant, "query_params")), tuple(headers))
        setattr(route, _PARAMETERS, found)
    return found


async def strict_parameters(request: Request) -> None:
    """Refuse unknown query parameters (400), and path, query or declared header values (like
    `Last-Event-ID`) that are not storable text (422)."""
    route = request.scope.get("route")
    # No query string (a status read's, a registration's): no parameters to parse (a tenth of the check).
    query = request.query_params if request.scope.get("query_string") else _NO_QUERY
    headers: list[tuple[str, str]] = []
    if isinstance(route, APIRoute):
        taken, declared_headers = _parameters_of(route)
        unknown = sorted(set(query) - taken)
        if unknown:
            raise UnknownParameter(
                f"unknown query parameter(s): {', '.join(unknown)}",
                [{"field": name, "problem": "unknown query parameter"} for name in unknown],
            )
        sent = request.headers
        headers = [(name, value) for name in declared_headers if (value := sent.get(name)) is not None]
    values = [*request.path_params.items(), *query.multi_items(), *headers]
    problems = [{"field": name, "problem": p} for name, value in values if (p := text_problem(value))]
    if problems:
        raise InvalidInput("the request is not valid", problems)
