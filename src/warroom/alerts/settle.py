"""Resolving an incident whose alerts stayed resolved (``automation.resolve_after``).

With ``resolve_to_monitoring``, automation moves an incident to monitoring when all its alerts resolve, and a
person resolves it. A team that trusts its alerts' resolves (a disk that filled and was cleaned up by a cron
job at night) can let automation finish the job: when the incident has stayed in monitoring for
``resolve_after`` and none of its alerts has fired again, it is resolved, with the reason on its timeline. One
durable job per stay in monitoring, so a restart in between loses nothing; an alert firing again (back to
investigating), a person moving it, or a new stay in monitoring leaves the job nothing to do.

Also moving a flapping incident to monitoring once it calms down (``automation.flap_window`` after its last
return to investigating and its alerts' last firing), when its alerts resolved while it flapped.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from warroom.alerts import automation
from warroom.alerts.models import Alert, AlertStatus
from warroom.incidents import service as incident_service
from warroom.incidents.models import IncidentStatus
from warroom.jobs.models import Job
from warroom.jobs.service import job_handler

if TYPE_CHECKING:
    from warroom.context import AppContext


@job_handler(automation.QUIET_KIND)
def resolve_when_quiet(context: AppContext, session: Session, job: Job) -> dict[str, Any]:
    incident = incident_service.get_incident(session, job.payload["incident_id"], for_update=True)
    if incident.status != IncidentStatus.monitoring:
        return {"resolved": False, "reason": f"it is {incident.status.value}"}
    if incident.monitoring_at != datetime.fromisoformat(job.payload["monitoring_at"]):
        return {"resolved": False, "reason": "it left monitoring and came back since"}
    firing = session.scalar(
        select(Alert.id)
        .where(Alert.incident_id == incident.id, Alert.status != AlertStatus.resolved)
        .limit(1)
    )
    if firing is not None:
        return {"resolved": False, "reason": f"ALR-{firing} is open"}
    quiet = job.payload["quiet"]
    incident_service.resolve(
        session,
        org=context.org,
        ref=incident.id,
        performer=automation.PERFORMER,
        note=f"its alerts stayed resolved for {quiet} in monitoring (resolve_after)",
    )
    return {"resolved": True}


@job_handler(automation.CALM_KIND)
def settle_after_flapping(context: AppContext, session: Session, job: Job) -> dict[str, Any]:
    """A flapping incident whose alerts resolved: flap_window after they last fired, it may go to monitoring
    (a later firing and resolve scheduled a later run of its own)."""
    incident = incident_service.get_incident(session, job.payload["incident_id"], for_update=True)
    alert = session.get(Alert, job.payload["alert_id"])
    if alert is None or alert.incident_id != incident.id:
        return {"settled": "its alert is no longer on it"}
    return {"settled": automation.settle(session, context.org, incident, alert, calmed=True)}
