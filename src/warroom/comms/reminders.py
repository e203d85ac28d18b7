"""The worker's side of the update cadence (``comms.service``): when an update is overdue, remind the
commander by their immediate notification rules, say so on the timeline, and owe the next one a cadence
later. Every reminder re-reads the incident, so a reload that changed the cadence, a resolve or a new
commander since the job was scheduled is what counts."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy.orm import Session

from warroom.comms.service import (
    UPDATE_DUE_KIND,
    cadence,
    last_update_at,
    pending_reminder,
    reminder_payload,
)
from warroom.db import utcnow
from warroom.durations import format_duration
from warroom.errors import InvalidInput, NotFound
from warroom.incidents import service as incident_service
from warroom.incidents.models import Incident, TimelineKind
from warroom.jobs import service as jobs
from warroom.jobs.models import Job
from warroom.jobs.service import job_handler
from warroom.notify import service as notify_service
from warroom.oncall import service as oncall_service

if TYPE_CHECKING:
    from warroom.context import AppContext

UPDATE_DUE_TEMPLATE = "update_due"
PERFORMER = "warroom"


def _rounded(delay: timedelta) -> str:
    """A quiet time as people say it: whole minutes once past one."""
    seconds = int(delay.total_seconds())
    return format_duration(timedelta(seconds=seconds - seconds % 60 if seconds >= 60 else seconds))


def _remind(
    session: Session, context: AppContext, incident: Incident, job: Job, variables: dict[str, Any]
) -> list[str]:
    """Send the reminder to the commander by each of their immediate rules (their first rule when all wait:
    a reminder that waited would be late); what became of each, as the timeline says it."""
    name = incident.commander or ""
    person = next((p for p in context.org.people if p.name == name), None)
    if person is None:
        return [f"{name} is not in the org file, so nobody was reminded (nor will be, until command changes)"]
    rules = oncall_service.effective_rules(context.org, person)
    immediate = [rule for rule in rules if rule.delay <= timedelta(0)] or rules[:1]
    said: list[str] = []
    for rule in immediate:
        where = f"{rule.channel} to {notify_service.shown_address(rule.to)}"
        try:
            notify_service.send(
                session,
                channel=rule.channel,
                to=rule.to,
                template=UPDATE_DUE_TEMPLATE,
                context=variables,
                incident_id=incident.id,
                idempotency_key=f"update-due:{incident.id}:{job.id}:{rule.index}",
            )
        except InvalidInput as exc:
            said.append(f"{where} FAILED ({exc.message})")
            continue
        said.append(where)
    return [f"reminded {name} via " + "; ".join(said)] if said else [f"{name} has no way to be reminded"]


@job_handler(UPDATE_DUE_KIND)
def remind_update(context: AppContext, session: Session, job: Job) -> dict[str, Any]:
    try:
        incident = incident_service.get_incident(session, int(job.payload["incident_id"]), for_update=True)
    except NotFound:
        return {"skipped": "incident gone"}
    every = cadence(context.org, incident.severity)
    if not incident.status.is_open or every is None or incident.commander is None:
        return {"skipped": "no cadence now"}
    if pending_reminder(session, incident.id) is not None:
        # The cadence started again while this ran (an update, a new commander): that reminder is the one.
        return {"skipped": "the cadence started again"}
    since = datetime.fromisoformat(str(job.payload["since"]))
    last = last_update_at(session, incident.id)
    if last is not None and last > since:
        since = last  # an update the job was not moved for (it is, normally): it starts the cadence again
    now = utcnow()
    reminders = int(job.payload.get("reminders", 0))
    if now < since + every:
        jobs.enqueue(
            session,
            kind=UPDATE_DUE_KIND,
            payload=reminder_payload(incident.id, since=since, every=every, due=since + every, reminders=0),
            run_at=since + every,
            incident_id=incident.id,
        )
        return {"skipped": "an update was posted since", "due": (since + every).isoformat()}
    # How long the war room has gone without hearing: since the last update, or since the incident was
    # declared when none was ever sent (a restart of the cadence, a hand-over say, is not an update).
    quiet = _rounded(now - (last or incident.created_at))
    heard = f"no update for {quiet}" if last is not None else f"no update since it was declared {quiet} ago"
    variables: dict[str, Any] = {
        "quiet_for": quiet,
        "update_every": format_duration(every),
        "last_update_at": last.isoformat() if last is not None else None,
        "commander": incident.commander,
    }
    person = next((p for p in context.org.people if p.name == incident.commander), None)
    outcome = _remind(session, context, incident, job, variables)
    incident_service.append_timeline(
        session,
        incident,
        performer=PERFORMER,
        kind=TimelineKind.automation,
        action=f"Update overdue: {heard} ({incident.severity} asks for one every {format_duration(every)}); "
        + "; ".join(outcome),
        data={"update_due": True, "quiet_for": quiet, "commander": incident.commander},
    )
    if person is None:
        # Nobody to remind: said once, not every cadence for the life of the incident. A new commander (or a
        # reload, a restart) starts it again.
        return {"reminded": None, "quiet_for": quiet}
    due = datetime.fromisoformat(str(job.payload.get("due") or (since + every).isoformat()))
    jobs.enqueue(
        session,
        kind=UPDATE_DUE_KIND,
        payload=reminder_payload(incident.id, since=since, every=every, due=due, reminders=reminders + 1),
        run_at=now + every,
        incident_id=incident.id,
    )
    return {"reminded": incident.commander, "quiet_for": quiet}
