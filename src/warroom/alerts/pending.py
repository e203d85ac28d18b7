"""Alerts waiting out their rule's ``delay`` (``IncidentAction.delay``), or for business hours
(``wait_for_business_hours``), before an incident opens.

A source without a pending period of its own (mail, scripts, PagerDuty-shaped tools) reports blips that clear
within a minute. With a delay, the alert is stored and routed at once, but its incident opens only when the
delay is over, and only if the alert is still open then: a blip pages nobody. One durable job per alert does
it, so a restart in between loses nothing. When the incident opens, the other alerts of its group that are
waiting too join it at once.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from warroom.alerts import automation
from warroom.alerts.models import Alert, AlertStatus
from warroom.incidents import service as incident_service
from warroom.incidents.models import TimelineKind
from warroom.jobs.models import Job
from warroom.jobs.service import job_handler

if TYPE_CHECKING:
    from warroom.context import AppContext


@job_handler(automation.DELAY_KIND)
def open_after_delay(context: AppContext, session: Session, job: Job) -> dict[str, Any]:
    alert = session.get(Alert, job.payload["alert_id"], with_for_update=True)
    if alert is None:
        return {"opened": False, "reason": "the alert is gone"}
    if alert.incident_id is not None:
        return {"opened": False, "reason": f"it joined INC-{alert.incident_id} meanwhile"}
    if alert.status == AlertStatus.resolved:
        return {"opened": False, "reason": f"it resolved while it waited ({job.payload.get('delay')})"}
    automation.on_created(session, context.org, alert, stored_earlier=True, waited=True)
    session.flush()
    if alert.incident_id is None:
        return {"opened": False, "reason": "no rule opens an incident for it now"}
    # Why the incident is younger than its alert: responders read the wait off the timeline.
    automation.on_incident_timeline(
        session,
        alert,
        performer=automation.PERFORMER,
        kind=TimelineKind.alert,
        action=f"{alert.ref} fired at {alert.first_seen_at:%Y-%m-%d %H:%M} UTC; its rule waited "
        f"({job.payload.get('delay') or 'its delay'}) and it was still open",
        data={"alert": alert.id, "waited_for": job.payload.get("delay")},
    )
    if not automation.groups_alerts(context.org, alert):
        # A group window of 0s: the others of its group wait out their own delay and open their own.
        return {"opened": True, "incident": f"INC-{alert.incident_id}", "joined": []}
    waiting = session.scalars(
        select(Alert)
        .where(
            Alert.group_key == alert.group_key,
            Alert.incident_id.is_(None),
            Alert.status != AlertStatus.resolved,
            Alert.maintenance_window_id.is_(None),
            Alert.id != alert.id,
        )
        .order_by(Alert.id)
        # One locked by its own job (waiting for the group's lock this job holds) is left to that job,
        # which then joins this incident: taking it here would deadlock the two.
        .with_for_update(skip_locked=True)
    ).all()
    incident = incident_service.get_incident(session, alert.incident_id, for_update=True)
    for other in waiting:
        automation.attach(
            session, incident, other, performer=automation.PERFORMER, note=" (its group's delay was over)"
        )
    for each in [alert, *waiting]:
        automation.carry_acknowledgement(session, context.org, each)
    joined = [other.ref for other in waiting]
    return {"opened": True, "incident": f"INC-{alert.incident_id}", "joined": joined}
