"""Incident events the alerts domain acts on. Each only writes rows in the event's transaction."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy.orm import Session

from warroom.alerts import changes, follow
from warroom.alerts import service as alert_service
from warroom.context import context_of
from warroom.events import DomainEvent, subscribe
from warroom.incidents import service as incident_service

if TYPE_CHECKING:
    from warroom.incidents.models import Incident
    from warroom.orgconfig import OrgConfig


@subscribe("incident.created")
def note_recent_changes(session: Session, event: DomainEvent) -> None:
    """The deploys and config pushes just before an incident, on its timeline from the start."""
    found = _org_and_incident(session, event)
    if found is not None:
        changes.note_recent_changes(session, *found)


@subscribe("incident.acknowledged")
def acknowledge_alerts(session: Session, event: DomainEvent) -> None:
    """Someone owns the incident now: its alerts still firing are theirs too (``alerts list --status firing``
    lists the alerts nobody owns). When the incident was acknowledged because its last firing alert was, none
    fires, and nothing more is written."""
    if event.incident_id is None:
        return
    follow.acknowledge_firing_alerts(session, event.incident_id, performer=event.performer)


@subscribe("incident.resolved", "incident.postmortem", "incident.closed")
def resolve_alerts(session: Session, event: DomainEvent) -> None:
    """The incident is over: its open alerts resolve with it, by whoever resolved it, so the next firing of
    the same problem opens a new alert and is routed (and pages) instead of updating an alert of an incident
    nobody is on. A merged incident has none left: its alerts moved to the incident it was merged into."""
    found = _org_and_incident(session, event)
    if found is not None:
        org, incident = found
        alert_service.resolve_with_incident(session, org=org, incident=incident, performer=event.performer)


def _org_and_incident(session: Session, event: DomainEvent) -> tuple[OrgConfig, Incident] | None:
    """The org file and the event's incident (locked), or None: an event of no incident, or a session opened
    outside an app context (scripts, some tests), which has no org file."""
    if event.incident_id is None:
        return None
    try:
        org = context_of(session).org
    except RuntimeError:
        return None
    return org, incident_service.get_incident(session, event.incident_id, for_update=True)
