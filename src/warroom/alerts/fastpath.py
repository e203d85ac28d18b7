"""The intake endpoints' one handler, and a plain ASGI endpoint that answers them before FastAPI.

Alert intake is the hot path: monitoring can send thousands of alerts a second during a storm. FastAPI's
per-request work (telemetry checks, middleware, routing, dependencies) costs more than the intake work
itself, so the app (``warroom.app.WarroomApp``) hands the four intake paths to ``IntakeEndpoint`` first
(same handler, same answers; the FastAPI routes remain for OpenAPI and for apps mounted some other way).
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from typing import Any
from urllib.parse import parse_qs

from starlette.concurrency import run_in_threadpool
from starlette.types import Receive, Scope, Send

from warroom import migrate
from warroom.alerts import adapters
from warroom.alerts import service as alerts_service
from warroom.alerts.adapters import AlertEvent, InvalidPayload
from warroom.alerts.changes import parse_pagerduty_body, refuse_unstorable, routing_key_in
from warroom.alerts.config import WebhookFormat
from warroom.alerts.intake import check_caller, kept_on_app, writer_for
from warroom.alerts.metrics import ALERTS_TRUNCATED, count_refused, refusal_reason
from warroom.alerts.schemas import truncation_warning
from warroom.auth import integrations
from warroom.auth.integrations import IntegrationIdentity
from warroom.auth.models import IntegrationType
from warroom.auth.service import hash_secret
from warroom.auth.signing import SignedBody, signed_body
from warroom.context import AppContext
from warroom.db import schema_missing, unavailable, unavailable_reason, utcnow
from warroom.errors import (
    SCHEMA_MISSING_CODE,
    SCHEMA_MISSING_MESSAGE,
    TABLES_DROPPED_MESSAGE,
    UNAVAILABLE_CODE,
    UNAVAILABLE_MESSAGE,
    UNAVAILABLE_RETRY_AFTER_SECONDS,
    PayloadTooLarge,
    Unauthorized,
    UnsupportedMediaType,
    WarroomError,
    error_body,
    field_at_fault,
)
from warroom.jsonbody import NOT_JSON, NOT_UTF8

log = logging.getLogger("warroom.alerts")

# PagerDuty's Events API v1, for older tools and Alertmanager's pagerduty_configs with a service_key.
PAGERDUTY_V1_PATH = "/generic/2010-04-15/create_event.json"

INTAKE_ROUTES: dict[str, IntegrationType] = {
    "/api/v1/alerts/alertmanager": IntegrationType.alertmanager,
    "/api/v1/alerts/grafana": IntegrationType.grafana,
    "/api/v1/alerts": IntegrationType.generic,
    "/v2/enqueue": IntegrationType.pagerduty,
    PAGERDUTY_V1_PATH: IntegrationType.pagerduty,
}

# The other intake routes, answered by the framework: a tool's own webhook, and Opsgenie's Alert API (its
# create, close and acknowledge requests and its updates by alias).
WEBHOOK_PATH_PREFIX = "/api/v1/alerts/webhook/"
OPSGENIE_PATH = "/v2/alerts"
# Deliveries that are not alerts, counted as refused deliveries all the same: a heartbeat's ping or run report
# (its handler reads the body itself, keeping the output's tail), and PagerDuty's Change Events API.
HEARTBEAT_PATH_PREFIX = "/api/v1/heartbeats/"
HEARTBEAT_SOURCE = IntegrationType.heartbeat.value
CHANGE_PATH = "/v2/change/enqueue"
CHANGE_SOURCE = "change"
# The sources whose routes answer in PagerDuty's shape.
_PAGERDUTY_SHAPED = (IntegrationType.pagerduty.value, CHANGE_SOURCE)

# The routes of senders that post a whole alert group as one body, however large the group grew (Alertmanager
# with max_alerts 0, Grafana), and never retry a 4xx: a group over the API's body limit would be lost, and
# resent in vain every group_interval. They take bodies up to max_intake_body_bytes.
GROUP_PATHS = frozenset({"/api/v1/alerts/alertmanager", "/api/v1/alerts/grafana"})
# The sources whose NUL characters become U+FFFD rather than refusing the delivery: Alertmanager and Grafana,
# and the PagerDuty and Opsgenie shapes their notifiers send (one event for a group, its alerts' labels in
# its texts). None of them resends a refused body fixed. The plain JSON API, tools' webhooks and change
# events still refuse one (400 naming the field): a script sees the answer and can fix what it sends.
NUL_REPLACED_SOURCES = frozenset(
    {
        IntegrationType.alertmanager.value,
        IntegrationType.grafana.value,
        IntegrationType.pagerduty.value,
        IntegrationType.opsgenie.value,
    }
)

CONFLICTING_KEYS = "conflicting keys: send one integration key, as ?key= or as a Bearer token, not two"

Answer = tuple[int, bytes]


def intake_source(method: str, path: str) -> str | None:
    """The source whose deliveries this request is, on an intake route (the refusals metric's label);
    None for any other request (``GET /api/v1/alerts`` lists alerts)."""
    if method in ("GET", "HEAD", "OPTIONS"):
        return None
    kind = INTAKE_ROUTES.get(path)
    if kind is not None:
        return kind.value
    if path.startswith(WEBHOOK_PATH_PREFIX):
        return IntegrationType.webhook.value
    if path == OPSGENIE_PATH or path.startswith(OPSGENIE_PATH + "/"):
        return IntegrationType.opsgenie.value
    if path.startswith(HEARTBEAT_PATH_PREFIX):
        return HEARTBEAT_SOURCE
    if path == CHANGE_PATH:
        return CHANGE_SOURCE
    return None


def body_limit(path: str, max_body_bytes: int, max_group_body_bytes: int) -> int:
    """The largest body a request to ``path`` may send: the group senders' own limit on their routes."""
    return max_group_body_bytes if path in GROUP_PATHS else max_body_bytes


def key_in_body(method: str, path: str) -> bool:
    """Whether a request is a delivery to one of PagerDuty's routes, whose key is in the body: their handlers
    refuse a NUL or a lone surrogate themselves, once the key is checked (``changes.refuse_unstorable``)."""
    return intake_source(method, path) in _PAGERDUTY_SHAPED


def replaces_nul(method: str, path: str) -> bool:
    """Whether a delivery to this route has its NUL characters replaced rather than refused."""
    return intake_source(method, path) in NUL_REPLACED_SOURCES


async def log_too_large(context: AppContext, scope: Scope, limit: int, size: int | None) -> None:
    """A warning for a delivery refused for its size (``size`` as declared; None for a body without
    Content-Length, read only up to the limit: its size is not known). Its sender may well not retry
    (Alertmanager drops a 4xx), so this line may be the only trace of the lost alerts on Warroom's side.
    Not for other routes' requests: their callers read the answer."""
    source = intake_source(scope["method"], scope["path"])
    if source is None:
        return
    integration = await run_in_threadpool(_caller_name, context, scope, source)
    log.warning(
        "%s %s: refused %s delivery of %s (413, over the limit of %d bytes; %s): its alerts are not recorded",
        scope["method"],
        scope["path"],
        source,
        f"{size} bytes" if size is not None else f"over {limit} bytes (read up to the limit)",
        limit,
        f"integration {integration!r}" if integration else "integration unknown",
    )


def _caller_name(context: AppContext, scope: Scope, source: str) -> str | None:
    """The name of the integration whose key a request carries (``?key=``, Bearer, GenieKey), or None: for
    a log line only, so any failure (no key, a bad one, a database down) just leaves it unnamed. Blocking."""
    try:
        headers = dict(scope["headers"])
        raw = headers.get(b"authorization")
        authorization = raw.decode("latin-1") if raw is not None else None
        if source == IntegrationType.opsgenie.value:
            secret: str | None = _genie_key(authorization)
        else:
            query = scope.get("query_string", b"")
            keys = parse_qs(query.decode("latin-1")).get("key") if query else None
            secret = integration_key(keys, authorization)
        if not secret:
            return None  # PagerDuty's key is in the body, which was not read
        with context.db.read() as session:
            identity = integrations.authenticate_integration(
                session, secret, IntegrationType(source), record_use=False
            )
        return identity.name
    except Exception:  # a name for a log line must never change the answer
        return None


def _json(status: int, body: Any) -> Answer:
    return status, json.dumps(body, separators=(",", ":")).encode()


def _error(exc: WarroomError) -> Answer:
    return _json(exc.status, error_body(exc.code, exc.message, exc.details))


# Validation's words for a field left out or empty, which PagerDuty reports as "'payload.source' is missing or
# blank": scripts and logs that look for PagerDuty's words find them.
_MISSING = ("Field required", "String should have at least 1 character", "must not be blank")


def _pagerduty_error_text(detail: dict[str, Any]) -> str:
    field, message = detail.get("field"), str(detail.get("message", ""))
    if not field:
        return message
    if message.startswith(_MISSING):
        return f"'{field}' is missing or blank"
    return f"{field}: {message}"


def pagerduty_error(exc: WarroomError) -> Answer:
    """PagerDuty's own error shape: ``{status, message, errors[]}``. A body it cannot take (unreadable,
    invalid, too large, compressed) is an invalid or unrecognized event, under the refusal's own status."""
    if isinstance(exc, InvalidPayload | PayloadTooLarge | UnsupportedMediaType):
        # The fields at fault of an invalid event; a body too large or compressed is said in one line.
        details = exc.details if isinstance(exc, InvalidPayload) else None
        errors = [_pagerduty_error_text(detail) for detail in details or []]
        unrecognized = isinstance(exc, UnsupportedMediaType) or exc.message.startswith(
            (NOT_JSON, NOT_UTF8, "Event object format")
        )
        return _json(
            exc.status,
            {
                "status": "Unrecognized object" if unrecognized else "invalid event",
                "message": "Event object format is unrecognized"
                if unrecognized
                else "Event object is invalid",
                "errors": errors or [exc.message],
            },
        )
    return _json(exc.status, {"status": exc.code, "message": exc.message, "errors": [exc.message]})


INTERNAL_CODE = "internal"
INTERNAL_MESSAGE = "an internal error occurred; it was logged"


def failure_in_own_shape(method: str, path: str, status: int, code: str, message: str) -> Answer | None:
    """An error no handler answered itself (503 for a database that cannot be used, 500 for a fault) on a
    route that answers in another API's shape: PagerDuty's ``{status, message, errors}`` or Opsgenie's; None
    on Warroom's own routes. Not counted here: the handlers count these refusals as they raise them."""
    source = intake_source(method, path)
    if source == IntegrationType.opsgenie.value:
        return _opsgenie_answer(status, message)
    if source in _PAGERDUTY_SHAPED:
        return _json(status, {"status": code, "message": message, "errors": [message]})
    return None


def _failure(method: str, path: str, status: int, code: str, message: str) -> Answer:
    return failure_in_own_shape(method, path, status, code, message) or _json(
        status, error_body(code, message)
    )


def refused_before_handler(method: str, path: str, exc: WarroomError) -> Answer | None:
    """A request to an intake route refused before its handler read it (by the fast path, or the app's
    request guard): answered in the route's own shape (PagerDuty's, Opsgenie's, else Warroom's) and counted
    as a refused delivery, as its handler's refusals are. None for a request that is not a delivery."""
    source = intake_source(method, path)
    if source is None:
        return None
    if source == IntegrationType.opsgenie.value:
        return _opsgenie_refusal(exc)  # counted there
    count_refused(source, refusal_reason(exc))
    return pagerduty_error(exc) if source in _PAGERDUTY_SHAPED else _error(exc)


def too_large(max_bytes: int) -> PayloadTooLarge:
    return PayloadTooLarge(f"the request body is over the limit of {max_bytes} bytes")


def unsupported_encoding(encoding: bytes) -> UnsupportedMediaType | None:
    """The refusal of a body in a Content-Encoding other than identity (gzip, say): intake reads bodies as
    they are sent, and a compressed one would otherwise be refused as bytes that are not UTF-8."""
    named = encoding.decode("latin-1").strip()
    if all(coding.strip().lower() in ("", "identity") for coding in named.split(",")):
        return None
    return UnsupportedMediaType(
        f"Content-Encoding {named!r} is not supported: send the body uncompressed, without Content-Encoding",
        {"field": "Content-Encoding", "allowed": ["identity"]},
    )


def bearer(authorization: str | None) -> str | None:
    scheme, _, value = (authorization or "").partition(" ")
    return value.strip() or None if scheme.lower() == "bearer" else None


def integration_key(keys: Sequence[str] | None, authorization: str | None) -> str | None:
    """The integration key of a request: its ``?key=`` (``keys``: each one given) or its Bearer token. The
    same key may come twice; two different ones are refused (401) rather than one of them picked, since a
    proxy or a log that read the other would disagree with what was let in."""
    key = keys[0] if keys else None
    if keys is not None and len(keys) > 1 and any(other != key for other in keys):
        raise Unauthorized(CONFLICTING_KEYS)
    if authorization is None:
        return key or None
    token = bearer(authorization)
    if key and token is not None and token != key:
        raise Unauthorized(CONFLICTING_KEYS)
    return key or token


def query_keys(query: bytes, first: str | None, every: Callable[[], list[str]]) -> list[str] | None:
    """The ``?key=`` values of a request whose framework read one (``first``); the others (``every``) only
    when the query may hold more than one (a name may be percent-encoded too: ``k%65y=``)."""
    if query.count(b"key=") > 1 or b"%" in query:
        return every()
    return [first] if first is not None else None


# How long a key that passed the check before its body was read is taken as good without asking the database
# again, and how many such keys a process keeps.
KNOWN_CALLER_SECONDS = 10.0
KNOWN_CALLERS_LIMIT = 1000


class KnownCallers:
    """The integrations whose keys passed the intake's first check in the last ``KNOWN_CALLER_SECONDS``,
    by the key's hash: so that checking the key before the body is read costs a sender's every delivery no
    database round trip. Only a key that passed is kept, and it only lets the body be read: the writer
    checks the key again in the delivery's own transaction (a key revoked meanwhile is refused there)."""

    def __init__(self, context: AppContext) -> None:
        self.context = context
        self._known: dict[tuple[str, IntegrationType], tuple[float, IntegrationIdentity]] = {}

    def get(self, secret: str, kind: IntegrationType) -> IntegrationIdentity | None:
        found = self._known.get((hash_secret(secret), kind))
        if found is None or found[0] <= time.monotonic():
            return None
        return found[1]

    def add(self, secret: str, kind: IntegrationType, identity: IntegrationIdentity) -> None:
        now = time.monotonic()
        if len(self._known) >= KNOWN_CALLERS_LIMIT:
            self._known = {key: kept for key, kept in self._known.items() if kept[0] > now}
            if len(self._known) >= KNOWN_CALLERS_LIMIT:
                self._known = {}
        self._known[(hash_secret(secret), kind)] = (now + KNOWN_CALLER_SECONDS, identity)


def known_callers_for(state: Any, context: AppContext) -> KnownCallers:
    return kept_on_app(state, "alert_known_callers", context, KnownCallers)


def identify_caller(
    context: AppContext,
    secret: str | None,
    kind: IntegrationType,
    signed: SignedBody | None,
    signature: bool = True,
) -> IntegrationIdentity:
    """The integration of a delivery's key, its signature checked (401, 403), writing nothing: before its
    body is parsed. ``signature`` False: the key only, before the body is received (``caller_before_body``).
    Blocking: run it in a thread."""
    with context.db.read() as session:
        identity = integrations.authenticate_integration(session, secret, kind, record_use=False)
    if signature:
        identity.check_signature(signed, utcnow())
    return identity


def key_in_head(method: str, path: str) -> IntegrationType | None:
    """The kind of integration whose key a delivery to this route carries in its URL or headers (``?key=``,
    Bearer, GenieKey): every intake route but PagerDuty's (its key is in the body) and the heartbeats' (its
    handler reads its body as it comes). None for any other request."""
    source = intake_source(method, path)
    if source is None or source in _PAGERDUTY_SHAPED or source == HEARTBEAT_SOURCE:
        return None
    return IntegrationType(source)


def _head_key(scope: Scope, kind: IntegrationType) -> str | None:
    """The key a request's URL or headers carry for ``kind`` (401 for none on Opsgenie's routes, two
    different ones elsewhere)."""
    authorization = None
    for name, value in scope["headers"]:
        if name == b"authorization":
            authorization = value.decode("latin-1")
            break
    if kind == IntegrationType.opsgenie:
        return _genie_key(authorization)
    query = scope.get("query_string", b"")
    keys = parse_qs(query.decode("latin-1")).get("key") if query else None
    return integration_key(keys, authorization)


async def caller_before_body(
    state: Any, context: AppContext, secret: str | None, kind: IntegrationType
) -> IntegrationIdentity:
    """The integration of a delivery's key (401, 403 for one that could not deliver), before a byte of its
    body is received: a caller without a good key must not hold a connection open by declaring a large
    body and sending it slowly (or never). A key that passed in the last few seconds (``KnownCallers``)
    costs one dictionary lookup. A signing integration's signature needs the body: checked after it
    (``check_key_first``), as the writer checks the key again in the delivery's transaction."""
    known = known_callers_for(state, context)
    identity = known.get(secret, kind) if secret else None
    if identity is None:
        identity = await run_in_threadpool(identify_caller, context, secret, kind, None, False)
        assert secret  # authenticate_integration refuses a request without one
        known.add(secret, kind, identity)
    return identity


async def refuse_before_body(state: Any, context: AppContext, scope: Scope) -> Answer | None:
    """The refusal (401, 403, in the route's shape, counted) of a delivery to a route whose key is in the URL
    or headers (``key_in_head``) when that key could not deliver; None to read the body and go on (a good
    key, another route, or a database that cannot say: the handler answers that as it does)."""
    kind = key_in_head(scope["method"], scope["path"])
    if kind is None:
        return None
    try:
        await caller_before_body(state, context, _head_key(scope, kind), kind)
    except WarroomError as exc:
        return refused_before_handler(scope["method"], scope["path"], exc)
    except Exception:  # the handler checks the key again and answers a failure in its shape
        return None
    return None


async def check_key_first(
    state: Any,
    context: AppContext,
    secret: str | None,
    kind: IntegrationType,
    signed: SignedBody | None,
    identity: IntegrationIdentity | None = None,
) -> None:
    """Refuse (401, 403) a delivery whose key could not deliver, and a signing integration's delivery whose
    signature is wrong, before its body is parsed: parsing a group's body (up to max_intake_body_bytes) takes
    a second or more, which a caller without a key must not be able to make the server spend. A key that
    passed in the last few seconds (``KnownCallers``) costs no database round trip; a signature needs only
    the raw bytes. ``identity``: the key's integration as ``caller_before_body`` found it, if it ran."""
    known = known_callers_for(state, context)
    if identity is None:
        identity = known.get(secret, kind) if secret else None
    if identity is not None:
        if not identity.signing_secrets:
            return
        try:
            if signed is not None and len(signed.body) > _LARGE_BODY_BYTES:
                await run_in_threadpool(identity.check_signature, signed, utcnow())
            else:
                identity.check_signature(signed, utcnow())
            return
        except WarroomError:
            pass  # the signing secret may have been rotated since: the database says
    identity = await run_in_threadpool(identify_caller, context, secret, kind, signed)
    assert secret  # identify_caller refuses a delivery without one
    known.add(secret, kind, identity)


async def handle_intake(
    state: Any,
    context: AppContext,
    path: str,
    keys: Sequence[str] | None,
    authorization: str | None,
    body: bytes,
    headers: Iterable[tuple[bytes, bytes]] = (),
    identity: IntegrationIdentity | None = None,
) -> Answer:
    """Check the key, parse, then apply in the shared intake transaction; answers only after the commit.

    The key (and a Grafana delivery's signature) is checked before the body is parsed (``check_key_first``):
    a caller without a key that could deliver gets 401 or 403 whatever its body, which costs it nothing to
    parse. PagerDuty's key is in the body: a body that cannot be read as a JSON object, or that has no key,
    is answered 400 (naming only the key), as PagerDuty does.

    ``keys``: the ``?key=`` values (``integration_key``). ``headers`` are the raw request headers; only
    Grafana's path reads them (its signature headers). ``identity``: the key's integration, when it was
    checked before the body was received (``caller_before_body``): only a signature is left to check.
    """
    kind = INTAKE_ROUTES[path]
    writer = writer_for(state, context)
    if kind == IntegrationType.pagerduty:
        v1 = path == PAGERDUTY_V1_PATH
        read = adapters.from_pagerduty_v1 if v1 else adapters.from_pagerduty
        try:
            data = parse_pagerduty_body(body, replace_nuls=True)
            await check_key_first(
                state, context, routing_key_in(data, "service_key" if v1 else "routing_key"), kind, None
            )
            refuse_unstorable(data, body)
            routing_key, event = read(data)
            await writer.submit(routing_key, kind, "pagerduty", [event])
        except WarroomError as exc:
            count_refused(kind.value, refusal_reason(exc))
            return pagerduty_error(exc)
        except Exception as exc:  # answered by the caller (503, 500)
            count_refused(kind.value, refusal_reason(exc))
            raise
        # Each version's own success answer: v1 says 200 and names the incident key.
        if v1:
            return _json(
                200, {"status": "success", "message": "Event processed", "incident_key": event.dedup_key}
            )
        return _json(202, {"status": "success", "message": "Event processed", "dedup_key": event.dedup_key})
    signed = signed_body(body, headers) if kind == IntegrationType.grafana else None
    try:
        secret = integration_key(keys, authorization)
        await check_key_first(state, context, secret, kind, signed, identity)
        try:
            if len(body) > _LARGE_BODY_BYTES:
                # A storm's group (up to max_intake_body_bytes) takes a second or more to read: in a thread,
                # so that the other requests are not held up meanwhile.
                data, events = await run_in_threadpool(_delivery_events, kind, body)
            else:
                data, events = _delivery_events(kind, body)
        except WarroomError:
            # A refused body is answered only to a caller whose key can deliver: the key checked first may
            # have been taken as known (``KnownCallers``) and revoked since. A good delivery's key is
            # checked again in the writer's transaction.
            await run_in_threadpool(check_caller, context, secret, kind, signed)
            raise
        result = await writer.submit(secret, kind, kind.value, events, signed)
    except WarroomError as exc:
        count_refused(kind.value, refusal_reason(exc))
        return _error(exc)
    except Exception as exc:  # answered by the caller (503, 500)
        count_refused(kind.value, refusal_reason(exc))
        raise
    truncated = data.get("truncatedAlerts") if kind != IntegrationType.generic else None
    if truncated:  # validated: a positive int
        result.truncated = truncated  # the answer says so every time
    if truncated and any(alert.outcome not in _NO_CHANGE for alert in result.alerts):
        # Counted and logged only for a notification that changed something: an HA peer's copy, a retry or
        # an unchanged repeat reports the same loss again, and would add it to the count once more.
        ALERTS_TRUNCATED.labels(kind.value).inc(truncated)
        log.warning(
            "%s delivery of group %s: %s",
            kind.value,
            data.get("groupKey") or "(no group key)",
            truncation_warning(truncated, len(events)),
        )
    return 202, result.to_json()


# Bodies up to this size are read on the event loop (milliseconds); larger ones in a thread.
_LARGE_BODY_BYTES = 1024 * 1024


def _delivery_events(kind: IntegrationType, body: bytes) -> tuple[Any, list[AlertEvent]]:
    """The parsed body of a plain, Alertmanager or Grafana delivery, and its events. NULs are refused in
    plain JSON only (``NUL_REPLACED_SOURCES``)."""
    data = adapters.parse_json(body, replace_nuls=kind != IntegrationType.generic)
    if kind == IntegrationType.generic:
        return data, adapters.from_generic(data)
    return data, adapters.from_alertmanager(data)


# The outcomes of an alert its delivery changed nothing of.
_NO_CHANGE = ("unchanged", "ignored")


def _opsgenie_answer(status: int, message: str, errors: dict[str, str] | None = None) -> Answer:
    """Opsgenie's answer shape: a message, the time taken and a request id (errors by field on a 422)."""
    body: dict[str, Any] = {"result" if status == 202 else "message": message, "took": 0.0}
    if errors:
        body["errors"] = errors
    body["requestId"] = str(uuid.uuid4())
    return _json(status, body)


def _genie_key(authorization: str | None) -> str:
    scheme, _, value = (authorization or "").partition(" ")
    key = value.strip() if scheme.lower() == "geniekey" else None
    if not key:
        raise Unauthorized("no key: send Authorization: GenieKey <key of an opsgenie integration>")
    return key


def opsgenie_invalid_request(details: list[dict[str, Any]]) -> Answer:
    """A request the framework refused before the handler ran (a query parameter): Opsgenie's 422 shape, and
    counted as a refused delivery, as the handler's own refusals are."""
    return _opsgenie_refusal(InvalidPayload("invalid request", details))


# Warroom's names for what Opsgenie's requests call otherwise (a snooze's end is its endTime).
_OPSGENIE_FIELDS = {"until": "endTime", "duration": "endTime"}


def _opsgenie_refusal(exc: WarroomError) -> Answer:
    count_refused(IntegrationType.opsgenie.value, refusal_reason(exc))
    if isinstance(exc, InvalidPayload):
        errors = {str(d.get("field", "body")): str(d.get("message")) for d in exc.details or []}
        return _opsgenie_answer(422, "Request body is not processable. Please check the errors.", errors)
    field = field_at_fault(exc.details)
    if exc.status == 422 and field is not None:
        # A value the service refused (a snooze ending in the past): by field, in the request's own words.
        named = _OPSGENIE_FIELDS.get(field, field)
        message = f"{named}{exc.message[len(field) :]}" if exc.message.startswith(field) else exc.message
        return _opsgenie_answer(
            422, "Request body is not processable. Please check the errors.", {named: message}
        )
    return _opsgenie_answer(exc.status, exc.message)


async def handle_opsgenie(
    state: Any,
    context: AppContext,
    authorization: str | None,
    body: bytes,
    read: Callable[[bytes], AlertEvent],
) -> Answer:
    """One Opsgenie Alert API request: ``read`` makes its event of the body (create, close or acknowledge).
    The key is the ``GenieKey`` of the Authorization header, checked before the body is read (401, 403
    whatever the body); the answer comes after the commit, in Opsgenie's shapes."""
    kind = IntegrationType.opsgenie
    try:
        key = _genie_key(authorization)
        await check_key_first(state, context, key, kind, None)
        event = read(body)
        await writer_for(state, context).submit(key, kind, kind.value, [event])
    except WarroomError as exc:
        return _opsgenie_refusal(exc)
    except Exception as exc:  # answered by the framework's handlers (503, 500)
        count_refused(kind.value, refusal_reason(exc))
        raise
    return _opsgenie_answer(202, "Request will be processed")


def handle_opsgenie_change(
    context: AppContext,
    authorization: str | None,
    alias: str,
    update: adapters.OpsgenieUpdate,
    body: bytes,
    read: Callable[[], adapters.SourceChange] | None = None,
) -> Answer:
    """An Opsgenie update of the open alert of an alias (message, description, priority, a note, a snooze, an
    unacknowledge, tags or details added); Alertmanager's ``update_alerts`` sends the first two. ``read``
    stands in for reading the body (a removal's query). No new occurrence. The key is checked before the body
    is read (401, 403 whatever the body), and again in the change's transaction. Blocking: run it in a
    thread."""
    try:
        key = _genie_key(authorization)
        check_caller(context, key, IntegrationType.opsgenie, None)
        change = read() if read is not None else adapters.opsgenie_change(update, body)
        with context.db.write() as session:
            alerts_service.change_by_source(
                session,
                org=context.org,
                secret=key,
                expected=IntegrationType.opsgenie,
                dedup_key=adapters.opsgenie_dedup_key(alias),
                change=change,
            )
    except WarroomError as exc:
        return _opsgenie_refusal(exc)
    except Exception as exc:  # answered by the framework's handlers (503, 500)
        count_refused(IntegrationType.opsgenie.value, refusal_reason(exc))
        raise
    return _opsgenie_answer(202, "Request will be processed")


async def handle_webhook(
    state: Any,
    context: AppContext,
    format_name: str,
    keys: Sequence[str] | None,
    authorization: str | None,
    body: bytes,
    content_type: str | None = None,
    headers: Iterable[tuple[bytes, bytes]] = (),
) -> Answer:
    """A tool's own JSON (or form), read by the org file's webhook format ``format_name``; answered after the
    commit. A delivery whose items are all skipped (a test ping) still needs a good key, and its answer says
    nothing was stored. ``headers`` (raw): for an integration that checks the sender's signature.

    The key is checked first, before the format name or the body are looked at: a caller without a key that
    could deliver gets the key's refusal (401, 403) whatever the name and the body, after the same work, so
    neither the answer nor its time tells it which names the org file has, and its body costs nothing to
    parse. The body is read in a worker thread (a form's parts take time to build) so that one delivery
    does not hold up the others."""
    kind = IntegrationType.webhook
    signed = signed_body(body, headers)
    try:
        secret = integration_key(keys, authorization)
        await run_in_threadpool(check_caller, context, secret, kind, signed)
        webhook_format = adapters.webhook_format_named(context.org.automation, format_name)
        events = await run_in_threadpool(webhook_events, body, content_type, webhook_format)
        result = await writer_for(state, context).submit(secret, kind, kind.value, events, signed)
    except WarroomError as exc:
        count_refused(kind.value, refusal_reason(exc))
        return _error(exc)
    except Exception as exc:  # answered by the framework's handlers (503, 500)
        count_refused(kind.value, refusal_reason(exc))
        raise
    return 202, result.to_json()


def webhook_events(body: bytes, content_type: str | None, webhook_format: WebhookFormat) -> list[AlertEvent]:
    """The events of a webhook delivery's body, read by its format. Blocking: run it in a thread."""
    return adapters.from_webhook(adapters.parse_webhook_body(body, content_type), webhook_format)


class IntakeEndpoint:
    """Answers POSTs to the intake paths straight from ASGI (the app checks ``handles`` first).

    It runs before any of the framework's per-request work and its middleware, so it enforces the body
    limit and turns unexpected errors into the JSON error shape itself.
    """

    def __init__(
        self, state: Any, context: AppContext, *, max_body_bytes: int, max_group_body_bytes: int
    ) -> None:
        self.state = state
        self.context = context
        self.max_body_bytes = max_body_bytes
        self.max_group_body_bytes = max_group_body_bytes

    @staticmethod
    def handles(scope: Scope) -> bool:
        return scope["type"] == "http" and scope["method"] == "POST" and scope["path"] in INTAKE_ROUTES

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        answer = await self._answer(scope, receive)
        if answer is None:
            return  # the client went away
        status, body = answer
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        if status in (401, 403):
            # Maybe answered before the body was received (``refuse_before_body``): its rest is not read.
            headers.append((b"connection", b"close"))
        if status == 503:
            headers.append((b"retry-after", str(UNAVAILABLE_RETRY_AFTER_SECONDS).encode()))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    @staticmethod
    def _refused(scope: Scope, exc: WarroomError) -> Answer:
        return refused_before_handler(scope["method"], scope["path"], exc) or _error(exc)

    async def _too_large(self, scope: Scope, limit: int, size: int | None) -> Answer:
        await log_too_large(self.context, scope, limit, size)
        return self._refused(scope, too_large(limit))

    async def _answer(self, scope: Scope, receive: Receive) -> Answer | None:
        declared = authorization = encoding = None
        for name, value in scope["headers"]:
            if name == b"content-length":
                declared = value
            elif name == b"authorization":
                authorization = value
            elif name == b"content-encoding":
                encoding = value
        query = scope.get("query_string", b"")
        keys = parse_qs(query.decode("latin-1")).get("key") if query else None
        kind = INTAKE_ROUTES[scope["path"]]
        identity = None
        if kind != IntegrationType.pagerduty:
            # The key comes first, before the body's encoding and size are looked at and before it is
            # received: a caller without a good key gets 401/403 whatever it sends (and no log line).
            # PagerDuty's key is in the body, which must be read to find it.
            try:
                secret = integration_key(keys, authorization.decode("latin-1") if authorization else None)
                identity = await caller_before_body(self.state, self.context, secret, kind)
            except WarroomError as exc:
                return self._refused(scope, exc)
            except Exception:  # handle_intake checks the key again and answers a failure
                identity = None
        if encoding is not None:
            unsupported = unsupported_encoding(encoding)
            if unsupported is not None:
                return self._refused(scope, unsupported)
        limit = body_limit(scope["path"], self.max_body_bytes, self.max_group_body_bytes)
        if declared is not None and declared.isdigit() and int(declared) > limit:
            return await self._too_large(scope, limit, int(declared))
        message = await receive()
        if message["type"] != "http.request":
            return None
        body = message.get("body", b"")
        if message.get("more_body", False):  # a body in several chunks (chunked encoding, large bodies)
            chunks = [body]
            received = len(body)
            while True:
                message = await receive()
                if message["type"] != "http.request":
                    return None
                chunk = message.get("body", b"")
                received += len(chunk)
                if received > limit:  # never more than the limit held, whatever is sent
                    return await self._too_large(scope, limit, None)
                chunks.append(chunk)
                if not message.get("more_body", False):
                    break
            body = b"".join(chunks)
        elif len(body) > limit:
            return await self._too_large(scope, limit, None)
        try:
            return await handle_intake(
                self.state,
                self.context,
                scope["path"],
                keys,
                authorization.decode("latin-1") if authorization is not None else None,
                body,
                scope["headers"],
                identity,
            )
        except Exception as exc:  # counted by handle_intake
            if schema_missing(exc):
                # At this version's revision, tables dropped: db upgrade would not mend it (app.py alike).
                dropped = await run_in_threadpool(migrate.at_head, self.context.db.engine)
                advice = TABLES_DROPPED_MESSAGE if dropped else SCHEMA_MISSING_MESSAGE
                log.warning(
                    "%s: database schema missing (%s): %s",
                    scope["path"],
                    unavailable_reason(exc),
                    advice.rpartition("): ")[2],
                )
                return _failure(scope["method"], scope["path"], 503, SCHEMA_MISSING_CODE, advice)
            if unavailable(exc):
                log.warning("%s: database unavailable: %s", scope["path"], unavailable_reason(exc))
                return _failure(scope["method"], scope["path"], 503, UNAVAILABLE_CODE, UNAVAILABLE_MESSAGE)
            log.exception("alert intake failed")
            return _failure(scope["method"], scope["path"], 500, INTERNAL_CODE, INTERNAL_MESSAGE)
