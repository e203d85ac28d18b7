"""The war-room update cadence: a severity's ``update_every`` asks the incident's commander for an update
(``incident update --message``, to any audience) at least that often while the incident is open.

The next reminder is one durable job per incident (kind ``comms.update_due``), moved whenever the cadence
starts again: a commander takes command, an update is posted, the severity changes, the incident is reopened.
It is cancelled when the incident resolves or closes. Without a commander there is nobody whose duty the
updates are, so there is no cadence (paging is what finds someone to take the incident).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from warroom.incidents.models import Communication, Incident
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
        payload={"incident_id": incident.id, "since": since.isoformat()},
        run_at=since + every,
        incident_id=incident.id,
    )


def next_update_due(session: Session, incident_id: int) -> datetime | None:
    """When the commander is next reminded of an update, if a cadence runs."""
    return session.scalar(
        select(Job.run_at)
        .where(
            Job.kind == UPDATE_DUE_KIND,
            Job.incident_id == incident_id,
            Job.status == JobStatus.pending,
        )
        .order_by(Job.run_at)
        .limit(1)
    )
