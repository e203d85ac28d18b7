from __future__ import annotations

import html
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query, status
from fastapi.responses import HTMLResponse

from warroom.auth.models import Role
from warroom.deps import Context, Responder, RowId, Viewer
from warroom.errors import WarroomError
from warroom.oncall import paging, service
from warroom.oncall.schemas import (
    EscalationPolicyRead,
    IncidentPaging,
    OnCallRead,
    OverrideCreate,
    OverrideRead,
    PageRequest,
    PageRequested,
    PersonRead,
    ScheduleRead,
    ShiftRead,
    TeamRead,
)

router = APIRouter(prefix="/api/v1", tags=["oncall"])


@router.get("/oncall", response_model=list[OnCallRead])
def who_is_on_call(
    context: Context,
    _: Viewer,
    at: Annotated[datetime | None, Query(description="An instant with a UTC offset; default now.")] = None,
    schedule: Annotated[str | None, Query(description="Only this schedule.")] = None,
) -> list[OnCallRead]:
    with context.db.read() as session:
        return service.who_is_on_call(session, org=context.org, at=at, schedule=schedule)


@router.get("/oncall/{schedule}/shifts", response_model=list[ShiftRead])
def shifts(
    schedule: str,
    context: Context,
    _: Viewer,
    count: Annotated[int, Query(ge=1, le=service.MAX_SHIFTS)] = 10,
    after: Annotated[
        datetime | None, Query(description="Start from the shift covering this instant.")
    ] = None,
) -> list[ShiftRead]:
    with context.db.read() as session:
        return service.upcoming_shifts(session, org=context.org, schedule=schedule, count=count, after=after)


@router.get("/oncall/{schedule}/overrides", response_model=list[OverrideRead])
def list_overrides(
    schedule: str, context: Context, _: Viewer, include_past: bool = False
) -> list[OverrideRead]:
    with context.db.read() as session:
        return service.list_overrides(session, org=context.org, schedule=schedule, include_past=include_past)


@router.post("/oncall/{schedule}/overrides", response_model=OverrideRead, status_code=status.HTTP_201_CREATED)
def create_override(
    schedule: str, body: OverrideCreate, context: Context, principal: Responder
) -> OverrideRead:
    with context.db.write() as session:
        row = service.create_override(
            session, org=context.org, schedule=schedule, data=body, performer=principal.name
        )
        return OverrideRead.model_validate(row)


@router.delete("/oncall/{schedule}/overrides/{override_id}", response_model=OverrideRead)
def delete_override(schedule: str, override_id: RowId, context: Context, _: Responder) -> OverrideRead:
    with context.db.write() as session:
        return service.delete_override(session, org=context.org, schedule=schedule, override_id=override_id)


@router.get("/people", response_model=list[PersonRead])
def people(context: Context, principal: Viewer) -> list[PersonRead]:
    """The org's people; a viewer does not see phones or the addresses people are paged at, a responder sees
    a URL among them by its host only (admins whole), as in the notifications API."""
    return service.list_people(
        context.org,
        addresses=principal.role.allows(Role.responder),
        whole_urls=principal.role.allows(Role.admin),
    )


@router.get("/teams", response_model=list[TeamRead])
def teams(context: Context, _: Viewer) -> list[TeamRead]:
    return service.list_teams(context.org)


@router.get("/schedules", response_model=list[ScheduleRead])
def schedules(context: Context, _: Viewer) -> list[ScheduleRead]:
    return service.list_schedules(context.org)


@router.get("/escalation-policies", response_model=list[EscalationPolicyRead])
def escalation_policies(context: Context, _: Viewer) -> list[EscalationPolicyRead]:
    return service.list_policies(context.org)


@router.get("/incidents/{ref}/pages", response_model=IncidentPaging)
def incident_pages(ref: str, context: Context, principal: Responder) -> IncidentPaging:
    # Responder, like notifications: it lists people's addresses (URLs shortened but for admins).
    with context.db.read() as session:
        return paging.incident_paging(session, ref=ref, whole_addresses=principal.role.allows(Role.admin))


@router.post("/incidents/{ref}/pages", response_model=PageRequested, status_code=status.HTTP_202_ACCEPTED)
def request_page(ref: str, body: PageRequest, context: Context, principal: Responder) -> PageRequested:
    """Page an escalation policy for the incident now (the worker sends it within seconds). 409 while that
    policy is still paging an unacknowledged incident, or when the incident is resolved."""
    with context.db.write() as session:
        return paging.request_page_by_person(
            session, context.org, ref=ref, request=body, performer=principal.name
        )


_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<meta name="robots" content="noindex">
<title>{title}</title>
<style>body{{font-family:system-ui,sans-serif;max-width:36rem;margin:3rem auto;padding:0 1rem}}
button{{font-size:1.1rem;padding:.6rem 1.2rem}}</style>
</head><body><h1>{title}</h1><p>{message}</p>{form}</body></html>
"""

# Opening the link only shows what it would do; the button POSTs. Mail scanners and link previews fetch
# links in messages with GET, and must not acknowledge a page nobody has read.
_FORM = '<form method="post"><button type="submit">{label}</button></form>'


def _html(title: str, message: str, status_code: int, *, button: str | None = None) -> HTMLResponse:
    form = _FORM.format(label=html.escape(button)) if button else ""
    body = _PAGE.format(title=html.escape(title), message=html.escape(message), form=form)
    return HTMLResponse(body, status_code=status_code)


def _at(moment: datetime) -> str:
    return f"at {moment:%Y-%m-%d %H:%M} UTC"


def _acknowledged(by: str | None, at: datetime | None) -> str | None:
    """ "acknowledged by alice at 2026-03-02 09:14 UTC", or None when it is not."""
    if at is None:
        return None
    return f"acknowledged{f' by {by}' if by else ''} {_at(at)}"


def _merged(paged_for: str | None, ref: str) -> str:
    """What a link to an incident merged since says of it: " for INC-3, since merged into INC-1"."""
    return f" for {paged_for}, since merged into {ref}" if paged_for else ""


def _paged(paged_for: str | None, ref: str) -> str:
    return f"; your page was{_merged(paged_for, ref)}" if paged_for else ""


@router.get("/ack/{token}", response_class=HTMLResponse, tags=["oncall"])
def acknowledge_link_page(token: str, context: Context) -> HTMLResponse:
    """The page behind the signed link in a page: says which incident, with a button that acknowledges."""
    try:
        with context.db.read() as session:
            target = paging.incident_of_link(session, key=context.settings.resolved_secret_key(), token=token)
            incident, person = target.incident, target.claim.person
            ref, title = incident.ref, target.shown_title
            acknowledged = _acknowledged(incident.acknowledged_by, incident.acknowledged_at)
            paged_for = target.paged_for.ref if target.paged_for is not None else None
            if not incident.status.is_open:
                # Acknowledging it would be refused (409): say why now, and offer no button.
                by = paging.resolved_by(session, incident)
                when = _at(incident.resolved_at or incident.closed_at or incident.updated_at)
                return _html(
                    f"{ref} is {incident.status.value}",
                    f"{title} — resolved{f' by {by}' if by else ''} {when}; there is nothing to "
                    f"acknowledge.{f' It was {acknowledged}.' if acknowledged else ''}",
                    200,
                )
    except WarroomError as exc:
        return _html("Not acknowledged", exc.message, exc.status)
    if acknowledged:
        return _html(
            f"{ref} was already acknowledged", f"{title} — {acknowledged}{_paged(paged_for, ref)}.", 200
        )
    # A page for an incident merged since: its alerts and pages are on the one it went into.
    paged = f"you were paged as {person}{_merged(paged_for, ref)}"
    return _html(
        f"Acknowledge {ref}?",
        f"{title} — {paged}. Acknowledging stops the escalation.",
        200,
        button=f"Acknowledge {ref} as {person}",
    )


@router.post("/ack/{token}", response_class=HTMLResponse, tags=["oncall"])
def acknowledge_from_link(token: str, context: Context) -> HTMLResponse:
    """Acknowledge as the paged person (no API token needed: the signed link is one)."""
    try:
        with context.db.write() as session:
            target, already = paging.acknowledge_from_link(
                session, key=context.settings.resolved_secret_key(), token=token
            )
            incident = target.incident
            ref, title, by = incident.ref, target.shown_title, incident.acknowledged_by or ""
            acknowledged = _acknowledged(incident.acknowledged_by, incident.acknowledged_at)
            paged_for = target.paged_for.ref if target.paged_for is not None else None
    except WarroomError as exc:
        return _html("Not acknowledged", exc.message, exc.status)
    if already:
        return _html(
            f"{ref} was already acknowledged", f"{title} — {acknowledged}{_paged(paged_for, ref)}.", 200
        )
    return _html(f"{ref} acknowledged", f"{title} — acknowledged by {by}. Escalation has stopped.", 200)
