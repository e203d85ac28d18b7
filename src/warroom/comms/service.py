"""The war-room update cadence: a severity's ``update_every`` asks the incident's commander for an update
(``incident send-update``, to any audience) at least that often while the incident is open.

The next reminder is one durable job per incident (kind ``comms.update_due``), moved whenever the cadence
starts again: a commander takes command, an update is posted, the severity changes, the incident is reopened.
It is cancelled when the incident resolves or closes. Without a commander there is nobody whose duty the
updates are, so there is no cadence (paging is what finds someone to take the incident). A reload (and every
start) brings pending reminders in line with the file's cadences (``follow_cadences``).

The job's payload: ``since`` (when the cadence started), ``every`` (seconds, the cadence it was scheduled
for), ``due`` (when the update was due: ``since + every``; in the past once the commander was reminded) and
``reminders`` (how many were sent since).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from warroom.db import utcnow
from warroom.incidents.models import OPEN_STATUSES, Communication, Incident
from warroom.jobs import service as jobs
from warroom.jobs.models import Job, JobStatus
from warroom.orgconfig import OrgConfig

UPDATE_DUE_KIND = "comms.update_due"


def cadence(org: OrgConfig, severity: str) -> timedelta | None:
    """How often an incident of ``severity`` owes an update; None when the level asks for none."""
    level = org.severity(severity)
    return level.update_every if level is not None else None


def last_update_at(session: Session, incident_id: int) -> datetime | None:
    return session.scalar(
        select(Communication.sent_at)
        .where(Communication.incident_id == incident_id)
        .order_by(Communication.sent_at.desc())
        .limit(1)
    )


def stop_cadence(session: Session, incident_id: int) -> int:
    return jobs.cancel(session, kind=UPDATE_DUE_KIND, incident_id=incident_id)


def reminder_payload(
    incident_id: int, *, since: datetime, every: timedelta, due: datetime, reminders: int
) -> dict[str, Any]:
    return {
        "incident_id": incident_id,
        "since": since.isoformat(),
        "every": every.total_seconds(),
        "due": due.isoformat(),
        "reminders": reminders,
    }


def start_cadence(session: Session, org: OrgConfig, incident: Incident, *, since: datetime) -> Job | None:
    """Owe the next update ``update_every`` after ``since``, replacing any reminder pending. None (and no
    reminder) when the incident is not open, has no commander, or its severity sets no cadence."""
    stop_cadence(session, incident.id)
    every = cadence(org, incident.severity)
    if every is None or incident.commander is None or not incident.status.is_open:
        return None
    return jobs.enqueue(
        session,
        kind=UPDATE_DUE_KIND,
        payload=reminder_payload(incident.id, since=since, every=every, due=since + every, reminders=0),
        run_at=since + every,
        incident_id=incident.id,
    )


def pending_reminder(session: Session, incident_id: int) -> Job | None:
    return session.scalar(
        select(Job)
        .where(Job.kind == UPDATE_DUE_KIND, Job.incident_id == incident_id, Job.status == JobStatus.pending)
        .order_by(Job.run_at)
        .limit(1)
    )


def next_update_due(session: Session, incident_id: int) -> datetime | None:
    """When the next update is due, if a cadence runs: in the past when it is overdue (the commander was
    reminded and will be again)."""
    row = session.execute(
        select(Job.run_at, Job.payload)
        .where(Job.kind == UPDATE_DUE_KIND, Job.incident_id == incident_id, Job.status == JobStatus.pending)
        .order_by(Job.run_at)
        .limit(1)
    ).first()
    if row is None:
        return None
    run_at, payload = row
    due = payload.get("due") if isinstance(payload, dict) else None
    return datetime.fromisoformat(due) if isinstance(due, str) else run_at


def follow_cadences(session: Session, org: OrgConfig) -> int:
    """After a reload (and at every start): each open incident with a commander runs the cadence its severity
    sets now. A pending reminder moves by the change of ``update_every``; a level that lost its cadence
    cancels it; one that gained a cadence starts it from now. Safe to run again, in every process. Returns
    how many incidents changed."""
    changed = 0
    now = utcnow()
    incidents = session.scalars(
        select(Incident).where(Incident.status.in_(OPEN_STATUSES), Incident.commander.is_not(None))
    ).all()
    for incident in incidents:
        every = cadence(org, incident.severity)
        job = pending_reminder(session, incident.id)
        if every is None:
            if job is not None:
                changed += stop_cadence(session, incident.id)
            continue
        if job is None:
            start_cadence(session, org, incident, since=now)
            changed += 1
            continue
        was = job.payload.get("every")
        if not isinstance(was, int | float) or timedelta(seconds=was) == every:
            continue
        # The next reminder moves by the change: the same start (or last reminder), the new cadence.
        payload = dict(job.payload)
        since = datetime.fromisoformat(str(payload["since"]))
        job.run_at = job.run_at - timedelta(seconds=was) + every
        payload["every"] = every.total_seconds()
        if not payload.get("reminders"):
            payload["due"] = (since + every).isoformat()
        job.payload = payload
        changed += 1
    return changed
