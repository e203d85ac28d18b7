from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query, status

from warroom.deps import BeforeId, Context, Offset, Responder, RetriedRoute, RowId, Viewer
from warroom.fields import MAX_ROW_ID
from warroom.incidents import service
from warroom.incidents.models import IncidentStatus
from warroom.incidents.schemas import (
    TIMELINE_PAGE,
    TIMELINE_PAGE_MAX,
    CommunicationCreate,
    CommunicationRead,
    IncidentChanged,
    IncidentCreate,
    IncidentFilter,
    IncidentPage,
    IncidentRead,
    IncidentUpdate,
    ResponderCreate,
    ResponderLeft,
    ResponderRead,
    TimelineEntryCreate,
    TimelineEntryRead,
    TimelinePage,
    TimelineQuery,
)
from warroom.notify import service as notify_service

router = APIRouter(prefix="/api/v1/incidents", tags=["incidents"], route_class=RetriedRoute)


@router.get("", response_model=IncidentPage)
def list_incidents(
    context: Context,
    _: Viewer,
    status_: Annotated[list[IncidentStatus] | None, Query(alias="status")] = None,
    severity: Annotated[list[str] | None, Query()] = None,
    service_name: Annotated[str | None, Query(alias="service")] = None,
    state: Literal["open", "closed", "all"] = "all",
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Offset = 0,
    before_id: BeforeId = None,
) -> IncidentPage:
    """Incidents, newest first; ``before_id`` is an incident's ``number``."""
    query = IncidentFilter(
        status=status_ or [],
        severity=severity or [],
        service=service_name,
        state=state,
        limit=limit,
        offset=offset,
        before_id=before_id,
    )
    with context.db.read() as session:
        return service.list_incidents(session, org=context.org, query=query)


@router.post("", response_model=IncidentRead, status_code=status.HTTP_201_CREATED)
def create_incident(body: IncidentCreate, context: Context, principal: Responder) -> IncidentRead:
    with context.db.write() as session:
        incident = service.create_incident(session, org=context.org, data=body, performer=principal.name)
        return service.to_read(session, context.org, incident)


@router.get("/{ref}", response_model=IncidentRead)
def get_incident(ref: str, context: Context, _: Viewer) -> IncidentRead:
    with context.db.read() as session:
        return service.to_read(session, context.org, service.get_incident(session, ref))


@router.patch("/{ref}", response_model=IncidentChanged)
def update_incident(
    ref: str, body: IncidentUpdate, context: Context, principal: Responder
) -> IncidentChanged:
    """A repeat (the status it has, a second resolve) changes nothing and is answered with ``unchanged``."""
    with context.db.write() as session:
        incident, unchanged = service.change_incident(
            session, org=context.org, ref=ref, data=body, performer=principal.name
        )
        return service.to_changed(session, context.org, incident, unchanged=unchanged)


@router.post("/{ref}/ack", response_model=IncidentChanged)
def acknowledge(ref: str, context: Context, principal: Responder) -> IncidentChanged:
    """A second acknowledgement changes nothing and is answered with ``unchanged``."""
    with context.db.write() as session:
        return service.acknowledge_answer(session, org=context.org, ref=ref, performer=principal.name)


@router.get("/{ref}/timeline", response_model=TimelinePage)
def timeline(
    ref: str,
    context: Context,
    _: Viewer,
    limit: Annotated[int, Query(ge=1, le=TIMELINE_PAGE_MAX)] = TIMELINE_PAGE,
    offset: Offset = 0,
    before_seq: Annotated[
        int | None,
        Query(
            ge=1,
            le=MAX_ROW_ID,
            description="Only entries before this one (its seq): give the first seq of a page to get the "
            "page before it.",
        ),
    ] = None,
    after_seq: Annotated[
        int | None,
        Query(
            ge=0,
            le=MAX_ROW_ID,
            description="Only entries after this one, oldest first: give the last seq seen to get what "
            "came since (0: from the start).",
        ),
    ] = None,
) -> TimelinePage:
    """The newest ``limit`` entries (oldest first within the page); ``total`` counts those the cursors
    select, so ``total - offset - len(items)`` more are earlier ones (later ones with ``after_seq``)."""
    query = TimelineQuery(limit=limit, offset=offset, before_seq=before_seq, after_seq=after_seq)
    with context.db.read() as session:
        return service.timeline_page(session, ref, query)


@router.post("/{ref}/timeline", response_model=TimelineEntryRead, status_code=status.HTTP_201_CREATED)
def log_action(
    ref: str, body: TimelineEntryCreate, context: Context, principal: Responder
) -> TimelineEntryRead:
    with context.db.write() as session:
        return service.log_action(session, ref=ref, entry=body, performer=principal.name)


@router.get("/{ref}/responders", response_model=list[ResponderRead])
def responders(ref: str, context: Context, _: Viewer) -> list[ResponderRead]:
    with context.db.read() as session:
        return [ResponderRead.model_validate(r) for r in service.get_incident(session, ref).responders]


@router.post("/{ref}/responders", response_model=ResponderRead, status_code=status.HTTP_201_CREATED)
def add_responder(ref: str, body: ResponderCreate, context: Context, principal: Responder) -> ResponderRead:
    with context.db.write() as session:
        responder = service.add_responder(
            session, org=context.org, ref=ref, data=body, performer=principal.name
        )
        return ResponderRead.model_validate(responder)


@router.delete("/{ref}/responders/{responder_id}", response_model=ResponderLeft)
def remove_responder(ref: str, responder_id: RowId, context: Context, principal: Responder) -> ResponderLeft:
    """The responder leaves; one who had left already is answered as they are, with ``unchanged``."""
    with context.db.write() as session:
        responder, left = service.remove_responder(
            session, ref=ref, responder_id=responder_id, performer=principal.name
        )
        read = ResponderLeft.model_validate(responder)
        read.unchanged = not left
        return read


@router.get("/{ref}/updates", response_model=list[CommunicationRead])
def communications(ref: str, context: Context, _: Viewer) -> list[CommunicationRead]:
    """The updates sent, oldest first, each with what became of it on each channel (``outcomes``)."""
    with context.db.read() as session:
        return service.list_communications(session, ref=ref)


@router.post("/{ref}/updates", response_model=CommunicationRead, status_code=status.HTTP_201_CREATED)
def send_update(
    ref: str, body: CommunicationCreate, context: Context, principal: Responder
) -> CommunicationRead:
    with context.db.write() as session:
        communication = service.send_communication(
            session, org=context.org, ref=ref, data=body, performer=principal.name
        )
        read = CommunicationRead.model_validate(communication)
        read.outcomes = notify_service.update_outcomes(session, communication)
        return read
