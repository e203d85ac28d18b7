"""Deliver incident updates to the audience's channels that are notification channels."""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy.orm import Session

from warroom.errors import WarroomError
from warroom.events import DomainEvent, subscribe
from warroom.incidents import service as incidents
from warroom.incidents.models import Communication
from warroom.notify import service
from warroom.notify.config import find_channel, split_channel_reference

log = logging.getLogger("warroom.notify")


@subscribe("incident.communication")
def deliver_communication(session: Session, event: DomainEvent) -> None:
    app = session.info.get("context")
    if app is None:
        log.warning("incident.communication outside an app context: not delivered")
        return
    communication = session.get(Communication, event.data["communication_id"])
    if communication is None:
        return
    for entry in communication.channels:
        name, recipient = split_channel_reference(entry)
        # Only channels the org file configures; others (status-page, in-app) belong to other parts.
        channel = find_channel(app.org, name, implicit=False)
        if channel is None:
            continue
        audience = app.org.audience(communication.audience)
        context = _context(session, communication, external=audience is not None and audience.reaches_outside)
        key = service.communication_key(communication.id, entry)
        try:
            service.send(
                session,
                channel=name,
                to=recipient or "",
                template="incident_update",
                context=context,
                incident_id=communication.incident_id,
                idempotency_key=key,
            )
        except WarroomError as exc:
            # A channel that cannot take this message must not undo the update itself: it is a dead letter
            # (listed and retried as the others are), and the timeline and the sender are told.
            unsent = service.record_not_sent(
                session,
                channel=channel,
                to=recipient or "",
                template="incident_update",
                context=context,
                incident_id=communication.incident_id,
                idempotency_key=key,
                error=exc.message,
            )
            incident = incidents.get_incident(session, communication.incident_id, for_update=True)
            incidents.append_timeline(
                session,
                incident,
                performer=service.PERFORMER,
                kind=service.TIMELINE_KIND,
                action=f"Update to {communication.audience} not sent via {name}: {exc.message}",
                data={
                    "channel": name,
                    "communication_id": communication.id,
                    "delivery_id": unsent.id,
                    "status": "not_sent",
                },
            )


def _context(session: Session, communication: Communication, *, external: bool) -> dict[str, Any]:
    """What the update's template sees, and what its delivery keeps (``data``, in a webhook's body)."""
    if external:
        # People outside the org (customers, the status page) get the message without the incident's
        # internal details: its ref, severity, title (often a host name), commander and sender. The
        # delivery's data, sent in a webhook's body, holds what they are told and nothing more.
        incident = incidents.get_incident(session, communication.incident_id)
        return {
            "message": communication.message,
            "status": incident.status.value,
            "services": incident.service_names,
            "external": True,
        }
    return {
        "message": communication.message,
        "audience": communication.audience,
        "sender": communication.sender,
        "external": False,
    }
