"""The unrouted-alert digest (``automation.unrouted_digest``): when business hours begin, the audience's
notification channels get the alerts that arrived since the last digest and that no rule routed.

Such an alert is stored and listed (``alerts list --unrouted``), but nobody was paged and nobody may look:
a new alert type nobody wrote a rule for, a service renamed under a rule. The digest makes sure someone hears
of it. Alerts held by a maintenance window or an inhibiting alert are left out (they are held, not unrouted),
and so are those a rule matched without an incident action (routed on purpose to nothing). One durable job
per digest, each scheduling the next, so a restart neither skips nor repeats one. A digest with nothing in it
is not sent.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from warroom.alerts import holds
from warroom.alerts.models import Alert, AlertStatus
from warroom.durations import format_duration
from warroom.errors import WarroomError
from warroom.fields import one_line
from warroom.jobs import service as jobs_service
from warroom.jobs.models import Job
from warroom.jobs.service import job_handler
from warroom.notify import service as notify_service
from warroom.notify.config import find_channel, split_channel_reference
from warroom.orgconfig import OrgConfig

if TYPE_CHECKING:
    from warroom.context import AppContext

log = logging.getLogger("warroom.alerts.digest")

DIGEST_KIND = "alerts.unrouted_digest"
_KEY_PREFIX = "unrouted-digest:"
GROUPS_SHOWN = 10


def next_digest(org: OrgConfig, after: datetime) -> datetime:
    """The first start of business hours after ``after`` (the next morning when they are open now)."""
    hours = org.business_hours
    opens = hours.next_open(after)
    if opens is None or opens == after:
        opens = hours.next_business_day_start(after)
    return opens or after + timedelta(days=1)  # every day closed for a year: daily, then


def _schedule(session: Session, run_at: datetime, since: datetime) -> None:
    jobs_service.enqueue(
        session,
        kind=DIGEST_KIND,
        payload={"since": since.isoformat()},
        run_at=run_at,
        idempotency_key=f"{_KEY_PREFIX}{run_at.isoformat()}",
    )


def schedule_digest(session: Session, org: OrgConfig, now: datetime) -> bool:
    """At start (and reload): start the chain when the org file asks for a digest and none is pending."""
    if org.automation.unrouted_digest is None:
        return False
    if jobs_service.has_pending(session, kind=DIGEST_KIND, key_prefix=_KEY_PREFIX):
        return False
    _schedule(session, next_digest(org, now), since=now)
    return True


def _unrouted(since: datetime, until: datetime) -> list[Any]:
    """Alerts no rule routed, less those a window or an open inhibitor holds now or held until they resolved:
    once released, an alert that no rule takes is unrouted like any other (before, it stayed out of the digest
    for good)."""
    return [Alert.first_seen_at >= since, Alert.first_seen_at < until, holds.unrouted()]


def summary(session: Session, since: datetime, until: datetime) -> dict[str, Any]:
    """How many alerts no rule routed between ``since`` and ``until``, how many are open, and the largest
    groups by alert type and service (with one summary each)."""
    conditions = _unrouted(since, until)
    total = session.scalar(select(func.count()).select_from(Alert).where(*conditions)) or 0
    still_open = (
        session.scalar(
            select(func.count()).select_from(Alert).where(*conditions, Alert.status != AlertStatus.resolved)
        )
        or 0
    )
    rows = session.execute(
        select(Alert.alert_type, Alert.service, func.count(), func.max(Alert.id))
        .where(*conditions)
        .group_by(Alert.alert_type, Alert.service)
        .order_by(func.count().desc(), Alert.alert_type)
        .limit(GROUPS_SHOWN)
    ).all()
    # Each group's example is its newest alert's summary (the text most like what still arrives).
    examples = select(Alert.id, Alert.summary).where(Alert.id.in_([row[3] for row in rows]))
    newest = {alert_id: text for alert_id, text in session.execute(examples)}
    groups = [
        {
            "type": alert_type,
            "service": service,
            "count": count,
            "summary": one_line(newest.get(last, ""))[:200],
        }
        for alert_type, service, count, last in rows
    ]
    return {"total": total, "still_open": still_open, "groups": groups}


@job_handler(DIGEST_KIND)
def send_digest(context: AppContext, session: Session, job: Job) -> dict[str, Any]:
    """Send the digest of what arrived since the last one, then schedule the next (the chain ends when the
    org file asks for no digest)."""
    org = context.org
    digest = org.automation.unrouted_digest
    if digest is None:
        return {"skipped": "the org file asks for no unrouted digest"}
    since = datetime.fromisoformat(job.payload["since"])
    until = job.run_at
    found = summary(session, since, until)
    sent: list[str] = []
    refused: list[str] = []
    audience = next((a for a in org.audiences if a.id == digest.audience), None)
    if found["total"] and audience is not None:
        variables = {
            **found,
            "since": since.strftime("%Y-%m-%d %H:%M UTC"),
            "until": until.strftime("%Y-%m-%d %H:%M UTC"),
            "period": format_duration(until - since),
        }
        for entry in audience.channels:
            name, recipient = split_channel_reference(entry)
            if find_channel(org, name, implicit=False) is None:
                continue  # status pages, in-app: not notification channels
            try:
                notify_service.send(
                    session,
                    channel=name,
                    to=recipient or "",
                    template="unrouted_digest",
                    context=variables,
                    idempotency_key=f"unrouted-digest:{job.id}:{entry}",
                )
                sent.append(entry)
            except WarroomError as exc:
                log.warning("unrouted digest not sent via %s: %s", entry, exc.message)
                refused.append(f"{entry}: {exc.message}")
    _schedule(session, next_digest(org, until), since=until)
    return {"unrouted": found["total"], "sent": sent, "refused": refused}
