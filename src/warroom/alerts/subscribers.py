"""Incident events the alerts domain acts on. Each only writes rows in the event's transaction."""

from __future__ import annotations

from sqlalchemy.orm import Session

from warroom.alerts import changes
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
