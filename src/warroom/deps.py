"""FastAPI dependencies shared by every router: the app context and the caller's role."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, Path, Query, Request

from warroom.auth import service as auth_service
from warroom.auth.models import Role
from warroom.auth.schemas import Principal
from warroom.context import AppContext
from warroom.db import MAX_ROW_ID
from warroom.errors import InvalidInput


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


def require_role(role: Role) -> Callable[[Request], Principal]:
    def dependency(request: Request) -> Principal:
        context = get_context(request)
        with context.db.read() as session:
            principal = auth_service.authenticate(session, bearer_token(request))
        return auth_service.require(principal, role)

    return dependency


Viewer = Annotated[Principal, Depends(require_role(Role.viewer))]
Responder = Annotated[Principal, Depends(require_role(Role.responder))]
Admin = Annotated[Principal, Depends(require_role(Role.admin))]

RowId = Annotated[int, Path(ge=1, le=MAX_ROW_ID)]
Offset = Annotated[int, Query(ge=0, le=MAX_ROW_ID)]


def once_only(*names: str) -> Callable[[Request], None]:
    """A dependency refusing (422) a query parameter of one value given more than once: FastAPI keeps the last
    one silently, so ``?since=24h&since=1h`` would answer something other than what was asked."""

    def dependency(request: Request) -> None:
        for name in names:
            given = request.query_params.getlist(name)
            if len(given) > 1:
                raise InvalidInput(
                    f"{name} was given {len(given)} times; it takes one value",
                    {"field": name, "given": given},
                )

    return dependency
