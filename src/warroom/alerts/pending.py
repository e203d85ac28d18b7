"""Alerts waiting out their rule's ``delay`` (``IncidentAction.delay``), or for business hours
(``wait_for_business_hours``), before an incident opens.

A source without a pending period of its own (mail, scripts, PagerDuty-shaped tools) reports blips that clear
within a minute. With a delay, the alert is stored and routed at once, but its incident opens only when the
delay is over, and only if the alert is still open then: a blip pages nobody. One durable job per alert does
it, so a restart in between loses nothing. When the incident opens, the other alerts of its group that are
waiting too join it at once. If no rule matches the alert any more when its delay is over (its rule went from
the org file with a reload), it is unrouted like any alert no rule took, with a note that says why.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from warroom.alerts import automation
from warroom.alerts.models import Alert, AlertNote, AlertStatus
from warroom.db import utcnow
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
    if alert.incident_id is None and alert.rules is None:
        # Its rule went from the org file (a reload), or no longer matches it: no rule routes it now, so it
        # is unrouted (``alerts list --unrouted``, the overview, the metric, the digest: ``rules`` NULL), and
        # its note says why.
        why = _why_unmatched(context, alert, job.payload.get("rule"))
        reason = f"{why}, and no other rule routes it: unrouted"
        alert.notes.append(
            AlertNote(author=automation.PERFORMER, body=f"Not routed after its delay: {reason}")
        )
        return {"opened": False, "reason": reason}
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


def _why_unmatched(context: AppContext, alert: Alert, rule_name: str | None) -> str:
    """Why the rule the alert waited for no longer routes it, in words."""
    org = context.org
    rule = next((rule for rule in org.automation.rules if rule.name == rule_name), None)
    if rule is None:
        return f"its rule {rule_name} is no longer in the org file (reloaded while it waited)"
    mismatch = automation.rule_mismatch(org, rule, utcnow(), alert.service)
    return f"its rule {rule_name} no longer matches it" + (f" ({mismatch})" if mismatch else "")
