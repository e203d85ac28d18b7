"""An incident's acknowledgement reaches its alerts: someone owns the incident, so nobody has to pick its
alerts up one by one (PagerDuty's way). The reverse (its last firing alert acknowledged, so the incident
is) is ``automation.on_acknowledged``; the resolve that follows an incident is
``service.resolve_with_incident``."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from warroom.alerts.handlers import schedule_handlers
from warroom.alerts.models import Alert, AlertStatus
from warroom.db import utcnow
from warroom.incidents import service as incident_service
from warroom.incidents.models import Incident, TimelineKind


def _refs(alerts: list[Alert], limit: int = 10) -> str:
    shown = ", ".join(alert.ref for alert in alerts[:limit])
    return shown + (f" and {len(alerts) - limit} more" if len(alerts) > limit else "")


def acknowledge_with_incident(
    session: Session, incident: Incident, alerts: list[Alert], *, performer: str, joined: bool = False
) -> list[Alert]:
    """Acknowledge ``alerts`` of ``incident`` (locked, acknowledged and open) that are still firing, by
    whoever acknowledged the incident, at that moment; one timeline entry names them, by ``performer``. Their
    ``acknowledged`` handlers run as for any acknowledgement. ``joined``: they have just joined the incident
    (an incident someone is on pages nobody for them), and are acknowledged now. The alerts acknowledged."""
    if incident.acknowledged_at is None or not incident.status.is_open:
        return []
    firing = [alert for alert in alerts if alert.status == AlertStatus.firing]
    if not firing:
        return []
    owner = incident.acknowledged_by or performer
    # One that joins later is acknowledged when it joins: never before it was first seen.
    at = utcnow() if joined else incident.acknowledged_at
    for alert in firing:
        alert.status = AlertStatus.acknowledged
        alert.acknowledged_at = at
        alert.acknowledged_by = owner
    session.flush()
    noun = "Alert" if len(firing) == 1 else "Alerts"
    if joined:
        action = (
            f"{noun} {_refs(firing)} acknowledged on joining {incident.ref}, which {owner} acknowledged: "
            "they are on it"
        )
    else:
        action = f"{noun} {_refs(firing)} acknowledged with {incident.ref} by {owner}"
    incident_service.append_timeline(
        session,
        incident,
        performer=performer,
        kind=TimelineKind.alert,
        action=action,
        data={"alerts": [alert.id for alert in firing], "acknowledged_by": owner, "with_incident": True},
    )
    for alert in firing:
        schedule_handlers(session, alert, "acknowledged")
    return firing


def acknowledge_firing_alerts(session: Session, incident_id: int, *, performer: str) -> list[Alert]:
    """An incident was acknowledged: its alerts still firing are acknowledged with it, by that person. Alerts
    already acknowledged (at their source, by a person, snoozed) keep who acknowledged them; none firing (the
    incident was acknowledged because its last firing alert was) writes nothing."""
    incident = incident_service.get_incident(session, incident_id, for_update=True)
    alerts = list(
        session.scalars(
            select(Alert)
            .where(Alert.incident_id == incident.id, Alert.status == AlertStatus.firing)
            .order_by(Alert.id)
            .with_for_update()
            # Intake writes statuses through the table: never a stale identity map.
            .execution_options(populate_existing=True)
        )
    )
    return acknowledge_with_incident(session, incident, alerts, performer=performer)


def acknowledged_with_incident(session: Session, alert: Alert) -> bool:
    """Whether the alert's acknowledgement is its incident's (acknowledged with it, on joining it): the same
    person at the same moment, so there is no acknowledgement of its own to carry to the incident."""
    if alert.incident_id is None or alert.acknowledged_at is None:
        return False
    incident = incident_service.get_incident(session, alert.incident_id, for_update=True)
    return (incident.acknowledged_at, incident.acknowledged_by) == (
        alert.acknowledged_at,
        alert.acknowledged_by,
    )
