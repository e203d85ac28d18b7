"""The FastAPI application factory: every domain's router, the error shape, limits, health, metrics."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import logging
import signal
import socket
import sqlite3
import sys
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import parse_qsl

import fastapi_offline
from fastapi import Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, RedirectResponse, Response
from fastapi.routing import iter_route_contexts
from fastapi.staticfiles import StaticFiles
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry
from sqlalchemy import text
from sqlalchemy.exc import OperationalError, ProgrammingError
from sqlalchemy.exc import TimeoutError as SQLAlchemyTimeoutError
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from warroom import __version__, migrate, openapi, reload
from warroom.alerts import adapters, fastpath, mail
from warroom.alerts.api import ReportsEdge
from warroom.alerts.api import router as alerts_router
from warroom.alerts.metrics import count_refused
from warroom.auth.api import router as auth_router
from warroom.auth.idempotency import IdempotencyMiddleware
from warroom.context import AppContext
from warroom.db import as_sqlalchemy_error, is_retryable, schema_missing, unavailable_reason
from warroom.deps import Admin, Viewer, single_values
from warroom.errors import (
    SCHEMA_MISSING_CODE,
    SCHEMA_MISSING_MESSAGE,
    TABLES_DROPPED_MESSAGE,
    UNAVAILABLE_CODE,
    UNAVAILABLE_MESSAGE,
    UNAVAILABLE_RETRY_AFTER_SECONDS,
    Conflict,
    InvalidInput,
    NotFound,
    UnsupportedMediaType,
    WarroomError,
    error_body,
    error_details,
)
from warroom.fields import validation_entry
from warroom.incidents.api import router as incidents_router
from warroom.jobs.api import router as jobs_router
from warroom.jsonbody import (
    NOT_JSON,
    NOT_UTF8,
    TOO_DEEP,
    decode_error,
    nul_field,
    surrogate_escape_in,
    surrogate_field,
)
from warroom.metrics.collectors import (
    AlertCollector,
    HeartbeatCollector,
    IncidentCollector,
    IntegrationCollector,
    JobCollector,
    exposition,
)
from warroom.notify.api import router as notify_router
from warroom.notify.config import longest_delivery_timeout
from warroom.notify.service import hide_ack_links
from warroom.oncall.api import router as oncall_router
from warroom.orgconfig import ConfigError, ConfigStatus
from warroom.settings import Settings
from warroom.severity.api import router as severity_router

log = logging.getLogger("warroom")

CONCURRENT_MESSAGE = (
    "a change made at the same moment to the same records got in the way; nothing was changed: retry"
)

_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "invalid",
    429: "rate_limited",
}


OPSGENIE_PATH = fastpath.OPSGENIE_PATH
# Reports come from people's tools as alerts do: a body that cannot be read is answered as the intake answers
# it (400 invalid_payload), not with FastAPI's 422 "JSON decode error".
REPORTS_PATH = "/api/v1/reports"


# An answer sent before the request's body was received: the connection ends with it (its body is not read).
_CLOSE_CONNECTION = {"connection": "close"}


class RequestGuardMiddleware:
    """Checks every request before routing: 413 for bodies over the limit (with or without
    Content-Length), 422 for NUL characters, which no field accepts and PostgreSQL cannot store, and for lone
    UTF-16 surrogates in a JSON body (``"\\ud800"``), which are not UTF-8 and neither database stores, in a
    key or string at any depth (free-form objects too, which no schema checks). On an intake route (a
    tool's webhook, Opsgenie's API) either is a refused delivery, counted as one and answered as the route's
    handler answers a bad delivery (Opsgenie's shape; 400 naming the field of a NUL), as is a compressed body
    (415). PagerDuty's routes, whose key is in the body, refuse a NUL or lone surrogate themselves once the
    key is checked (``changes.refuse_unstorable``). A JSON body in UTF-16 or UTF-32 is 400 off the intake
    routes (their parser takes only UTF-8). A body over the limit
    sent to an intake route is logged too (``fastpath.log_too_large``). The monitoring tools' routes take a
    NUL in the body (``fastpath.replaces_nul``: their parsers replace it) and Alertmanager's and Grafana's a
    larger body (``max_group_bytes``), as the fast path does. On a tool's webhook and Opsgenie's routes the
    key (in the URL or headers) is checked first, before the body's encoding and size, before it is received
    (``fastpath.refuse_before_body``): a caller whose key cannot deliver is answered 401/403 at once, with
    ``Connection: close``. PagerDuty's Change Events API has its key in the body: checked after it is read.

    A heartbeat's ping or report is let through unchecked: its handler reads the body as it arrives, of any
    size, keeping the tail of a failed run's output with NULs replaced; its key is only hashed and its name
    only looked up, and it reads no other parameter. A cron job's failure must not be lost to its log."""

    def __init__(self, app: ASGIApp, max_bytes: int, max_group_bytes: int, context: AppContext) -> None:
        self.app = app
        self.max_bytes = max_bytes
        # The limit of Alertmanager's and Grafana's routes (``fastpath.GROUP_PATHS``).
        self.max_group_bytes = max_group_bytes
        self.context = context

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or (
            scope["method"] == "POST" and scope["path"].startswith(fastpath.HEARTBEAT_PATH_PREFIX)
        ):
            await self.app(scope, receive, send)
            return
        if "\x00" in scope["path"]:
            await self._reject_nul(scope, send, "path")
            return
        if b"%00" in scope["query_string"]:
            await self._reject_nul(scope, send, _query_nul_field(scope["query_string"]))
            return
        app = scope.get("app")
        if (
            app is not None
            and fastpath.key_in_head(scope["method"], scope["path"]) is not None
            and _routed(app, scope)
        ):
            # A tool's webhook, Opsgenie's routes: the key (in the URL or headers) comes first, before the
            # body's encoding and size are looked at and before it is received; a caller whose key cannot
            # deliver is answered without it (401/403, never 413/415, and nothing logged).
            refused = await fastpath.refuse_before_body(app.state, self.context, scope)
            if refused is not None:
                status, body = refused
                await self._send(
                    send,
                    Response(
                        body, status_code=status, media_type="application/json", headers=_CLOSE_CONNECTION
                    ),
                )
                return
        headers = dict(scope["headers"])
        encoding = headers.get(b"content-encoding")
        if encoding is not None and fastpath.intake_source(scope["method"], scope["path"]) is not None:
            unsupported = fastpath.unsupported_encoding(encoding)
            if unsupported is not None:
                await self._refuse(scope, send, unsupported)
                return
        declared = headers.get(b"content-length")
        limit = fastpath.body_limit(scope["path"], self.max_bytes, self.max_group_bytes)
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await self._too_large(scope, send, limit, int(declared))
            return
        # Read the body up front (it is at most the limit) so a chunked upload over the limit gets a
        # clean 413 before any handler sees it.
        chunks: list[bytes] = []
        received = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                await self.app(scope, _replay([message]), send)
                return
            body = message.get("body", b"")
            received += len(body)
            if received > limit:
                await self._too_large(scope, send, limit, None)
                return
            chunks.append(body)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        if b"\x00" in body and _parsed_as_json(scope, headers):
            # JSON exchanged between systems is UTF-8 (RFC 8259 section 8.1), but the API's parser
            # (``json.loads`` of bytes) also decodes UTF-16 and UTF-32, whose escapes (``\\ud800``,
            # ``\\u0000``) the byte searches below cannot see. Such a body always has a NUL byte, since every
            # JSON text has ASCII characters (quotes, braces, digits); a UTF-8 JSON body never has one (a NUL
            # in text must be escaped). So one C byte search (memchr, no copy) finds every such body, where a
            # UTF-8 check would decode every body and still pass a BOM-less UTF-16 body of ASCII characters
            # (NUL bytes are UTF-8). Another body that is not UTF-8 fails the parser's UTF-8 decoding (400).
            # A UTF-8 byte order mark is read past, as the intake's parser does.
            await self._not_utf8(scope, send, body)
            return
        # PagerDuty's routes have their key in the body, which comes first: their handlers refuse a NUL or
        # a lone surrogate once it is checked (``changes.refuse_unstorable``), as PagerDuty names nothing but
        # the key to a caller it does not know.
        checks_text = not fastpath.key_in_body(scope["method"], scope["path"])
        if checks_text and b"\\u0000" in body and not fastpath.replaces_nul(scope["method"], scope["path"]):
            field = _json_nul_field(body)
            if field is not None:
                await self._reject_nul(scope, send, field)
                return
        if checks_text and surrogate_escape_in(body):
            field = _json_surrogate_field(body)
            if field is not None:
                await self._reject(scope, send, adapters.surrogate_refusal(field))
                return
        replayed: Message = {"type": "http.request", "body": body, "more_body": False}
        await self.app(scope, _replay([replayed], receive), send)

    async def _not_utf8(self, scope: Scope, send: Send, body: bytes) -> None:
        """A JSON body in UTF-16 or UTF-32 (or with a NUL byte): 400 as a body the API's parser cannot decode
        is answered (``_unreadable_body``), naming the first byte at fault."""
        try:
            body.decode("utf-8")
        except UnicodeDecodeError as bad:
            message = f"{NOT_UTF8} (byte {bad.start}: 0x{body[bad.start]:02x})"
        else:
            message = f"{NOT_UTF8} JSON (byte {body.index(0)}: 0x00)"
        message += ": send JSON encoded as UTF-8 (UTF-16 and UTF-32 are not taken)"
        details = [{"field": "body", "message": message}]
        if scope["path"].startswith(REPORTS_PATH):
            answer = error_body("invalid_payload", message, details)
        else:
            answer = error_body(_HTTP_CODES[400], message, details)
        await self._send(send, JSONResponse(answer, status_code=400))

    async def _too_large(self, scope: Scope, send: Send, limit: int, size: int | None) -> None:
        await fastpath.log_too_large(self.context, scope, limit, size)
        await self._refuse(scope, send, fastpath.too_large(limit))

    async def _refuse(self, scope: Scope, send: Send, exc: WarroomError) -> None:
        """``exc`` as the intake route answers it (and counted), else in Warroom's shape."""
        answer = fastpath.refused_before_handler(scope["method"], scope["path"], exc)
        if answer is None:
            await self._send(send, JSONResponse(error_body(exc.code, exc.message), status_code=exc.status))
            return
        status, body = answer
        await self._send(send, Response(body, status_code=status, media_type="application/json"))

    async def _reject_nul(self, scope: Scope, send: Send, field: str) -> None:
        """A NUL in ``field``: on an intake route as its own parser refuses one (400 naming the field, or
        Opsgenie's 422 by field); elsewhere 422 naming the field as well, as any field at fault is named
        (a public report's sender has only the answer to go by)."""
        await self._reject(scope, send, adapters.nul_refusal(field))

    async def _reject(self, scope: Scope, send: Send, refusal: adapters.InvalidPayload) -> None:
        """A field's text no database can store (a NUL, a lone surrogate): on an intake route as its parser
        refuses it, else 422 naming the field."""
        if fastpath.intake_source(scope["method"], scope["path"]) is not None:
            await self._refuse(scope, send, refusal)
            return
        answer = error_body("invalid", refusal.message, refusal.details)
        await self._send(send, JSONResponse(answer, status_code=422))

    @staticmethod
    async def _send(send: Send, response: Response) -> None:
        await send(
            {"type": "http.response.start", "status": response.status_code, "headers": response.raw_headers}
        )
        await send({"type": "http.response.body", "body": response.body})


# The longest webhook format name its route takes (``alerts.api.webhook_alerts``): a longer one is refused
# (422) by the route's validation, whatever the key.
_WEBHOOK_NAME_MAX = 60


def _routed(app: Any, scope: Scope) -> bool:
    """Whether a request is one of the app's routes (its method too), which its handler would answer: a
    path with a trailing slash, or a webhook name no format can have, is refused as it was (404, 422)."""
    path = scope["path"]
    if path.startswith(fastpath.WEBHOOK_PATH_PREFIX):
        name = path[len(fastpath.WEBHOOK_PATH_PREFIX) :]
        if not name or "/" in name or len(name) > _WEBHOOK_NAME_MAX:
            return False
    return any(route.matches(scope)[0] == Match.FULL for route in app.router.routes)


def _parsed_as_json(scope: Scope, headers: dict[bytes, bytes]) -> bool:
    """Whether a request's body is read as JSON by the API's parser: FastAPI's rule (no Content-Type, or
    ``application/json`` or ``application/*+json``), off the intake routes, whose parser (orjson) takes
    only UTF-8 and answers in the route's shape after its key is checked."""
    if fastpath.intake_source(scope["method"], scope["path"]) is not None:
        return False
    content_type = headers.get(b"content-type")
    if content_type is None:
        return True
    media = content_type.partition(b";")[0].strip().lower()
    kind, _, subtype = media.partition(b"/")
    return kind == b"application" and (subtype == b"json" or subtype.endswith(b"+json"))


def _count_intake_refusal(scope: Scope, reason: str) -> None:
    source = fastpath.intake_source(scope["method"], scope["path"])
    if source is not None:
        count_refused(source, reason)


def _json_nul_field(body: bytes) -> str | None:
    """Where a JSON body has a NUL in a key or string (a body that is not JSON is left to its handler). Read
    with the parser FastAPI's routes use, which takes what orjson refuses (NaN, big integers)."""
    try:
        return nul_field(json.loads(body))
    except (ValueError, RecursionError):
        return None


def _json_surrogate_field(body: bytes) -> str | None:
    """Where a JSON body has a lone UTF-16 surrogate in a key or string (``"\\ud800"``, which Python's parser
    keeps and no database can store); a body that is not JSON is left to its handler."""
    try:
        return surrogate_field(json.loads(body))
    except (ValueError, RecursionError):
        return None


def _query_nul_field(query: bytes) -> str:
    """The query parameter with a NUL (%00) in its name or value, to name it."""
    for name, value in parse_qsl(query.decode("latin-1"), keep_blank_values=True):
        if "\x00" in name or "\x00" in value:
            return name.replace("\x00", "\\u0000") or "query"
    return "query"


def _replay(messages: list[Message], then: Receive | None = None) -> Receive:
    pending = list(messages)

    async def receive() -> Message:
        if pending:
            return pending.pop(0)
        if then is not None:
            return await then()
        return {"type": "http.disconnect"}

    return receive


def _field_of(loc: tuple[Any, ...]) -> tuple[str, int | None]:
    """Where a validation error is: a query, path or header parameter by its name as sent (``status``, not
    ``status.0``), with the position of the value at fault among its repeats (``?status=a&status=b``: 1 for
    the second); a body's field by its path (``services.0``)."""
    if len(loc) >= 2 and loc[0] in ("query", "path", "header"):
        return str(loc[1]), next((part for part in loc[2:] if isinstance(part, int)), None)
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")]
    return ".".join(parts) or "body", None


def _unreadable_body(request: Request, message: str, status: int) -> JSONResponse:
    """A body that could not be read as JSON: 400 invalid_payload for reports, as the intake answers; the
    API's usual answer (``status``) elsewhere, with the reason."""
    details = [{"field": "body", "message": message.partition(": ")[2] or message}]
    if request.url.path.startswith(REPORTS_PATH):
        return JSONResponse(error_body("invalid_payload", message, details), status_code=400)
    return JSONResponse(error_body(_HTTP_CODES[status], message, details), status_code=status)


def _no_route(request: Request) -> Response:
    """404 for a path no route has. Never a redirect to the path without its trailing slash (Starlette's
    ``redirect_slashes``): its Location is built from the Host header, in plain http behind a TLS proxy, with
    the key of the query, and a sender that follows it sends key and body there. On an intake route (with or
    without the slash) it is a refused delivery, answered in the route's shape."""
    path = request.scope["path"]
    bare = path.rstrip("/")
    message = "Not Found"
    if bare and bare != path:
        scope = {**request.scope, "path": bare}
        if any(route.matches(scope)[0] != Match.NONE for route in request.app.router.routes):
            message = f"no route {path}: drop the trailing slash ({bare})"
    answer = fastpath.refused_before_handler(request.method, bare or path, NotFound(message))
    if answer is not None:
        status, body = answer
        return Response(body, status_code=status, media_type="application/json")
    return JSONResponse(error_body("not_found", message), status_code=404)


_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")


def _method_not_allowed(request: Request) -> Response:
    """405 naming every method the path takes. Starlette names only those of the first route whose path
    matched, and a path such as ``/api/v1/incidents`` has one route to list and another to declare."""
    allowed = [
        method
        for method in _METHODS
        if any(
            route.matches({**request.scope, "method": method})[0] == Match.FULL
            for route in request.app.router.routes
        )
    ]
    if "GET" in allowed:
        allowed.insert(1, "HEAD")  # answered as GET without the body
    message = f"{request.method} is not allowed on {request.scope['path']}; it takes {', '.join(allowed)}"
    return JSONResponse(
        error_body("method_not_allowed", message, error_details(message, {"allowed": allowed})),
        status_code=405,
        headers={"Allow": ", ".join(allowed)},
    )


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(WarroomError)
    async def _domain_error(_: Request, exc: WarroomError) -> JSONResponse:
        return JSONResponse(error_body(exc.code, exc.message, exc.details), status_code=exc.status)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> Response:
        not_json = next((error for error in exc.errors() if error.get("type") == "json_invalid"), None)
        if not_json is not None:
            loc = tuple(not_json.get("loc") or ())
            position = loc[-1] if loc and isinstance(loc[-1], int) else None
            reason = str((not_json.get("ctx") or {}).get("error") or "unreadable")
            return _unreadable_body(request, decode_error(reason, exc.body, position), 422)
        if (
            isinstance(exc.body, bytes)
            and not request.url.path.startswith(OPSGENIE_PATH)  # answered in Opsgenie's shape below
            and any(tuple(error.get("loc") or ()) == ("body",) for error in exc.errors())
        ):
            # FastAPI reads a body as JSON only when it is declared so; ``curl -d`` declares a form.
            sent_as = request.headers.get("content-type", "").partition(";")[0].strip() or "no content type"
            message = (
                f"the body must be JSON, sent with Content-Type: application/json (it came as {sent_as})"
            )
            return JSONResponse(
                error_body(UnsupportedMediaType.code, message, [{"field": "body", "message": message}]),
                status_code=415,
            )
        if request.url.path.startswith(REPORTS_PATH) and any(
            error.get("type") == "missing" and tuple(error.get("loc") or ()) == ("body",)
            for error in exc.errors()
        ):
            return _unreadable_body(request, "the body is empty: send a JSON object", 422)
        details = []
        for error in exc.errors():
            field, index = _field_of(tuple(error["loc"]))
            details.append(validation_entry(field, error, index=index))
        if request.url.path.startswith(OPSGENIE_PATH):  # tools built for Opsgenie read its error shape
            status, body = fastpath.opsgenie_invalid_request(details)  # counted as a refused delivery
            return Response(body, status_code=status, media_type="application/json")
        _count_intake_refusal(request.scope, "invalid_payload")  # a webhook's format name, for one
        message = "; ".join(f"{d['field']}: {d['message']}" for d in details) or "invalid request"
        return JSONResponse(error_body("invalid", message, details), status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
        # FastAPI's "There was an error parsing the body": say why.
        if isinstance(exc.__cause__, RecursionError):
            return _unreadable_body(request, TOO_DEEP, 400)
        if isinstance(exc.__cause__, UnicodeDecodeError):
            return _unreadable_body(request, f"{NOT_JSON}: it is not UTF-8 ({exc.__cause__.reason})", 400)
        if exc.status_code == 404:
            return _no_route(request)
        if exc.status_code == 405:
            return _method_not_allowed(request)
        code = _HTTP_CODES.get(exc.status_code, "error")
        return JSONResponse(
            error_body(code, str(exc.detail)),
            status_code=exc.status_code,
            headers=getattr(exc, "headers", None),
        )

    async def _schema_missing(request: Request, exc: Exception) -> Response:
        """503 saying what to do, as /healthz says it; the missing table is named in the log only. A database
        at this version's revision (its tables dropped by hand) is not mended by ``db upgrade``: asked once
        the request has failed, off the event loop."""
        context: AppContext | None = getattr(request.app.state, "context", None)
        dropped = context is not None and await run_in_threadpool(migrate.at_head, context.db.engine)
        message = TABLES_DROPPED_MESSAGE if dropped else SCHEMA_MISSING_MESSAGE
        log.warning(
            "%s %s: database schema missing (%s): %s",
            request.method,
            _logged_path(request),
            unavailable_reason(exc),
            message.rpartition("): ")[2],
        )
        return _failure(
            request,
            503,
            SCHEMA_MISSING_CODE,
            message,
            headers={"Retry-After": str(UNAVAILABLE_RETRY_AFTER_SECONDS)},
        )

    @app.exception_handler(OperationalError)
    @app.exception_handler(SQLAlchemyTimeoutError)
    async def _database_unavailable(request: Request, exc: Exception) -> Response:
        if schema_missing(exc):  # SQLite's "no such table"
            return await _schema_missing(request, exc)
        if is_retryable(exc):
            # Not the database being down: another process's change to the same rows won (deadlock or
            # serialization failure), on each of its runs (``deps.RetriedRoute``). Nothing was changed.
            log.warning(
                "%s %s: lost to a concurrent change: %s",
                request.method,
                _logged_path(request),
                unavailable_reason(exc),
            )
            return JSONResponse(error_body(Conflict.code, CONCURRENT_MESSAGE), status_code=409)
        log.warning(
            "%s %s: database unavailable: %s", request.method, _logged_path(request), unavailable_reason(exc)
        )
        return _failure(
            request,
            503,
            UNAVAILABLE_CODE,
            UNAVAILABLE_MESSAGE,
            headers={"Retry-After": str(UNAVAILABLE_RETRY_AFTER_SECONDS)},
        )

    async def _driver_unavailable(request: Request, exc: Exception) -> Response:
        converted = as_sqlalchemy_error(exc)
        return await _database_unavailable(request, converted if isinstance(converted, Exception) else exc)

    # SQL run straight on the driver (intake's key lookup) raises the driver's own errors: a database that
    # cannot be used is a 503 (a lost race a 409) there too, not a 500 with two tracebacks. psycopg's only
    # when loaded (the app's PostgreSQL engine has loaded it by now): SQLite alone never imports it.
    app.add_exception_handler(sqlite3.OperationalError, _driver_unavailable)

    async def _programming_error(request: Request, exc: Exception) -> Response:
        """PostgreSQL's undefined_table is a ProgrammingError: a database without the schema, not a bug here.
        Any other is one, answered 500 (re-raised to ``_unexpected``)."""
        if schema_missing(exc):
            return await _schema_missing(request, exc)
        raise exc

    app.add_exception_handler(ProgrammingError, _programming_error)
    if (psycopg := sys.modules.get("psycopg")) is not None:
        app.add_exception_handler(psycopg.OperationalError, _driver_unavailable)
        app.add_exception_handler(psycopg.ProgrammingError, _programming_error)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        log.exception("unhandled error", exc_info=exc)
        return _failure(request, 500, fastpath.INTERNAL_CODE, fastpath.INTERNAL_MESSAGE)


def _logged_path(request: Request) -> str:
    """A request's path for the log: an acknowledge link's token (``/api/v1/ack/<token>``) is a credential."""
    return hide_ack_links(request.url.path)


def _failure(
    request: Request, status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> Response:
    """A 503 or 500: in PagerDuty's or Opsgenie's shape on their routes (their clients read it), else ours."""
    answer = fastpath.failure_in_own_shape(request.method, request.url.path, status, code, message)
    if answer is None:
        return JSONResponse(error_body(code, message), status_code=status, headers=headers)
    return Response(answer[1], status_code=status, media_type="application/json", headers=headers)


SCHEMA_CODE = SCHEMA_MISSING_CODE
DATABASE_FILE_CODE = "database_file_changed"  # SQLite: the file removed or replaced under the server
WRITES_FAILING_CODE = "writes_failing"  # SQLite: the last writes failed (a full disk), none succeeded since


def _schema_problem(context: AppContext, schema: frozenset[str]) -> str | None:
    """Why the database is not at ``schema`` (this version's heads), or None when it is. One small read; a
    database that cannot be reached raises, as any request's does (503 database_unavailable)."""
    try:
        with context.db.read() as session:
            current = frozenset(session.scalars(text(f"SELECT version_num FROM {migrate.VERSION_TABLE}")))
    except (ProgrammingError, OperationalError) as exc:
        if not schema_missing(exc):
            raise
        current = frozenset()
    if current == schema:
        # The version table alone does not make a schema: with Warroom's tables dropped and it left, every
        # route answers 503 wrong_schema, and so must this.
        return _core_table_missing(context, schema)
    if not current:
        return "the database has no Warroom schema (was it dropped or replaced?): run warroom db upgrade"
    return (
        f"the database's schema is at revision {', '.join(sorted(current))}, not this Warroom's "
        f"({__version__}: {', '.join(sorted(schema))})"
    )


def _core_table_missing(context: AppContext, schema: frozenset[str]) -> str | None:
    """Why the database is not usable though its version table says ``schema``: one of Warroom's tables is
    missing (any of them fails the routes that use it with 503 wrong_schema)."""
    with context.db.read() as session:
        missing = migrate.missing_tables(session.connection())
    return migrate.tables_missing_problem(schema, missing) if missing else None


class WarroomApp(FastAPI):
    """FastAPI, with alert intake answered before FastAPI's own per-request work (``alerts.fastpath``)."""

    intake: fastpath.IntakeEndpoint | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        intake = self.intake
        if intake is not None and intake.handles(scope):
            scope["app"] = self
            await intake(scope, receive, send)
            return
        if scope["type"] == "http" and scope["method"] == "HEAD":
            # HEAD is GET without the body (uptime checks send it); FastAPI's routes take only GET.
            async def send_head(message: Message) -> None:
                if message["type"] == "http.response.body":
                    message = {**message, "body": b""}
                await send(message)

            await super().__call__({**scope, "method": "GET"}, receive, send_head)
            return
        await super().__call__(scope, receive, send)


# The API browsers' scripts and styles, from fastapi-offline's copies of swagger-ui-dist 5 and ReDoc.
_DOCS_ASSETS = Path(fastapi_offline.__file__).parent / "static"


def _mount_api_docs(app: FastAPI) -> None:
    """``/docs`` (Swagger UI) and ``/redoc``, as FastAPI serves them, with their assets from this server."""
    app.mount("/docs-assets", StaticFiles(directory=_DOCS_ASSETS), name="docs-assets")
    openapi_url = app.openapi_url or "/openapi.json"

    @app.get("/docs", include_in_schema=False)
    def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=openapi_url,
            title=f"{app.title} API",
            swagger_js_url="/docs-assets/swagger-ui-bundle.js",
            swagger_css_url="/docs-assets/swagger-ui.css",
            swagger_favicon_url="/docs-assets/favicon.png",
        )

    @app.get("/redoc", include_in_schema=False)
    def redoc() -> HTMLResponse:
        return get_redoc_html(
            openapi_url=openapi_url,
            title=f"{app.title} API",
            redoc_js_url="/docs-assets/redoc.standalone.js",
            redoc_favicon_url="/docs-assets/favicon.png",
            with_google_fonts=False,
        )


def create_app(
    settings: Settings | None = None,
    context: AppContext | None = None,
    mail_listener: socket.socket | None = None,
) -> WarroomApp:
    """The app ``serve`` runs. ``mail_listener``: the mail intake's socket, bound by the caller so that a port
    in use is refused before anything starts (else the intake binds ``WARROOM_MAIL_INTAKE_PORT`` itself)."""
    settings = settings or (context.settings if context else Settings())
    context = context or AppContext.from_settings(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        worker_thread = None
        if settings.run_worker:
            from warroom.alerts import handlers
            from warroom.jobs.worker import Worker, WorkerThread

            worker_thread = WorkerThread(Worker(context))
            worker_thread.start()
            # Intake in other processes (``serve --no-worker``) enqueues the events of this worker's handlers.
            handlers.announce_logged(context)
        app.state.worker = worker_thread
        # The chains of recurring jobs the org file asks for (a reload starts them again for new entries).
        reload.start_recurring(context)
        # Reloads asked of other processes reach this one too.
        reload_watcher = reload.ReloadWatcher(context)
        reload_watcher.start()
        loop = asyncio.get_running_loop()
        # kill -HUP reloads the org file, as Alertmanager's does (blocking work, so in a thread). Only a
        # server's main thread can take signals; an app run by a test client in a thread has none.
        on_hup = threading.current_thread() is threading.main_thread()
        if on_hup:
            loop.add_signal_handler(
                signal.SIGHUP, lambda: loop.run_in_executor(None, reload.reload_logged, context)
            )
        mail_server = None
        if settings.mail_intake_port is not None:
            mail_server = await mail.serve(context, settings, mail_listener)
        # Everything built so far lives as long as the process: keep the collector from rescanning it
        # (full collections over the app's object graph were a visible share of alert intake time).
        gc.freeze()
        yield
        if on_hup:
            loop.remove_signal_handler(signal.SIGHUP)
        if mail_server is not None:
            mail_server.close()
            # From Python 3.12 this waits for open SMTP sessions too: an idle MTA must not hold up shutdown.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(mail_server.wait_closed(), timeout=5)
        intake_writer = getattr(app.state, "alert_intake_writer", None)
        if intake_writer is not None:
            intake_writer.close()
        reload_watcher.stop()
        if worker_thread is not None:
            # Long enough for a delivery in hand to end by its channel's timeout, so that it is retried
            # rather than left to its lease (and sent twice).
            worker_thread.stop(max(30.0, longest_delivery_timeout(context.org.notification_channels) + 5))
        context.db.dispose()

    migrate.upgrade(context.db.engine, timeline_key=lambda: context.settings.timeline_key)
    # At this version's revision with tables dropped by hand, the migration has nothing to do: say so here,
    # in one line (TablesMissing), before the lifespan's recurring jobs fail on them with a traceback.
    migrate.check_tables(context.db.engine)
    app = WarroomApp(
        title="Warroom",
        version=__version__,
        description="Incident response and recovery: alerts, incidents, paging, status page, post-mortems.",
        lifespan=lifespan,
        redirect_slashes=False,  # see ``_no_route``
        dependencies=[Depends(single_values)],
        # Served from this package's own copies below, not a CDN: a self-hosted install may have no internet.
        docs_url=None,
        redoc_url=None,
    )
    app.state.context = context
    _mount_api_docs(app)
    install_error_handlers(app)
    for router in (
        auth_router,
        severity_router,
        incidents_router,
        notify_router,
        oncall_router,
        alerts_router,
        jobs_router,
    ):
        app.include_router(router)

    @app.get("/", include_in_schema=False)
    def home() -> RedirectResponse:
        # The web UI lands in a later issue; until then the front door is the API browser.
        return RedirectResponse("/docs")

    # Read from the migration files once: the health check only compares (it is polled often).
    schema = migrate.heads()

    @app.get("/healthz", tags=["ops"], response_model=None)
    def healthz() -> JSONResponse:
        """200 while the database can be read and is at this version's schema and, on SQLite, its file is the
        one the path names and writes are not failing; 503 with the reason otherwise (a database down,
        emptied, migrated by another version, its file removed or replaced, a full disk), so that a load
        balancer takes the node out."""
        try:
            problem = _schema_problem(context, schema)
        except OperationalError:
            file_problem = context.db.file_problem()
            if file_problem is None:
                raise
            return JSONResponse(error_body(DATABASE_FILE_CODE, file_problem), status_code=503)
        if problem is not None:
            return JSONResponse(error_body(SCHEMA_CODE, problem), status_code=503)
        writes_problem = context.db.writes_problem()
        if writes_problem is not None:
            return JSONResponse(error_body(WRITES_FAILING_CODE, writes_problem), status_code=503)
        return JSONResponse({"status": "ok", "version": __version__})

    @app.head("/healthz", include_in_schema=False)
    def healthz_head() -> Response:
        """What some load balancers' health checks send: the same check, no body."""
        return Response(status_code=healthz().status_code)

    @app.get("/api/v1/config", tags=["ops"], response_model=ConfigStatus)
    def config_status(_: Viewer) -> ConfigStatus:
        """The org file this process runs with, and when it was read."""
        return reload.status(context)

    @app.post("/api/v1/config/reload", tags=["ops"], response_model=ConfigStatus)
    def config_reload(
        principal: Admin,
        force: Annotated[
            bool,
            Query(
                description="Take a file that has no services, escalation policies, automation rules, "
                "webhook formats or heartbeats where the running one has some (refused otherwise: a "
                "truncated file would leave alerts unrouted and webhook tools refused)."
            ),
        ] = False,
    ) -> ConfigStatus:
        """Read the org file again and run with it from now on (as kill -HUP does), and tell every other
        process (serve and worker) to read its own again within a few seconds. A file with problems is
        refused with 422 and every problem (location, line, message); the running one stays, here and
        elsewhere. So is, unless ``force``, a file that empties a section the running one has (services,
        escalation policies, automation rules, webhook formats, heartbeats).
        ``warnings`` in the answer: what the new file changes that is worth a look (a section it emptied,
        incidents escalating on a policy it no longer has)."""
        try:
            return reload.reload_org(context, announce_as=principal.name, force=force)
        except ConfigError as exc:
            raise InvalidInput(
                f"{exc.path}: {len(exc.problems)} problem(s); the running org file stays",
                [{"location": p.location, "line": p.line, "message": p.message} for p in exc.problems],
            ) from None

    # Process metrics come from the global registry; domain gauges are per app (one per database).
    domain_metrics = CollectorRegistry(auto_describe=False)
    domain_metrics.register(IncidentCollector(context))
    domain_metrics.register(HeartbeatCollector(context))
    domain_metrics.register(AlertCollector(context))
    domain_metrics.register(IntegrationCollector(context))
    domain_metrics.register(JobCollector(context))

    @app.get(
        "/metrics",
        tags=["ops"],
        response_class=PlainTextResponse,
        summary="Prometheus metrics (text exposition format)",
        responses={200: {"description": f"The metrics, as {CONTENT_TYPE_LATEST}."}},
    )
    def metrics() -> Response:
        return Response(exposition(REGISTRY, domain_metrics), media_type=CONTENT_TYPE_LATEST)

    # The document says what the routes really take and answer: tokens, keys, error shapes, intake bodies.
    openapi.install(app)
    # Inside the body limit: a keyed request's body is read whole here, to compare a retry's with it.
    app.add_middleware(IdempotencyMiddleware, context=context)
    app.add_middleware(
        RequestGuardMiddleware,
        max_bytes=settings.max_body_bytes,
        max_group_bytes=settings.max_intake_body_bytes,
        context=context,
    )
    # Outermost: the report routes' CORS and refusal counts cover the body limit's answers too.
    app.add_middleware(ReportsEdge, context=context)
    app.intake = fastpath.IntakeEndpoint(
        app.state,
        context,
        max_body_bytes=settings.max_body_bytes,
        max_group_body_bytes=settings.max_intake_body_bytes,
    )
    _build_routes(app)
    return app


def _build_routes(app: FastAPI) -> None:
    """Builds every included route now, in the thread that makes the app. FastAPI otherwise builds an
    included router's routes (their parameters' pydantic fields) at its first request, silencing pydantic's
    UnsupportedFieldAttributeWarning meanwhile with ``warnings.catch_warnings``, which is process-wide and
    not thread-safe: two threads building at once (two apps in one process, first requests at once) undo
    each other's silence, and the warning escapes (an error under ``-W error``) for aliases FastAPI set
    itself. It also spares the first requests the building."""
    for _ in iter_route_contexts(app.router.routes):
        pass
