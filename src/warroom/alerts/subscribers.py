"""Incident events the alerts domain acts on. Each only writes rows in the event's transaction."""

from __future__ import annotations

from sqlalchemy.orm import Session

from warroom.alerts import changes, follow
from warroom.alerts import service as alert_service
from warroom.context import context_of
from warroom.events import DomainEvent, subscribe
from warroom.incidents import service as incident_service


@subscribe("incident.created")
def note_recent_changes(session: Session, event: DomainEvent) -> None:
    """The deploys and config pushes just before an incident, on its timeline from the start."""
    if event.incident_id is None:
        return
    try:
        org = context_of(session).org
    except RuntimeError:  # a session opened outside an app context (scripts, some tests)
        return
    incident = incident_service.get_incident(session, event.incident_id, for_update=True)
    changes.note_recent_changes(session, org, incident)


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
    if event.incident_id is None:
        return
    try:
        org = context_of(session).org
    except RuntimeError:  # a session opened outside an app context (scripts, some tests)
        return
    incident = incident_service.get_incident(session, event.incident_id, for_update=True)
    alert_service.resolve_with_incident(session, org=org, incident=incident, performer=event.performer)
