"""FastAPI dependencies shared by every router: the app context and the caller's role."""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from types import UnionType
from typing import Annotated, Any, Union, get_args, get_origin

from fastapi import Depends, Path, Query, Request, Response
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute

from warroom.auth import service as auth_service
from warroom.auth.models import Role
from warroom.auth.schemas import Principal
from warroom.context import AppContext
from warroom.db import MAX_ROW_ID, is_retryable, unavailable_reason
from warroom.errors import InvalidInput

log = logging.getLogger("warroom")


def get_context(request: Request) -> AppContext:
    context: AppContext = request.app.state.context
    return context


Context = Annotated[AppContext, Depends(get_context)]


def bearer_token(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return None


# The dependencies that read a Bearer token: a route with one is the API's, read by scripts and the CLI.
_TOKEN_CHECKS: set[Callable[..., Any]] = set()


def require_role(role: Role) -> Callable[[Request], Principal]:
    def dependency(request: Request) -> Principal:
        context = get_context(request)
        with context.db.read() as session:
            principal = auth_service.authenticate(session, bearer_token(request))
        return auth_service.require(principal, role)

    _TOKEN_CHECKS.add(dependency)
    return dependency


Viewer = Annotated[Principal, Depends(require_role(Role.viewer))]
Responder = Annotated[Principal, Depends(require_role(Role.responder))]
Admin = Annotated[Principal, Depends(require_role(Role.admin))]

RowId = Annotated[int, Path(ge=1, le=MAX_ROW_ID)]
Offset = Annotated[int, Query(ge=0, le=MAX_ROW_ID)]
# Keyset paging of a newest-first list: an offset counts from the newest row, so rows that arrive between two
# pages shift the next one (rows seen twice); the last id seen does not move.
BeforeId = Annotated[
    int | None,
    Query(
        ge=1,
        le=MAX_ROW_ID,
        description="Only what comes after the row of this id in the list's newest-first order: give the "
        "last id of a page to get the next, which rows arriving meanwhile do not shift (as they do an "
        "offset's).",
    ),
]


_MANY_VALUES = (list, set, frozenset, tuple, Sequence, AbstractSet)


def _takes_many(annotation: Any) -> bool:
    """Whether a query parameter's annotation holds several values (``list[str] | None``)."""
    origin = get_origin(annotation)
    if origin is Annotated:
        return _takes_many(get_args(annotation)[0])
    if origin in (Union, UnionType):
        return any(_takes_many(arg) for arg in get_args(annotation))
    return (origin or annotation) in _MANY_VALUES


# The same integration key may come twice; two different ones get 401 (``fastpath.integration_key``).
_OWN_RULE = frozenset({"key"})


@dataclass(frozen=True)
class _QueryParameters:
    names: tuple[str, ...]  # every query parameter the route and its dependencies read
    single: tuple[str, ...]  # those of one value
    takes_token: bool


_QUERY_PARAMETERS: dict[int, tuple[APIRoute, _QueryParameters]] = {}


def _query_parameters(route: APIRoute) -> _QueryParameters:
    """The query parameters a route and its dependencies read (their query names)."""
    known = _QUERY_PARAMETERS.get(id(route))
    if known is not None and known[0] is route:
        return known[1]
    names: list[str] = []
    single: list[str] = []
    takes_token = False
    pending: list[Dependant] = [route.dependant]
    while pending:
        dependant = pending.pop()
        takes_token = takes_token or dependant.call in _TOKEN_CHECKS
        for field in dependant.query_params:
            names.append(field.alias)
            if field.alias not in _OWN_RULE and not _takes_many(field.field_info.annotation):
                single.append(field.alias)
        pending.extend(dependant.dependencies)
    found = _QueryParameters(tuple(dict.fromkeys(names)), tuple(dict.fromkeys(single)), takes_token)
    _QUERY_PARAMETERS[id(route)] = (route, found)  # routes live as long as their app
    return found


async def single_values(request: Request) -> None:
    """Refuses (422) a query parameter of one value given more than once, on every route: FastAPI keeps the
    last one silently, so ``?since=24h&since=1h`` would answer something other than what was asked. And on
    the API's reads, a parameter the route does not take: FastAPI ignores it, so ``?stauts=firing`` would
    answer every alert as if filtered. (Public routes, such as acknowledgement links that mail clients may
    tag, and writes are left alone.)"""
    route = request.scope.get("route")
    if not request.scope.get("query_string") or not isinstance(route, APIRoute):
        return
    parameters = _query_parameters(route)
    for name in parameters.single:
        given = request.query_params.getlist(name)
        if len(given) > 1:
            raise InvalidInput(
                f"{name} was given {len(given)} times; it takes one value", {"field": name, "given": given}
            )
    if request.method == "GET" and parameters.takes_token:
        for name in request.query_params:
            if name not in parameters.names:
                taken = ", ".join(parameters.names) if parameters.names else "none"
                raise InvalidInput(
                    f"unknown query parameter {name!r}; {route.path} takes: {taken}",
                    {"field": name, "allowed": list(parameters.names)},
                )


# Runs in all of a request the database aborted to settle a deadlock or a serialization failure, as intake
# runs a delivery (``intake.ingest_alone``).
WRITE_ATTEMPTS = 3


class RetriedRoute(APIRoute):
    """A route run again, whole, when PostgreSQL aborted its transaction to settle a deadlock or a
    serialization failure with another process's (``db.is_retryable``): rolled back, it changed nothing, and
    run again it waits for the other instead of telling the person the database is down. For routers whose
    every effect is in the request's transaction (outbox rows, jobs, ``db.on_commit``)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def retried(request: Request) -> Response:
            for attempt in range(1, WRITE_ATTEMPTS + 1):
                try:
                    return await handler(request)
                except Exception as exc:
                    if not is_retryable(exc) or attempt == WRITE_ATTEMPTS:
                        raise
                    log.info(
                        "%s %s: run again (%s)", request.method, request.url.path, unavailable_reason(exc)
                    )
            raise AssertionError("unreachable")

        return retried
