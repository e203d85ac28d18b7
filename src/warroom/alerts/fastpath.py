"""The intake endpoints' one handler, and a plain ASGI fast path in front of FastAPI for them.

Alert intake is the hot path: monitoring can send thousands of alerts a second during a storm. FastAPI's
routing and dependency layer costs more per request than the intake work itself, so the app answers the four
intake paths from this small ASGI layer (same handler, same answers; the FastAPI routes remain for OpenAPI
and for apps built without the layer).
"""

from __future__ import annotations

import json
import logging
from typing import Any
from urllib.parse import parse_qs

from starlette.applications import Starlette
from starlette.types import ASGIApp, Receive, Scope, Send

from warroom.alerts import adapters
from warroom.alerts.adapters import InvalidPayload
from warroom.alerts.intake import writer_for
from warroom.auth.models import IntegrationType
from warroom.context import AppContext
from warroom.errors import WarroomError

log = logging.getLogger("warroom.alerts")

INTAKE_ROUTES: dict[str, IntegrationType] = {
    "/api/v1/alerts/alertmanager": IntegrationType.alertmanager,
    "/api/v1/alerts/grafana": IntegrationType.grafana,
    "/api/v1/alerts": IntegrationType.generic,
    "/v2/enqueue": IntegrationType.pagerduty,
}

Answer = tuple[int, bytes]


def _json(status: int, body: Any) -> Answer:
    return status, json.dumps(body, separators=(",", ":")).encode()


def _error(exc: WarroomError) -> Answer:
    return _json(exc.status, {"error": {"code": exc.code, "message": exc.message, "details": exc.details}})


def _pagerduty_error(exc: WarroomError) -> Answer:
    """PagerDuty's own error shape: ``{status, message, errors[]}``."""
    if isinstance(exc, InvalidPayload):
        errors = [
            f"{d['field']}: {d['message']}" if isinstance(d, dict) else str(d) for d in (exc.details or [])
        ]
        unrecognized = exc.message.startswith(("the body is not valid JSON", "Event object format"))
        return _json(
            400,
            {
                "status": "Unrecognized object" if unrecognized else "invalid event",
                "message": "Event object format is unrecognized"
                if unrecognized
                else "Event object is invalid",
                "errors": errors or [exc.message],
            },
        )
    return _json(exc.status, {"status": exc.code, "message": exc.message, "errors": [exc.message]})


def bearer(authorization: str | None) -> str | None:
    scheme, _, value = (authorization or "").partition(" ")
    return value.strip() or None if scheme.lower() == "bearer" else None


async def handle_intake(
    state: Any, context: AppContext, path: str, key: str | None, authorization: str | None, body: bytes
) -> Answer:
    """Parse, then apply in the shared intake transaction; answers only after the commit."""
    kind = INTAKE_ROUTES[path]
    writer = writer_for(state, context)
    if kind == IntegrationType.pagerduty:
        try:
            routing_key, event = adapters.from_pagerduty(adapters.parse_json(body))
            await writer.submit(routing_key, kind, "pagerduty", [event])
        except WarroomError as exc:
            return _pagerduty_error(exc)
        return _json(202, {"status": "success", "message": "Event processed", "dedup_key": event.dedup_key})
    try:
        data = adapters.parse_json(body)
        if kind == IntegrationType.generic:
            events = adapters.from_generic(data)
        else:
            events = adapters.from_alertmanager(data)
        result = await writer.submit(key or bearer(authorization), kind, kind.value, events)
    except WarroomError as exc:
        return _error(exc)
    return 202, result.model_dump_json().encode()


class IntakeFastPath:
    """ASGI layer answering POSTs to the intake paths directly; everything else passes through.

    It sits outside Starlette's own middleware (see ``install``), so it enforces the body limit and turns
    unexpected errors into the JSON error shape itself.
    """

    def __init__(self, app: ASGIApp, *, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.too_large = _json(
            413,
            {
                "error": {
                    "code": "payload_too_large",
                    "message": f"the request body is over the limit of {max_body_bytes} bytes",
                    "details": None,
                }
            },
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or scope["path"] not in INTAKE_ROUTES:
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        answer = await self._answer(scope, receive, headers)
        if answer is None:
            return  # the client went away
        status, body = answer
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})

    async def _answer(self, scope: Scope, receive: Receive, headers: dict[bytes, bytes]) -> Answer | None:
        too_large = self.too_large
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body_bytes:
            return too_large
        chunks = []
        received = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return None
            chunk = message.get("body", b"")
            received += len(chunk)
            if received > self.max_body_bytes:
                return too_large
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        query = scope.get("query_string", b"")
        key = parse_qs(query.decode("latin-1")).get("key", [None])[0] if query else None
        authorization = headers.get(b"authorization")
        application = scope["app"]
        try:
            return await handle_intake(
                application.state,
                application.state.context,
                scope["path"],
                key,
                authorization.decode("latin-1") if authorization is not None else None,
                b"".join(chunks),
            )
        except Exception:
            log.exception("alert intake failed")
            return _json(
                500,
                {
                    "error": {
                        "code": "internal",
                        "message": "an internal error occurred; it was logged",
                        "details": None,
                    }
                },
            )


def install(app: Starlette, *, max_body_bytes: int) -> None:
    """Put the intake layer in front of the app's whole middleware stack.

    Starlette always builds its error middleware outermost; per-request cost there is larger than the intake
    work itself, so the layer wraps the built stack instead of being added as one more middleware.
    """
    build = app.build_middleware_stack

    def build_with_intake() -> ASGIApp:
        return IntakeFastPath(build(), max_body_bytes=max_body_bytes)

    app.build_middleware_stack = build_with_intake  # type: ignore[method-assign]
