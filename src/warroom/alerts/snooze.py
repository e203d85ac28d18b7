"""The end of an alert's snooze (``alerts.service.snooze``): acknowledged until a moment, then firing again
if it is still open.

A responder who knows an alert can wait ("the disk fills slowly; look again after the deploy") snoozes it
rather than acknowledging it forever. When the snooze ends and the alert still fires, it is firing again, its
incident's timeline says so, and the escalation policies that paged its incident (its severity's or service's,
or a rule's ``page``) page their first step again as a reminder (a durable job, so a restart in between loses
nothing). Each alert's end asks for one; ``paging.start_paging`` sends one per policy within its first step's
delay, so alerts snoozed together remind once. A resolve, an unacknowledge or a new snooze in the
meantime leaves that job nothing to do.

An alert on no incident (unrouted, say) that got more severe while snoozed was left alone then (a note on it
says so): when the snooze ends and it still fires, more severe than when it was snoozed, the rules see it as
they would have seen the rise (``alerts.service.route_worse_after_snooze``), and it may open or join an
incident and page. The same when someone ends the snooze early (``alerts.service.unacknowledge``); a new
snooze keeps the severity the alert had when first snoozed, so moving the end does not hide a rise.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy.orm import Session

from warroom.alerts import automation
from warroom.alerts import service as alerts_service
from warroom.alerts.models import Alert, AlertStatus
from warroom.alerts.service import SNOOZE_KIND
from warroom.db import utcnow
from warroom.incidents.models import TimelineKind
from warroom.jobs.models import Job
from warroom.jobs.service import job_handler
from warroom.oncall import paging

if TYPE_CHECKING:
    from warroom.context import AppContext


@job_handler(SNOOZE_KIND)
def end_snooze(context: AppContext, session: Session, job: Job) -> dict[str, Any]:
    alert = session.get(Alert, job.payload["alert_id"], with_for_update=True)
    if alert is None:
        return {"woke": False, "reason": "the alert is gone"}
    if alert.status == AlertStatus.resolved:
        return {"woke": False, "reason": "it resolved while snoozed"}
    if alert.snoozed_until != datetime.fromisoformat(job.payload["until"]):
        return {"woke": False, "reason": "its snooze was taken back or moved"}
    snoozed_by = alert.snoozed_by
    alerts_service.clear_snooze(alert)
    alert.status = AlertStatus.firing
    alert.acknowledged_at = None
    alert.acknowledged_by = None
    session.flush()
    if alert.incident_id is None and isinstance(was := job.payload.get("severity"), str):
        # Worse than when snoozed: routed now, as the rise would have been had nobody had it snoozed.
        alerts_service.route_worse_after_snooze(session, context.org, alert, was=was, snoozed_by=snoozed_by)
        if alert.incident_id is not None:
            return {
                "woke": True,
                "incident": f"INC-{alert.incident_id}",
                "routed": f"{was} to {alert.severity}",
            }
    if alert.incident_id is None or alerts_service.held(session, alert):
        return {"woke": True, "incident": None}
    automation.on_incident_timeline(
        session,
        alert,
        performer=automation.PERFORMER,
        kind=TimelineKind.alert,
        action=f"Snooze of alert {alert.ref} (by {snoozed_by}) is over and it still fires: "
        f"{alert.summary_line}",
        data={"alert": alert.id, "snoozed_by": snoozed_by, "snooze_ended": True},
    )
    paging.request_reminder(session, incident_id=alert.incident_id, trigger="snooze_ended", at=utcnow())
    return {"woke": True, "incident": f"INC-{alert.incident_id}"}
