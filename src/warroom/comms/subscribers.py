"""Incident events that start, restart or stop the update cadence (``comms.service``)."""

from __future__ import annotations

from sqlalchemy.orm import Session

from warroom.comms import service
from warroom.context import context_of
from warroom.db import utcnow
from warroom.events import DomainEvent, subscribe
from warroom.incidents.models import Incident


@subscribe(
    "incident.commander_changed", "incident.communication", "incident.severity_changed", "incident.reopened"
)
def restart_cadence(session: Session, event: DomainEvent) -> None:
    """A new commander, an update posted, a new severity or a reopen: the next update is owed a whole
    cadence from now."""
    if event.incident_id is None:
        return
    try:
        org = context_of(session).org
    except RuntimeError:  # a session opened outside an app context has no org file to read the cadence from
        return
    incident = session.get(Incident, event.incident_id)
    if incident is not None:
        service.start_cadence(session, org, incident, since=utcnow())


@subscribe("incident.resolved", "incident.closed", "incident.postmortem")
def stop_cadence(session: Session, event: DomainEvent) -> None:
    if event.incident_id is not None:
        service.stop_cadence(session, event.incident_id)
