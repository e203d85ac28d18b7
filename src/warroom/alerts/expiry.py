"""Auto-resolve: open alerts whose source never resolves them (a script, a cron job) are resolved once they
have not been seen for the ``after`` of the first ``automation.auto_resolve`` entry that matches them.

A chain of durable jobs sweeps once a minute, on a fixed grid, so several processes run one chain. Each alert
it resolves closes the way a resolve from its source does: the incident's timeline says why, and the incident
moves to monitoring when it was its last open alert.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from warroom.alerts import service
from warroom.alerts.config import AlertFacts
from warroom.alerts.models import Alert, AlertStatus
from warroom.auth import integrations
from warroom.db import utcnow
from warroom.jobs import service as jobs_service
from warroom.jobs.models import Job
from warroom.jobs.service import job_handler
from warroom.orgconfig import OrgConfig

if TYPE_CHECKING:
    from warroom.context import AppContext

SWEEP_KIND = "alerts.auto_resolve"
SWEEP_EVERY = timedelta(minutes=1)
_KEY_PREFIX = "auto-resolve:"
_CHUNK = 500


def expire_stale(session: Session, org: OrgConfig, now: datetime) -> int:
    """Resolve every open alert past its entry's ``after``; how many were resolved."""
    entries = org.automation.auto_resolve
    if not entries:
        return 0
    cutoff = now - min(entry.after for entry in entries)
    names = integrations.names_by_id(session, needed=any(entry.match.integrations for entry in entries))
    resolved = 0
    last_id = 0
    while True:
        # In chunks by id, so alerts that match no entry cannot crowd out those that do. Rows intake is
        # updating right now are skipped (PostgreSQL): they were just seen.
        chunk = session.scalars(
            select(Alert)
            .where(Alert.status != AlertStatus.resolved, Alert.last_seen_at <= cutoff, Alert.id > last_id)
            .order_by(Alert.id)
            .limit(_CHUNK)
            .with_for_update(skip_locked=True)
        ).all()
        if not chunk:
            return resolved
        for alert in chunk:
            integration = names.of(alert.integration_id)
            entry = org.automation.auto_resolve_for(AlertFacts.of(alert, integration))
            if entry is not None and alert.last_seen_at <= now - entry.after:
                service.expire(session, org=org, alert=alert, after=entry.after)
                resolved += 1
        last_id = chunk[-1].id


def schedule_sweeps(session: Session, org: OrgConfig) -> bool:
    """At startup: start the sweep chain when the org file has auto_resolve entries and none is pending."""
    if not org.automation.auto_resolve:
        return False
    return jobs_service.start_grid_chain(
        session, kind=SWEEP_KIND, key_prefix=_KEY_PREFIX, payload={}, every=SWEEP_EVERY
    )


@job_handler(SWEEP_KIND)
def sweep(context: AppContext, session: Session, job: Job) -> dict[str, Any]:
    """Resolve what has expired, then schedule the next sweep (the chain ends when the entries are gone)."""
    if not context.org.automation.auto_resolve:
        return {"skipped": "the org file has no auto_resolve entries"}
    resolved = expire_stale(session, context.org, utcnow())
    jobs_service.enqueue_on_grid(
        session, kind=SWEEP_KIND, key_prefix=_KEY_PREFIX, payload={}, every=SWEEP_EVERY, after=utcnow()
    )
    return {"resolved": resolved}
