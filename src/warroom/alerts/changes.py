"""Change events: deploys, config pushes, flags flipped. Not problems, but the first thing asked about one.

Pipelines send them in PagerDuty's Change Events shape (``POST /v2/change/enqueue`` with a ``pagerduty``
integration key as ``routing_key``, so PagerDuty's plugins for CI tools work unchanged), or as plain JSON with
an API token (``POST /api/v1/changes``, ``warroom changes record``). When an incident opens, by automation or
by hand, the changes of its services (and those that name no service) from ``recent_changes_window`` before it
go on its timeline, newest first. A change recorded while such an incident is open goes on its timeline too:
a rollback or a hotfix is part of the response, and a deploy reported late may be the cause.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

from pydantic import TypeAdapter
from sqlalchemy import Select, and_, false, func, or_, select
from sqlalchemy.orm import Session

from warroom.alerts.adapters import (
    UTF8_BOM,
    InvalidPayload,
    nul_refusal,
    parse_json,
    surrogate_refusal,
    validate_payload,
)
from warroom.alerts.models import ChangeEvent
from warroom.alerts.schemas import ChangeCreate, ChangePage, ChangeRead, PagerDutyChange, safe_link
from warroom.auth import integrations
from warroom.auth.models import IntegrationType
from warroom.db import utcnow
from warroom.durations import check_period, format_duration
from warroom.errors import InvalidInput
from warroom.fields import one_line
from warroom.incidents import service as incident_service
from warroom.incidents.models import OPEN_STATUSES, Incident, IncidentService, TimelineKind
from warroom.jsonbody import NOT_JSON, nul_field, replace_nul, surrogate_escape_in, surrogate_field
from warroom.orgconfig import OrgConfig

PERFORMER = "automation"
# The timeline note names at most this many changes: the newest are the likeliest suspects.
NOTE_LIMIT = 10
# A change recorded later is noted on at most this many open incidents (the last opened).
NOTE_ON_LIMIT = 100
_PAGERDUTY_CHANGE = TypeAdapter(PagerDutyChange)
_CHANGE = TypeAdapter(ChangeCreate)
_NEWEST_FIRST = (ChangeEvent.happened_at.desc(), ChangeEvent.id.desc())


class Recorded(NamedTuple):
    change: ChangeEvent
    # The open incidents whose timelines now name the change.
    noted_on: list[Incident]


# ``list_changes``'s period when it is given neither ``since`` nor an incident.
DEFAULT_PERIOD = timedelta(days=1)


def record(session: Session, *, org: OrgConfig, data: ChangeCreate, recorded_by: str) -> Recorded:
    """A change recorded with an API token: its service, if named, must be one of the org file's."""
    if data.service is not None:
        org.check_services([data.service], "service")
    links = [link.model_dump(exclude_none=True) for link in data.links]
    return _store(session, org, data, links, recorded_by=recorded_by, integration_id=None)


def parse_pagerduty_body(body: bytes, *, replace_nuls: bool = False) -> Any:
    """A PagerDuty-shaped body (an event, v1 or v2, or a change), read before its key is known: a body that
    is not JSON is refused saying only that (``body: not valid JSON``), not with the parser's account of
    where it failed, as PagerDuty names nothing but the key to a caller it does not know yet. A NUL is
    replaced (``replace_nuls``) or kept: text no database can store is refused once the key is checked
    (``refuse_unstorable``), the request guard leaving these routes to do so."""
    try:
        return parse_json(body, replace_nuls=replace_nuls, refuse_nuls=False)
    except InvalidPayload as exc:
        if not exc.message.startswith(NOT_JSON):
            raise
        if surrogate_escape_in(body):
            # orjson refuses a lone surrogate escape (``"\\ud800"``) as not JSON; the standard parser keeps
            # it, so that the key is checked first and the surrogate then refused naming its field.
            kept = _with_lone_surrogates(body)
            if kept is not None:
                return replace_nul(kept) if replace_nuls and b"\\u0000" in body else kept
        raise InvalidPayload(NOT_JSON, [{"field": "body", "message": "not valid JSON"}]) from None


def _with_lone_surrogates(body: bytes) -> Any:
    """``body`` read by the standard parser, which keeps lone surrogates, if it is UTF-8 JSON; else None."""
    try:
        return json.loads(body.removeprefix(UTF8_BOM).decode("utf-8"))
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        return None


def refuse_unstorable(data: Any, body: bytes) -> None:
    """A NUL or a lone UTF-16 surrogate in a key or string of a PagerDuty-shaped body, refused naming the
    field (400), as the request guard refuses one on the other routes: after the key in the body is checked,
    since PagerDuty names nothing but the key to a caller it does not know. Byte searches first, so a body
    with neither pays nothing more."""
    if b"\\u0000" in body:
        field = nul_field(data)
        if field is not None:
            raise nul_refusal(field)
    if surrogate_escape_in(body):
        field = surrogate_field(data)
        if field is not None:
            raise surrogate_refusal(field)


def routing_key_in(data: Any, field: str = "routing_key") -> str:
    """The integration key of a PagerDuty-shaped body (``routing_key``; v1's ``service_key``), read before
    the rest of the body is validated: the key comes first. 400 (in PagerDuty's words) for a body that is not
    an object, or that has no key: naming only the key, so a caller without one learns nothing more."""
    if not isinstance(data, dict):
        raise InvalidPayload(
            "Event object format is unrecognized", [{"message": "the body must be a JSON object"}]
        )
    key = data.get(field)
    if key is None or key == "":
        raise InvalidPayload("Event object is invalid", [{"field": field, "message": "Field required"}])
    if not isinstance(key, str):
        message = "Input should be a valid string"
        raise InvalidPayload("Event object is invalid", [{"field": field, "message": message}])
    return key


def record_pagerduty(session: Session, *, org: OrgConfig, body: bytes) -> Recorded:
    """A change in PagerDuty's shape. Its routing key is a ``pagerduty`` integration key, as for alerts,
    checked before the rest of the body is validated (401, 403 whatever the body; 400 for a body that
    cannot be read, or has no key).

    PagerDuty ties a change to the service of its key. Here a change's service is the first of: the service
    named in ``custom_details.service`` (refused if the org file has no such service), the integration's
    default service, ``payload.source`` when that is a service's name."""
    sent = parse_pagerduty_body(body)
    integration = integrations.authenticate_integration(
        session, routing_key_in(sent), IntegrationType.pagerduty
    )
    refuse_unstorable(sent, body)
    event: PagerDutyChange = validate_payload(_PAGERDUTY_CHANGE, sent)
    payload = event.payload
    details: dict[str, Any] = payload.custom_details or {}
    named = details.get("service")
    if named is not None:
        # Named on purpose, so a typo is refused as on the token path, not credited to another service.
        try:
            if not isinstance(named, str):
                raise InvalidInput("must be a service's name", {"field": "service"})
            org.check_services([named], "service")
        except InvalidInput as refused:
            field, reason = "payload.custom_details.service", refused.message.removeprefix("service: ")
            raise InvalidPayload(f"{field}: {reason}", [{"field": field, "message": reason}]) from None
    candidates = (named, integration.service, payload.source)
    service = next((name for name in candidates if isinstance(name, str) and org.service(name)), None)
    happened_at = payload.timestamp
    if happened_at is not None and happened_at.tzinfo is None:
        happened_at = happened_at.replace(tzinfo=UTC)  # PagerDuty reads a time without an offset as UTC
    fields = {"summary": payload.summary, "service": service, "source": payload.source, "details": details}
    try:
        data: ChangeCreate = validate_payload(_CHANGE, {**fields, "happened_at": happened_at})
    except InvalidPayload as refused:
        raise _in_pagerduty_words(refused) from None
    links = [
        {"href": link.href, **({"text": link.text} if link.text else {})}
        for link in event.links
        if safe_link(link.href)
    ]
    again = _same_delivery(session, integration.id, data, links)
    if again is not None:
        return Recorded(again, [])  # a retry: the change as recorded, noted nowhere again
    recorded_by = f"integration {integration.name}"
    return _store(session, org, data, links, recorded_by=recorded_by, integration_id=integration.id)


# A change's fields as the PagerDuty shape names them, for its refusals.
_PAGERDUTY_FIELDS = {
    "summary": "payload.summary",
    "source": "payload.source",
    "happened_at": "payload.timestamp",
    "details": "payload.custom_details",
}


def _in_pagerduty_words(refused: InvalidPayload) -> InvalidPayload:
    """A refusal of the change as stored, naming the fields as the sender wrote them."""
    details = []
    for detail in refused.details or []:
        field = str(detail.get("field", ""))
        head, _, rest = field.partition(".")
        if head in _PAGERDUTY_FIELDS:
            field = _PAGERDUTY_FIELDS[head] + (f".{rest}" if rest else "")
        details.append({**detail, "field": field})
    message = "; ".join(f"{d['field']}: {d['message']}" for d in details[:10])
    return InvalidPayload(f"malformed payload: {message}", details)


# The same change delivered again within this is a retry (a pipeline that did not see the answer): it is
# answered with the change already recorded, and noted nowhere again, as a repeated alert delivery is.
RETRY_WINDOW = timedelta(minutes=1)
_RETRY_CANDIDATES = 20


def _same_delivery(
    session: Session, integration_id: int, data: ChangeCreate, links: list[dict[str, Any]]
) -> ChangeEvent | None:
    """The change this integration recorded from the same event in the last ``RETRY_WINDOW``, if any. One
    sent without a timestamp was recorded as happening when it arrived; a retry of it has none either."""
    since = utcnow() - RETRY_WINDOW
    candidates = session.scalars(
        select(ChangeEvent)
        .where(
            ChangeEvent.integration_id == integration_id,
            ChangeEvent.recorded_at >= since,
            ChangeEvent.summary == data.summary,
        )
        .order_by(ChangeEvent.id.desc())
        .limit(_RETRY_CANDIDATES)
    )
    for change in candidates:
        same_time = (
            change.happened_at == change.recorded_at
            if data.happened_at is None
            else change.happened_at == data.happened_at
        )
        if (
            same_time
            and change.service == data.service
            and change.source == data.source
            and change.details == data.details
            and change.links == links
        ):
            return change
    return None


def _store(
    session: Session,
    org: OrgConfig,
    data: ChangeCreate,
    links: list[dict[str, Any]],
    *,
    recorded_by: str,
    integration_id: int | None,
) -> Recorded:
    now = utcnow()
    kept = org.automation.retention.changes
    if data.happened_at is not None and kept > timedelta(0) and data.happened_at < now - kept:
        # Retention would delete it within the hour: refused, rather than answered as recorded and lost.
        reason = (
            f"is older than the org file's retention of changes ({format_duration(kept)}): it would be "
            "deleted at the next retention run"
        )
        if integration_id is not None:
            field = _PAGERDUTY_FIELDS["happened_at"]
            raise InvalidPayload(
                f"malformed payload: {field}: {reason}", [{"field": field, "message": reason}]
            )
        raise InvalidInput(f"happened_at {reason}", {"field": "happened_at"})
    change = ChangeEvent(
        summary=data.summary,
        service=data.service,
        source=data.source,
        happened_at=data.happened_at or now,
        recorded_at=now,
        recorded_by=recorded_by,
        integration_id=integration_id,
        details=data.details,
        links=links,
    )
    session.add(change)
    session.flush()
    return Recorded(change, note_on_open_incidents(session, org, change))


def _of_services(statement: Select[ChangeEvent], services: list[str]) -> Select[ChangeEvent]:
    """Changes of these services and those that name no service; all changes when ``services`` is empty
    (an incident not tied to a service may have been caused by any of them)."""
    if not services:
        return statement
    return statement.where(or_(ChangeEvent.service.in_(services), ChangeEvent.service.is_(None)))


def list_changes(
    session: Session,
    *,
    org: OrgConfig,
    service: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    incident_ref: str | None = None,
    limit: int = 50,
    offset: int = 0,
    before_id: int | None = None,
) -> ChangePage:
    """The changes of the period (``since`` to ``until``; by default the day before ``until``, or before now),
    newest first; with ``service``, that service's and those naming none.

    With ``incident_ref``, the changes that matter to that incident: those of its services from
    ``recent_changes_window`` before it opened until it was resolved (until now while it is open).

    ``before_id``: those after that change in this order (keyset paging). A change no longer stored was pruned
    for its age, and with it every older one: nothing is left after it. An id past every stored one is before
    them all, as an id is in the lists ordered by id.

    ``total``: the changes these select (with ``before_id``, those left after it), before ``limit`` and
    ``offset``.

    A ``service`` that names nothing is refused (422), as recording a change for it is, rather than answered
    with an empty list that looks like "no changes": it must be the org file's, or one a stored change has
    (a service the file has since dropped)."""
    if service is not None and org.service(service) is None:
        stored = select(ChangeEvent.id).where(ChangeEvent.service == service).limit(1)
        if session.scalar(stored) is None:
            org.check_services([service], "service")
    if incident_ref is None:
        check_period(since, until)
        start = since if since is not None else (until or utcnow()) - DEFAULT_PERIOD
        statement = select(ChangeEvent).where(ChangeEvent.happened_at >= start)
        if until is not None:
            statement = statement.where(ChangeEvent.happened_at <= until)
        statement = _of_services(statement, [service] if service is not None else [])
    else:
        if service is not None or since is not None or until is not None:
            raise InvalidInput(
                "incident cannot be combined with service, since or until: the incident sets them",
                {"field": "incident"},
            )
        incident = incident_service.get_incident(session, incident_ref)
        window = org.automation.recent_changes_window
        statement = select(ChangeEvent).where(ChangeEvent.happened_at >= incident.created_at - window)
        ended = incident.resolved_at or incident.closed_at
        if not incident.status.is_open and ended is not None:
            statement = statement.where(ChangeEvent.happened_at <= ended)
        statement = _of_services(statement, incident.service_names)
    if before_id is not None:
        cursor = session.get(ChangeEvent, before_id)
        if cursor is not None:
            statement = statement.where(
                or_(
                    ChangeEvent.happened_at < cursor.happened_at,
                    and_(ChangeEvent.happened_at == cursor.happened_at, ChangeEvent.id < cursor.id),
                )
            )
        elif (session.scalar(select(func.max(ChangeEvent.id))) or 0) >= before_id:
            statement = statement.where(false())  # pruned, and every older change with it
    total = session.scalar(select(func.count()).select_from(statement.subquery())) or 0
    rows = session.scalars(statement.order_by(*_NEWEST_FIRST).limit(limit).offset(offset))
    return ChangePage(
        items=[ChangeRead.model_validate(row) for row in rows], total=total, limit=limit, offset=offset
    )


def before(session: Session, *, services: list[str], until: datetime, window: timedelta) -> list[ChangeEvent]:
    """The changes in ``window`` before ``until`` of these services, and those that name no service (all of
    them when ``services`` is empty), newest first."""
    statement = select(ChangeEvent).where(
        ChangeEvent.happened_at >= until - window, ChangeEvent.happened_at <= until
    )
    statement = _of_services(statement, services)
    return list(session.scalars(statement.order_by(*_NEWEST_FIRST).limit(NOTE_LIMIT + 1)))


def _describe(change: ChangeEvent) -> str:
    """One line of a timeline note: ``CHG-3 14:05 UTC: Deployed api 2.14 [api] [github-actions]``. A summary
    or source sent with line breaks is kept as sent, but shown on one line: a note lists one change a line."""
    return f"{change.ref} {change.happened_at:%H:%M} UTC: {one_line(change.summary)}" + "".join(
        f" [{one_line(part)}]" for part in (change.service, change.source) if part
    )


def note_recent_changes(session: Session, org: OrgConfig, incident: Incident) -> list[ChangeEvent]:
    """Put the changes just before a new incident on its timeline (one entry; none when there were none)."""
    window = org.automation.recent_changes_window
    if window <= timedelta(0):
        return []
    found = before(session, services=incident.service_names, until=incident.created_at, window=window)
    if not found:
        return []
    shown = found[:NOTE_LIMIT]
    lines = [_describe(change) for change in shown]
    more = " (the newest ten)" if len(found) > NOTE_LIMIT else ""
    incident_service.append_timeline(
        session,
        incident,
        performer=PERFORMER,
        kind=TimelineKind.note,
        action=f"Changes in the {format_duration(window)} before this incident{more}:\n" + "\n".join(lines),
        data={"changes": [change.id for change in shown]},
    )
    return shown


def note_on_open_incidents(session: Session, org: OrgConfig, change: ChangeEvent) -> list[Incident]:
    """Put a change just recorded on the timeline of each open incident it may matter to: one of the
    change's service (any open incident, when the change names no service) that opened at most
    ``recent_changes_window`` after the change happened. Those that opened earlier than the change did not
    list it when they opened, since it was not recorded yet. At most ``NOTE_ON_LIMIT`` of them, the last
    opened: an alert storm's thousands of open incidents do not each get a note, in one transaction."""
    window = org.automation.recent_changes_window
    statement = select(Incident.id).where(
        Incident.status.in_(OPEN_STATUSES), Incident.created_at <= change.happened_at + window
    )
    if change.service is not None:
        statement = statement.where(Incident.services.any(IncidentService.service == change.service))
    chosen = list(session.scalars(statement.order_by(Incident.id.desc()).limit(NOTE_ON_LIMIT)))
    if not chosen:
        return []
    incidents = list(
        session.scalars(
            select(Incident)
            .where(Incident.id.in_(chosen), Incident.status.in_(OPEN_STATUSES))
            .order_by(Incident.id)
            .with_for_update()
        )
    )
    for incident in incidents:
        if change.happened_at < incident.created_at:
            when = f"{format_duration(incident.created_at - change.happened_at)} before this incident opened"
        else:
            when = "during this incident"
        incident_service.append_timeline(
            session,
            incident,
            performer=PERFORMER,
            kind=TimelineKind.note,
            action=f"Change {when}, recorded now: {_describe(change)}",
            data={"changes": [change.id]},
        )
    return incidents
