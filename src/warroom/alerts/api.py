"""Alert intake endpoints (each source's own wire format), alert reads, promotion, reports, and keys."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Header, Query, Request, status
from fastapi import Path as PathParam
from fastapi.responses import JSONResponse, Response
from pydantic import StringConstraints
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from warroom.alerts import adapters, changes, heartbeats, maintenance, reports, service
from warroom.alerts import bodies as body_docs
from warroom.alerts.adapters import AlertEvent
from warroom.alerts.config import AlertSeverity
from warroom.alerts.fastpath import (
    CHANGE_SOURCE,
    PAGERDUTY_V1_PATH,
    handle_intake,
    handle_opsgenie,
    handle_opsgenie_change,
    handle_webhook,
    integration_key,
    pagerduty_error,
    query_keys,
)
from warroom.alerts.metrics import INTERNAL, RATE_LIMITED, UNAVAILABLE, count_refused, refusal_reason
from warroom.alerts.models import AlertStatus
from warroom.alerts.ratelimit import RateLimit, RefusalLog
from warroom.alerts.schemas import (
    AlertDetail,
    AlertOverview,
    AlertPage,
    AttachRequest,
    ChangeAccepted,
    ChangeCreate,
    ChangePage,
    ChangeRead,
    ChangeRecorded,
    CustomerReport,
    HeartbeatPinged,
    HeartbeatRead,
    IncidentMerged,
    IngestResult,
    InternalReport,
    MaintenanceCreate,
    MaintenanceDetail,
    MaintenanceEnded,
    MaintenanceExtend,
    MaintenanceRead,
    MergeRequest,
    NoiseReport,
    NoteRequest,
    OpsgenieAccepted,
    PagerDutyAccepted,
    PagerDutyV1Accepted,
    PromoteRequest,
    ReportReceived,
    ResolveRequest,
    RoutingPreview,
    SnoozeRequest,
)
from warroom.auth import idempotency, integrations
from warroom.auth.integrations import (
    IntegrationCreate,
    IntegrationCreated,
    IntegrationRead,
    IntegrationRevoked,
    IntegrationRotate,
    IntegrationUpdate,
)
from warroom.auth.models import Role
from warroom.auth.signing import MAX_SKEW_SECONDS, SIGNATURE_HEADER, TIMESTAMP_HEADER
from warroom.context import AppContext
from warroom.db import MAX_ROW_ID
from warroom.deps import Admin, BeforeId, Context, Offset, Responder, RowId, Viewer
from warroom.durations import PeriodBound, PeriodLength
from warroom.errors import WarroomError, error_details
from warroom.openapi import changes_nothing

router = APIRouter(tags=["alerts"])


KeyQuery = Annotated[str | None, Query(description="The integration key (or send it as a Bearer token).")]
SignatureHeader = Annotated[
    str | None,
    Header(
        alias=SIGNATURE_HEADER,
        description="hex(HMAC-SHA256(secret, [timestamp + ':'] + body)); required when the integration has a "
        "signing secret.",
    ),
]
TimestampHeader = Annotated[
    str | None,
    Header(
        alias=TIMESTAMP_HEADER,
        description=f"Unix seconds, signed with the body; must be within {MAX_SKEW_SECONDS} s of the server.",
    ),
]

# These routes document the intake endpoints; in the app, ``IntakeFastPath`` answers them first with the
# same handler.


def _answer(answer: tuple[int, bytes]) -> Response:
    status_code, body = answer
    return Response(body, status_code=status_code, media_type="application/json")


def _keys(request: Request, key: str | None) -> list[str] | None:
    """The ``?key=`` values of a request, of which FastAPI read one (``key``)."""
    return query_keys(request.scope["query_string"], key, lambda: request.query_params.getlist("key"))


async def _intake(request: Request, context: AppContext, key: str | None = None) -> Response:
    return _answer(
        await handle_intake(
            request.app.state,
            context,
            request.url.path,
            _keys(request, key),
            request.headers.get("authorization"),
            await request.body(),
            request.headers.raw,
        )
    )


@router.post(
    "/api/v1/alerts/alertmanager",
    response_model=IngestResult,
    status_code=status.HTTP_202_ACCEPTED,
    summary="Prometheus Alertmanager webhook (version 4)",
    openapi_extra=body_docs.ALERTMANAGER,
)
async def alertmanager_webhook(request: Request, context: Context, key: KeyQuery = None) -> Response:
    return await _intake(request, context, key)


# Grafana's webhook contact point may be set to PUT; it does not retry a 405, so those would be lost.
@router.put(
    "/api/v1/alerts/grafana",
    response_model=IngestResult,
    status_code=status.HTTP_202_ACCEPTED,
    summary="Grafana unified alerting webhook, from a contact point set to PUT (as POST)",
    operation_id="grafana_webhook_put",
    openapi_extra=body_docs.GRAFANA,
)
@router.post(
    "/api/v1/alerts/grafana",
    response_model=IngestResult,
    status_code=status.HTTP_202_ACCEPTED,
    summary="Grafana unified alerting webhook",
    description="When the integration has a signing secret, each delivery must carry Grafana's HMAC "
    f"signature of the raw body in {SIGNATURE_HEADER} (and, if Grafana is set to send one, the signed "
    f"timestamp in {TIMESTAMP_HEADER}), or under the header names the integration was created with; "
    "otherwise 401 and nothing is stored.",
    openapi_extra=body_docs.GRAFANA,
)
async def grafana_webhook(
    request: Request,
    context: Context,
    key: KeyQuery = None,
    signature: SignatureHeader = None,
    timestamp: TimestampHeader = None,
) -> Response:
    del signature, timestamp  # documented here; the handler reads them from the raw headers
    return await _intake(request, context, key)


@router.post(
    "/api/v1/alerts",
    response_model=IngestResult,
    status_code=status.HTTP_202_ACCEPTED,
    summary="Plain JSON alert, or a list of them (accepted whole or not at all)",
    openapi_extra=body_docs.GENERIC,
)
async def generic_alerts(request: Request, context: Context, key: KeyQuery = None) -> Response:
    return await _intake(request, context, key)


@router.post(
    "/v2/enqueue",
    status_code=status.HTTP_202_ACCEPTED,
    summary="PagerDuty Events API v2 (PagerDuty's own request and response shapes)",
    response_model=None,
    responses={202: {"model": PagerDutyAccepted, "description": "The event is stored."}},
    openapi_extra=body_docs.PAGERDUTY,
)
async def pagerduty_enqueue(request: Request, context: Context) -> Response:
    return await _intake(request, context)


@router.post(
    PAGERDUTY_V1_PATH,
    status_code=status.HTTP_200_OK,
    summary="PagerDuty Events API v1 (older tools; Alertmanager's pagerduty_configs with a service_key)",
    response_model=None,
    responses={200: {"model": PagerDutyV1Accepted, "description": "The event is stored."}},
    openapi_extra=body_docs.PAGERDUTY_V1,
)
async def pagerduty_v1_create_event(request: Request, context: Context) -> Response:
    return await _intake(request, context)


# Opsgenie's Alert API, for tools set up for Opsgenie (Alertmanager's opsgenie_configs with api_url, Grafana's
# Opsgenie contact point, client libraries): create by alias, close and acknowledge by alias.
OpsgenieKeyHeader = Annotated[
    str | None, Header(alias="Authorization", description="GenieKey <key of an opsgenie integration>")
]
IdentifierType = Annotated[
    Literal["alias"],
    Query(
        alias="identifierType",
        description="Warroom knows Opsgenie-shaped alerts by alias (it issues no Opsgenie ids).",
    ),
]
# What every Opsgenie-shaped route answers once the request is done (the handlers write it themselves).
OPSGENIE_ACCEPTED: dict[int | str, dict[str, Any]] = {
    202: {"model": OpsgenieAccepted, "description": "Done: the alert is stored or changed."}
}
# An alias is free text and may hold "/" ("db-1/disk"), sent encoded: the path takes it whole.
OpsgenieAlias = Annotated[
    str, PathParam(min_length=1, description="The alert's alias, URL-encoded (it may hold '/').")
]


async def _opsgenie(
    request: Request, context: AppContext, authorization: str | None, read: Callable[[bytes], AlertEvent]
) -> Response:
    return _answer(
        await handle_opsgenie(request.app.state, context, authorization, await request.body(), read)
    )


@router.post(
    "/v2/alerts",
    status_code=status.HTTP_202_ACCEPTED,
    summary="Opsgenie Alert API: create an alert (the alias is its dedup key)",
    response_model=None,
    responses=OPSGENIE_ACCEPTED,
    openapi_extra=body_docs.OPSGENIE_CREATE,
)
async def opsgenie_create(
    request: Request, context: Context, authorization: OpsgenieKeyHeader = None
) -> Response:
    return await _opsgenie(
        request,
        context,
        authorization,
        lambda body: adapters.from_opsgenie(adapters.parse_json(body, replace_nuls=True)),
    )


async def _opsgenie_change(
    request: Request,
    context: AppContext,
    authorization: str | None,
    identifier: str,
    update: adapters.OpsgenieUpdate,
    read: Callable[[], adapters.SourceChange] | None = None,
) -> Response:
    body = await request.body()
    return _answer(
        await run_in_threadpool(
            handle_opsgenie_change, context, authorization, identifier, update, body, read
        )
    )


# Opsgenie's update requests, answered after the change is committed. The notes route comes before the
# close and acknowledge route, whose path would take "notes" as an action.
@router.post(
    "/v2/alerts/{identifier:path}/notes",
    status_code=status.HTTP_202_ACCEPTED,
    summary="Opsgenie Alert API: add a note to the open alert of an alias (user or source is its author)",
    response_model=None,
    responses=OPSGENIE_ACCEPTED,
    openapi_extra=body_docs.OPSGENIE_NOTE,
)
async def opsgenie_add_note(
    identifier: OpsgenieAlias,
    request: Request,
    context: Context,
    identifier_type: IdentifierType,
    authorization: OpsgenieKeyHeader = None,
) -> Response:
    del identifier_type  # only alias is taken
    return await _opsgenie_change(request, context, authorization, identifier, "notes")


@router.delete(
    "/v2/alerts/{identifier:path}/{removed}",
    status_code=status.HTTP_202_ACCEPTED,
    summary="Opsgenie Alert API: remove tags (?tags=a,b) or details (?keys=a,b) from the open alert of an "
    "alias",
    response_model=None,
    responses=OPSGENIE_ACCEPTED,
)
async def opsgenie_remove(
    identifier: OpsgenieAlias,
    removed: Literal["tags", "details"],
    request: Request,
    context: Context,
    identifier_type: IdentifierType,
    tags: Annotated[str | None, Query(max_length=10_000, description="For tags: comma-separated.")] = None,
    keys: Annotated[str | None, Query(max_length=10_000, description="For details: comma-separated.")] = None,
    user: Annotated[str | None, Query(max_length=100)] = None,
    source: Annotated[str | None, Query(max_length=100)] = None,
    note: Annotated[str | None, Query(max_length=25_000)] = None,
    authorization: OpsgenieKeyHeader = None,
) -> Response:
    del identifier_type  # only alias is taken
    names = (tags if removed == "tags" else keys) or ""
    return await _opsgenie_change(
        request,
        context,
        authorization,
        identifier,
        removed,
        lambda: adapters.opsgenie_removal(removed, names, adapters.opsgenie_author(user, source), note),
    )


_OPSGENIE_UPDATE_DOCS = {
    "message": "change its message (summary); Alertmanager's update_alerts sends it",
    "description": "change its description; Alertmanager's update_alerts sends it",
    "priority": "change its priority (severity)",
}


@router.put(
    "/v2/alerts/{identifier:path}/{update}",
    status_code=status.HTTP_202_ACCEPTED,
    summary="Opsgenie Alert API: change the message, description or priority of the open alert of an alias",
    description="; ".join(f"{name}: {text}" for name, text in _OPSGENIE_UPDATE_DOCS.items())
    + ". No new occurrence; the rules do not run again. 404 when the integration has no open alert with the "
    "alias.",
    response_model=None,
    responses=OPSGENIE_ACCEPTED,
    openapi_extra=body_docs.OPSGENIE_UPDATE,
)
async def opsgenie_update(
    identifier: OpsgenieAlias,
    update: Literal["message", "description", "priority"],
    request: Request,
    context: Context,
    identifier_type: IdentifierType,
    authorization: OpsgenieKeyHeader = None,
) -> Response:
    del identifier_type  # only alias is taken
    return await _opsgenie_change(request, context, authorization, identifier, update)


# Opsgenie's names for what its close and acknowledge requests do to the alert.
_OPSGENIE_ACTIONS: dict[str, Literal["resolve", "acknowledge"]] = {
    "close": "resolve",
    "acknowledge": "acknowledge",
}


@router.post(
    "/v2/alerts/{identifier:path}/{action}",
    status_code=status.HTTP_202_ACCEPTED,
    summary="Opsgenie Alert API: close (resolve), acknowledge, snooze (until endTime) or unacknowledge the "
    "alert of an alias, or add tags or details to it",
    description="Snooze and unacknowledge act on the open alert of the alias as if the person named by user "
    "(else source, else the integration) had done it here: a snooze that ends with the alert still firing "
    "pages its incident's first responders again. Tags are kept with the alert; details are its labels (no "
    "new occurrence; the rules do not run again). These answer 404 when the integration has no open alert "
    "with the alias.",
    response_model=None,
    responses=OPSGENIE_ACCEPTED,
    openapi_extra=body_docs.OPSGENIE_ACTION,
)
async def opsgenie_alert_action(
    identifier: OpsgenieAlias,
    action: Literal["close", "acknowledge", "snooze", "unacknowledge", "tags", "details"],
    request: Request,
    context: Context,
    identifier_type: IdentifierType,
    authorization: OpsgenieKeyHeader = None,
) -> Response:
    del identifier_type  # only alias is taken
    if action in ("snooze", "unacknowledge", "tags", "details"):
        return await _opsgenie_change(request, context, authorization, identifier, action)
    state_change = _OPSGENIE_ACTIONS[action]
    return await _opsgenie(
        request,
        context,
        authorization,
        lambda body: adapters.opsgenie_action(state_change, identifier, body),
    )


@router.post(
    "/api/v1/alerts/webhook/{format_name}",
    response_model=IngestResult,
    status_code=status.HTTP_202_ACCEPTED,
    summary="A tool's own webhook JSON, read by the org file's webhook format of that name",
    description="The format (automation.webhook_formats) renders each alert's fields from the payload. A "
    "payload it cannot read is refused whole (400, by field); items its skip expression leaves out are "
    "answered but not stored.",
    openapi_extra=body_docs.WEBHOOK,
)
async def webhook_alerts(
    format_name: Annotated[str, PathParam(max_length=60)],
    request: Request,
    context: Context,
    key: KeyQuery = None,
) -> Response:
    return _answer(
        await handle_webhook(
            request.app.state,
            context,
            format_name,
            _keys(request, key),
            request.headers.get("authorization"),
            await request.body(),
            request.headers.get("content-type"),
            request.headers.raw,
        )
    )


# --- reads and promotion -------------------------------------------------------------------------------


@router.get(
    "/api/v1/alerts",
    response_model=AlertPage,
)
def list_alerts(
    context: Context,
    _: Viewer,
    status_: Annotated[list[AlertStatus] | None, Query(alias="status")] = None,
    firing: Annotated[bool, Query(description="Only alerts not yet resolved.")] = False,
    unrouted: Annotated[
        bool,
        Query(
            description="Only alerts no rule routed, on no incident and held by nothing now (a maintenance "
            "window or an open inhibitor holds them back; once released, one no rule takes is unrouted)."
        ),
    ] = False,
    snoozed: Annotated[bool, Query(description="Only snoozed alerts (acknowledged until a moment).")] = False,
    source: Annotated[
        list[str] | None, Query(description="Only these sources, e.g. alertmanager (repeat for more).")
    ] = None,
    integration: Annotated[
        list[Annotated[str, StringConstraints(max_length=100)]] | None,
        Query(description="Only alerts that came in through these integrations (names; repeat for more)."),
    ] = None,
    incident: Annotated[
        list[str] | None, Query(description="Only alerts on these incidents, e.g. INC-3 (repeat for more).")
    ] = None,
    service_: Annotated[
        list[str] | None, Query(alias="service", description="Only these services (repeat for more).")
    ] = None,
    severity: Annotated[list[AlertSeverity] | None, Query(description="Only these severities.")] = None,
    label: Annotated[
        list[str] | None,
        Query(description="Only alerts carrying this label, as name=value (repeat for more)."),
    ] = None,
    since: Annotated[
        PeriodBound | None,
        Query(
            description="Only alerts seen since: how long ago (2h, up to 366d) or a time "
            "(2026-12-07T00:00:00Z)."
        ),
    ] = None,
    until: Annotated[
        PeriodBound | None,
        Query(description="Only alerts seen by then (first seen before it): how long ago, or a time."),
    ] = None,
    search: Annotated[
        str | None,
        Query(
            min_length=1,
            max_length=200,
            description="Only alerts with this text (any case) in their summary, type, dedup key, service or "
            "labels, e.g. a host name.",
        ),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Offset = 0,
    before_id: BeforeId = None,
) -> AlertPage:
    with context.db.read() as session:
        return service.list_alerts(
            session,
            status=status_ or [],
            firing=firing,
            unrouted=unrouted,
            snoozed=snoozed,
            source=source or [],
            integration=integration or [],
            incident=incident or [],
            service=service_ or [],
            known_services=[known.name for known in context.org.services],
            severity=severity or [],
            labels=label or [],
            since=since,
            until=until,
            search=search,
            limit=limit,
            offset=offset,
            before_id=before_id,
        )


@router.get("/api/v1/alerts/noise", response_model=NoiseReport)
def alert_noise(
    context: Context,
    _: Viewer,
    since: Annotated[
        PeriodLength, Query(description="The period, ending now, e.g. 24h or 7d (up to 366d).")
    ] = timedelta(days=7),
    by: Annotated[
        str,
        Query(
            description="type, service, source, severity, group, integration, or label:<name> (e.g. "
            "label:instance)."
        ),
    ] = "type",
    limit: Annotated[int, Query(ge=1, le=200)] = 20,
) -> NoiseReport:
    """The alert groups seen in the period, noisiest first."""
    with context.db.read() as session:
        return service.noise_report(session, since=since, by=by, limit=limit)


@router.get("/api/v1/alerts/overview", response_model=AlertOverview)
def alert_overview(
    context: Context,
    _: Viewer,
    since: Annotated[
        PeriodLength, Query(description="The period of new alerts shown, e.g. 1h (up to 366d).")
    ] = timedelta(hours=1),
) -> AlertOverview:
    """What is going on now: open alerts by severity and state, open incidents, new alerts over the period."""
    with context.db.read() as session:
        return service.overview(session, org=context.org, since=since)


# The sources a dry run reads (``reports.DRY_RUN_SOURCES``), spelt out for the OpenAPI document's enum; a test
# keeps the two in step.
PreviewSource = Literal[
    "auto",
    "alertmanager",
    "grafana",
    "pagerduty",
    "opsgenie",
    "generic",
    "email",
    "webhook",
    "customer-report",
    "internal-discovery",
]


@router.post("/api/v1/alerts/preview", response_model=list[RoutingPreview], openapi_extra=body_docs.PREVIEW)
@changes_nothing
async def preview_alerts(
    request: Request,
    context: Context,
    _: Viewer,
    source: Annotated[
        PreviewSource,
        Query(
            description="The delivery's shape; auto tells it by its fields (a body that starts with mail "
            "headers is an email message; one with affected_feature, a customer's report; one with a message "
            "and no summary, an Opsgenie create-alert request). A webhook is read by the format named in "
            "webhook_format; a report is the body its endpoint takes; opsgenie, the body of POST /v2/alerts."
        ),
    ] = "auto",
    webhook_format: Annotated[
        str | None,
        Query(
            max_length=60, description="The org file's webhook format that reads the body (source webhook)."
        ),
    ] = None,
    integration: Annotated[
        int | None,
        Query(
            ge=1,
            le=MAX_ROW_ID,
            description="The integration (id) that would send it: the open alert is looked up among its "
            "alerts only, as intake dedups them. Default: among all alerts of the source.",
        ),
    ] = None,
) -> list[RoutingPreview]:
    """A dry run of the rules on one delivery, as a source would POST it (or a mail message, as an email
    integration would receive it): which rules match, the incident it
    would open, and what is open now (the alert it would update, the group's incident it would join, the
    maintenance window that would hold it). Nothing is stored; no integration key is needed."""
    body = await request.body()
    content_type = request.headers.get("content-type")
    # Parsed off the event loop, as intake parses: a form or a mail message of many parts takes a while.
    kind, events = await run_in_threadpool(
        reports.delivery_events, context.org, body, source, webhook_format, content_type
    )
    return await run_in_threadpool(_preview, context, kind, events, integration)


def _preview(
    context: AppContext, source: str, events: list[AlertEvent], integration_id: int | None
) -> list[RoutingPreview]:
    with context.db.read() as session:
        return service.preview(
            session, org=context.org, source=source, events=events, integration_id=integration_id
        )


@router.get("/api/v1/alerts/{ref}", response_model=AlertDetail)
def get_alert(ref: str, context: Context, _: Viewer) -> AlertDetail:
    with context.db.read() as session:
        return service.to_detail(session, service.get_alert(session, ref))


@router.post("/api/v1/alerts/{ref}/promote", response_model=AlertDetail, status_code=status.HTTP_201_CREATED)
def promote_alert(
    ref: str, context: Context, principal: Responder, body: PromoteRequest | None = None
) -> AlertDetail:
    """Open an incident from the alert. 409 if it is on an incident already (unless ``move``), or has
    resolved (unless ``force``: the message says when)."""
    with context.db.write() as session:
        alert, _ = service.promote(
            session, org=context.org, ref=ref, data=body or PromoteRequest(), performer=principal.name
        )
        return service.to_detail(session, alert)


@router.post("/api/v1/alerts/{ref}/attach", response_model=AlertDetail)
def attach_alert(ref: str, body: AttachRequest, context: Context, principal: Responder) -> AlertDetail:
    """Put the alert on an open incident (or move it there from another); 409 if it is already there, or
    the incident is not open."""
    with context.db.write() as session:
        alert, _ = service.attach_to_incident(
            session, ref=ref, incident_ref=body.incident, performer=principal.name
        )
        return service.to_detail(session, alert)


@router.post("/api/v1/incidents/{ref}/merge", response_model=IncidentMerged, tags=["incidents"])
def merge_incident(ref: str, body: MergeRequest, context: Context, principal: Responder) -> IncidentMerged:
    """Fold this incident into another open one (one cause opened both): its alerts move there, and it is
    resolved as merged. 409 if either is not open; 422 for itself."""
    with context.db.write() as session:
        merged, into, alerts = service.merge_incidents(
            session, org=context.org, ref=ref, into=body.into, performer=principal.name, note=body.note
        )
        return IncidentMerged(incident=merged.ref, into=into.ref, alerts=[alert.ref for alert in alerts])


@router.post("/api/v1/alerts/{ref}/acknowledge", response_model=AlertDetail)
def acknowledge_alert(ref: str, context: Context, principal: Responder) -> AlertDetail:
    """Acknowledge an alert by hand (someone is on it); 409 if it is already acknowledged or resolved."""
    with context.db.write() as session:
        alert = service.acknowledge(session, org=context.org, ref=ref, performer=principal.name)
        return service.to_detail(session, alert)


@router.post("/api/v1/alerts/{ref}/unacknowledge", response_model=AlertDetail)
def unacknowledge_alert(ref: str, context: Context, principal: Responder) -> AlertDetail:
    """Take an acknowledgement back: the alert is firing again; 409 if it is not acknowledged."""
    with context.db.write() as session:
        alert = service.unacknowledge(session, org=context.org, ref=ref, performer=principal.name)
        return service.to_detail(session, alert)


@router.post("/api/v1/alerts/{ref}/snooze", response_model=AlertDetail)
def snooze_alert(ref: str, body: SnoozeRequest, context: Context, principal: Responder) -> AlertDetail:
    """Acknowledge an alert until a moment (``duration`` or ``until``, within 7 days). If it still fires
    then, it fires again and its incident's first responders are paged as a reminder. Snoozing again moves
    the end; unacknowledge ends it now. 409 if it is resolved."""
    with context.db.write() as session:
        alert = service.snooze(
            session,
            org=context.org,
            ref=ref,
            performer=principal.name,
            duration=body.duration,
            until=body.until,
        )
        return service.to_detail(session, alert)


@router.post("/api/v1/alerts/{ref}/resolve", response_model=AlertDetail)
def resolve_alert(
    ref: str, context: Context, principal: Responder, body: ResolveRequest | None = None
) -> AlertDetail:
    """Resolve an alert by hand (its source stopped sending, or never resolves); 409 if already resolved."""
    note = body.note if body is not None else None
    with context.db.write() as session:
        alert = service.resolve(session, org=context.org, ref=ref, performer=principal.name, note=note)
        return service.to_detail(session, alert)


@router.post("/api/v1/alerts/{ref}/notes", response_model=AlertDetail, status_code=status.HTTP_201_CREATED)
def note_alert(ref: str, body: NoteRequest, context: Context, principal: Responder) -> AlertDetail:
    """Write a note on an alert (what you found, why it can wait, the ticket). It goes on the timeline of the
    alert's incident too, if it has one."""
    with context.db.write() as session:
        alert = service.add_note(session, ref=ref, body=body.body, author=principal.name)
        return service.to_detail(session, alert)


@router.patch("/api/v1/alerts/{ref}/notes/{note_id}", response_model=AlertDetail)
def edit_alert_note(
    ref: str, note_id: RowId, body: NoteRequest, context: Context, principal: Responder
) -> AlertDetail:
    """Correct a note: its author, or an admin (403 otherwise). The incident's timeline keeps what it said."""
    with context.db.write() as session:
        alert = service.edit_note(
            session,
            ref=ref,
            note_id=note_id,
            body=body.body,
            performer=principal.name,
            admin=principal.role == Role.admin,
        )
        return service.to_detail(session, alert)


@router.delete("/api/v1/alerts/{ref}/notes/{note_id}", response_model=AlertDetail)
def delete_alert_note(ref: str, note_id: RowId, context: Context, principal: Responder) -> AlertDetail:
    """Take a note back: its author, or an admin (403 otherwise). The incident's timeline keeps it."""
    with context.db.write() as session:
        alert = service.delete_note(
            session, ref=ref, note_id=note_id, performer=principal.name, admin=principal.role == Role.admin
        )
        return service.to_detail(session, alert)


# --- maintenance windows ---------------------------------------------------------------------------------


@router.get("/api/v1/maintenance", response_model=list[MaintenanceRead], tags=["maintenance"])
def list_maintenance(
    context: Context,
    _: Viewer,
    include_ended: Annotated[bool, Query(alias="all", description="Include windows that ended.")] = False,
) -> list[MaintenanceRead]:
    """Scheduled and active maintenance windows (with ``all=true``, ended ones too, newest first)."""
    with context.db.read() as session:
        return [
            maintenance.to_read(w) for w in maintenance.list_windows(session, include_ended=include_ended)
        ]


@router.post(
    "/api/v1/maintenance",
    response_model=MaintenanceRead,
    status_code=status.HTTP_201_CREATED,
    tags=["maintenance"],
)
def create_maintenance(body: MaintenanceCreate, context: Context, principal: Responder) -> MaintenanceRead:
    """Plan a maintenance window: alerts it covers are recorded but not acted on until it ends."""
    with context.db.write() as session:
        window = maintenance.create_window(session, org=context.org, data=body, performer=principal.name)
        return maintenance.to_read(window)


@router.get("/api/v1/maintenance/{ref}", response_model=MaintenanceDetail, tags=["maintenance"])
def get_maintenance(ref: str, context: Context, _: Viewer) -> MaintenanceDetail:
    with context.db.read() as session:
        return service.maintenance_detail(session, ref)


@router.post("/api/v1/maintenance/{ref}/extend", response_model=MaintenanceRead, tags=["maintenance"])
def extend_maintenance(ref: str, body: MaintenanceExtend, context: Context, _: Responder) -> MaintenanceRead:
    """The work takes longer: end the window ``by`` later. 409 if it already ended."""
    with context.db.write() as session:
        return maintenance.to_read(maintenance.extend_window(session, ref=ref, by=body.by))


@router.post("/api/v1/maintenance/{ref}/end", response_model=MaintenanceEnded, tags=["maintenance"])
def end_maintenance(ref: str, context: Context, principal: Responder) -> MaintenanceEnded:
    """End a window now; alerts it held that still fire are routed at once. A window over already is
    answered as it is, with ``unchanged: true``."""
    with context.db.write() as session:
        return maintenance.end_window(session, org=context.org, ref=ref, performer=principal.name)


# --- heartbeats --------------------------------------------------------------------------------------------


@router.post("/api/v1/heartbeats/{name}", response_model=HeartbeatPinged, tags=["heartbeats"])
async def ping_heartbeat(
    name: str,
    request: Request,
    context: Context,
    key: KeyQuery = None,
) -> HeartbeatPinged:
    """A ping of a heartbeat of the org file (a ``heartbeat`` integration key, as ?key= or Bearer). The body,
    if any, is ignored, so Alertmanager's webhook can point here."""
    return await _report(request, context, name, key, None)


@router.post(
    "/api/v1/heartbeats/{name}/{signal}",
    response_model=HeartbeatPinged,
    tags=["heartbeats"],
    openapi_extra=body_docs.HEARTBEAT_OUTPUT,
)
async def signal_heartbeat(
    name: str,
    signal: Annotated[str, PathParam(description="start, fail, or the run's exit status (0 is a success).")],
    request: Request,
    context: Context,
    key: KeyQuery = None,
) -> HeartbeatPinged:
    """A run's outcome: ``/fail`` or a non-zero exit status fires the heartbeat's failure alert at once,
    with the body (the run's output, its last 10,000 characters) on the alert; ``/0`` is a plain ping.
    Either way it counts as a ping. ``/start`` says a run began: it is not a ping, and with the heartbeat's
    ``max_runtime`` a run that has not ended by then fires the missed alert. No body is refused: it is read
    as it arrives, of any size, for its tail (up to ``heartbeats.OUTPUT_READ_LIMIT``)."""
    return await _report(request, context, name, key, signal)


async def _report(
    request: Request, context: AppContext, name: str, key: str | None, outcome: str | None
) -> HeartbeatPinged:
    """A ping (``outcome`` None) or a run's report, each refusal counted as a refused delivery."""
    try:
        secret = integration_key(_keys(request, key), request.headers.get("authorization"))
        reported = heartbeats.Signal() if outcome is None else heartbeats.Signal.parse(outcome)
        if request.headers.get("content-length", "") != "0":
            # A stranger is refused before its body (up to 16 MiB of a run's output) is read.
            await run_in_threadpool(_check_sender, context, name, secret)
        # Read even when it is not kept: a sender whose body is left unread may see its request fail.
        output, cut = await heartbeats.read_output(request.stream())
        if reported.failed:
            reported = reported.with_output(output, cut=cut)
        return await run_in_threadpool(_ping, context, name, secret, reported)
    except ClientDisconnect:
        raise
    except Exception as exc:
        # A signal that is not one (InvalidInput) counts as an invalid payload, as on every intake route.
        count_refused(heartbeats.SOURCE, refusal_reason(exc))
        raise


def _check_sender(context: AppContext, name: str, secret: str | None) -> None:
    with context.db.read() as session:
        heartbeats.check_sender(session, org=context.org, name=name, secret=secret)


def _ping(context: AppContext, name: str, secret: str | None, signal: heartbeats.Signal) -> HeartbeatPinged:
    with context.db.write() as session:
        heartbeat = heartbeats.ping(session, org=context.org, name=name, secret=secret, signal=signal)
        return HeartbeatPinged(
            status="started" if signal.start else "failed" if signal.failed else "ok",
            name=heartbeat.name,
            pings=heartbeat.pings,
            next_due_at=heartbeats.next_due_at(context.org, heartbeat),
        )


@router.get("/api/v1/heartbeats", response_model=list[HeartbeatRead], tags=["heartbeats"])
def list_heartbeats(context: Context, _: Viewer) -> list[HeartbeatRead]:
    with context.db.read() as session:
        return heartbeats.list_heartbeats(session, context.org)


# --- change events -----------------------------------------------------------------------------------------


@router.post(
    "/v2/change/enqueue",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=ChangeAccepted,
    tags=["changes"],
    responses={400: {"description": "PagerDuty's error shape: {status, message, errors[]}"}},
    openapi_extra=body_docs.PAGERDUTY_CHANGE,
)
async def enqueue_change(request: Request, context: Context) -> Response:
    """PagerDuty's Change Events API: a deploy or a config push from a pipeline, with a ``pagerduty``
    integration key as ``routing_key``. It pages nobody; it goes on the timeline of an incident that opens
    within ``recent_changes_window``."""
    body = await request.body()
    try:
        ref = await run_in_threadpool(_record_pagerduty_change, context, body)
    except WarroomError as exc:
        count_refused(CHANGE_SOURCE, refusal_reason(exc))
        code, answer = pagerduty_error(exc)
        return Response(answer, status_code=code, media_type="application/json")
    except Exception as exc:  # answered by the framework's handlers (503, 500)
        count_refused(CHANGE_SOURCE, refusal_reason(exc))
        raise
    return JSONResponse(ChangeAccepted(id=ref).model_dump(), status_code=status.HTTP_202_ACCEPTED)


def _record_pagerduty_change(context: AppContext, body: bytes) -> str:
    with context.db.write() as session:
        return changes.record_pagerduty(session, org=context.org, body=body).change.ref


@router.post(
    "/api/v1/changes", status_code=status.HTTP_201_CREATED, response_model=ChangeRecorded, tags=["changes"]
)
def record_change(body: ChangeCreate, context: Context, principal: Responder) -> ChangeRecorded:
    """A change recorded by a person or a pipeline with an API token (responder). It also goes on the
    timeline of each open incident of its service that it may matter to (``noted_on``)."""
    with context.db.write() as session:
        recorded = changes.record(session, org=context.org, data=body, recorded_by=principal.name)
        change = ChangeRead.model_validate(recorded.change)
        return ChangeRecorded(
            **change.model_dump(), noted_on=[incident.ref for incident in recorded.noted_on]
        )


@router.get(
    "/api/v1/changes",
    response_model=ChangePage,
    tags=["changes"],
)
def list_changes(
    context: Context,
    _: Viewer,
    service: Annotated[str | None, Query(description="This service's changes and those naming none.")] = None,
    since: Annotated[
        PeriodBound | None,
        Query(
            description="Changes since: how long ago (24h, up to 366d) or a time (2026-12-07T00:00:00Z); "
            "default 24h before until."
        ),
    ] = None,
    until: Annotated[
        PeriodBound | None, Query(description="Changes until: how long ago, or a time; default now.")
    ] = None,
    incident: Annotated[
        str | None,
        Query(
            description="The changes around this incident (INC-n or n): its services', from "
            "recent_changes_window before it opened until it was resolved. Not with service, since or until."
        ),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Offset = 0,
    before_id: BeforeId = None,
) -> ChangePage:
    """The changes of the period, newest first (by when they happened). ``total``: the changes the filters
    and ``before_id`` select."""
    with context.db.read() as session:
        return changes.list_changes(
            session,
            org=context.org,
            service=service,
            since=since,
            until=until,
            incident_ref=incident,
            limit=limit,
            offset=offset,
            before_id=before_id,
        )


# --- reports from people -----------------------------------------------------------------------------

REPORTS_PATH = "/api/v1/reports"
INTERNAL_REPORTS_PATH = "/api/v1/reports/internal"
_REPORT_SOURCES = {REPORTS_PATH: reports.CUSTOMER, INTERNAL_REPORTS_PATH: reports.INTERNAL}
# A refused report's reason in warroom_alert_deliveries_rejected_total, by its answer's status: the reasons
# the alert intake counts (a field at fault, 422, is an invalid_payload there too).
_REFUSAL_REASONS = {
    400: "invalid_payload",
    401: "unauthorized",
    403: "forbidden",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "invalid_payload",
    429: RATE_LIMITED,
    503: UNAVAILABLE,
}
# How long a browser may reuse a preflight's answer: an org file's new origins take effect within it.
CORS_MAX_AGE_SECONDS = 600


class ReportsEdge:
    """ASGI middleware in front of every other check on the report routes (installed outermost, so it sees
    the answers of the body limit and the error handlers too):

    - CORS for the public form, for the origins of ``automation.reports.allowed_origins`` only: their
      preflight (OPTIONS) is answered here, reading nothing and counting nothing against the rate limit,
      and their requests' answers (errors too, so the page can show them) carry
      Access-Control-Allow-Origin. Any other origin gets no CORS header, and a browser keeps the answer
      from its page.
    - Every report refused is counted in warroom_alert_deliveries_rejected_total, as intake counts refused
      deliveries; a rate-limited public one is logged (``ratelimit.RefusalLog``)."""

    def __init__(self, app: ASGIApp, context: AppContext) -> None:
        self.app = app
        self.context = context
        self.rate_limited = RefusalLog()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        source = _REPORT_SOURCES.get(scope["path"]) if scope["type"] == "http" else None
        if source is None:
            await self.app(scope, receive, send)
            return
        origin = self._allowed_origin(scope) if source == reports.CUSTOMER else None
        if origin is not None and scope["method"] == "OPTIONS":
            headers = [
                *_cors_headers(origin),
                (b"access-control-allow-methods", b"POST"),
                (b"access-control-allow-headers", b"content-type"),
                (b"access-control-max-age", str(CORS_MAX_AGE_SECONDS).encode()),
                (b"content-length", b"0"),
            ]
            await send({"type": "http.response.start", "status": 204, "headers": headers})
            await send({"type": "http.response.body", "body": b""})
            return
        delivery = scope["method"] == "POST"
        started = False

        async def answer(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                status_code = message["status"]
                if delivery and status_code >= 400:
                    self._refused(scope, source, status_code)
                if origin is not None:
                    message = {**message, "headers": [*message.get("headers", []), *_cors_headers(origin)]}
            await send(message)

        try:
            await self.app(scope, receive, answer)
        except Exception:
            if delivery and not started:
                count_refused(source, INTERNAL)  # answered 500 by the server's error middleware
            raise

    def _allowed_origin(self, scope: Scope) -> str | None:
        allowed = self.context.org.automation.reports.allowed_origins
        if not allowed:
            return None
        origin = next((value for name, value in scope["headers"] if name == b"origin"), None)
        if origin is None:
            return None
        text = origin.decode("latin-1")
        return text if text in allowed else None

    def _refused(self, scope: Scope, source: str, status_code: int) -> None:
        count_refused(
            source, _REFUSAL_REASONS.get(status_code, INTERNAL if status_code >= 500 else "invalid_payload")
        )
        if status_code == 429:
            config = self.context.org.automation.reports
            client = scope["client"][0] if scope.get("client") else "unknown"
            self.rate_limited.refused(client, RateLimit(config.rate_limit, config.rate_period))


def _cors_headers(origin: str) -> list[tuple[bytes, bytes]]:
    # Retry-After is not one a page may read unless exposed: a form says when to try again.
    return [
        (b"access-control-allow-origin", origin.encode("latin-1")),
        (b"access-control-expose-headers", b"Retry-After"),
        (b"vary", b"Origin"),
    ]


@router.post(
    REPORTS_PATH,
    response_model=ReportReceived,
    status_code=status.HTTP_202_ACCEPTED,
    summary="Public: a customer reports a problem (rate-limited per client address)",
    responses={429: {"description": "Too many reports from this address; see Retry-After."}},
)
def customer_report(body: CustomerReport, request: Request, context: Context) -> Any:
    """Anyone may call this, so the answer only says the report was taken: how it was routed (rules,
    incidents, the stored alert) is for the team's eyes."""
    client = request.client.host if request.client else "unknown"
    config = context.org.automation.reports
    limit = RateLimit(config.rate_limit, config.rate_period)
    # Counted in the database, so every process counts the same reports. A read first: a client over the
    # limit (a flood) is answered without taking a write transaction.
    with context.db.read() as session:
        wait = limit.wait(session, client)
    if wait is None:
        with context.db.write() as session:
            wait = limit.take(session, client)
            if wait is None:
                service.customer_report(session, org=context.org, report=body, client=client)
    if wait is not None:
        message = f"too many reports from this address; try again in {wait} s"
        return JSONResponse(
            {
                "error": {
                    "code": "rate_limited",
                    "message": message,
                    "details": error_details(message, {"retry_after": wait}),
                }
            },
            status_code=429,
            headers={"Retry-After": str(wait)},
        )
    return ReportReceived()


@router.post(
    INTERNAL_REPORTS_PATH,
    response_model=AlertDetail,
    status_code=status.HTTP_202_ACCEPTED,
    summary="A team member reports something they found",
)
def internal_report(body: InternalReport, context: Context, principal: Responder) -> AlertDetail:
    with context.db.write() as session:
        alert = service.internal_report(session, org=context.org, report=body, reporter=principal.name)
        return service.to_detail(session, alert)


# --- integration keys (admin) --------------------------------------------------------------------------


@router.get("/api/v1/integrations", response_model=list[IntegrationRead], tags=["auth"])
def list_integrations(context: Context, _: Admin) -> list[IntegrationRead]:
    """Every integration, revoked ones too; ``service_known`` is false for a default service that the
    server's org file no longer has."""
    with context.db.read() as session:
        return integrations.list_integrations(session, context.org)


@router.post(
    "/api/v1/integrations",
    response_model=IntegrationCreated,
    status_code=status.HTTP_201_CREATED,
    tags=["auth"],
    dependencies=[Depends(idempotency.answer_holds_a_secret)],
)
def create_integration(body: IntegrationCreate, context: Context, _: Admin) -> IntegrationCreated:
    with context.db.write() as session:
        return integrations.create_integration(
            session,
            org=context.org,
            name=body.name,
            type=body.type,
            service=body.service,
            signing=body.signing,
            signing_secret=body.signing_secret,
            signature_header=body.signature_header,
            timestamp_header=body.timestamp_header,
        )


@router.delete("/api/v1/integrations/{integration_id}", response_model=IntegrationRevoked, tags=["auth"])
def revoke_integration(integration_id: RowId, context: Context, _: Admin) -> IntegrationRevoked:
    with context.db.write() as session:
        return integrations.revoke_integration(session, org=context.org, integration_id=integration_id)


@router.patch("/api/v1/integrations/{integration_id}", response_model=IntegrationRead, tags=["auth"])
def update_integration(
    integration_id: RowId, body: IntegrationUpdate, context: Context, _: Admin
) -> IntegrationRead:
    """Rename, set the default service (null: none), or change the signature header names; a header name set
    to null goes back to the default."""
    with context.db.write() as session:
        return integrations.update_integration(
            session, org=context.org, integration_id=integration_id, changes=body
        )


@router.post(
    "/api/v1/integrations/{integration_id}/rotate",
    response_model=IntegrationCreated,
    tags=["auth"],
    dependencies=[Depends(idempotency.answer_holds_a_secret)],
)
def rotate_integration(
    integration_id: RowId, context: Context, _: Admin, body: IntegrationRotate | None = None
) -> IntegrationCreated:
    """A new key (and signing secret, if the integration signs); the replaced ones work for ``grace``."""
    rotation = body or IntegrationRotate()
    with context.db.write() as session:
        return integrations.rotate_integration(
            session,
            org=context.org,
            integration_id=integration_id,
            grace=rotation.grace,
            signing_secret=rotation.signing_secret,
        )
