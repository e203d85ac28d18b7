"""Retention: what the alerts domain stores without end is deleted once it is old enough to be of no use.

A noisy monitoring setup sends thousands of alerts a day, each with its raw payload kept as evidence, and the
status page polls and auto-resolve sweeps leave a finished job row every minute or two. Without a limit a
SQLite file on a laptop grows for ever. Once an hour a durable job (on a fixed grid, so several processes run
one chain) deletes, as ``automation.retention`` says:

- resolved alerts that are on no incident, ``alerts`` after they resolved. Alerts on an incident are its
  evidence and are kept as long as the incident; open alerts are never deleted;
- change events, ``changes`` after they happened (the timeline entries that named them keep their text);
- the storm guard's record of incidents that paged, a day after they opened (its window is at most a day);
- the report form's record of the reports it took (its rate limit), once older than ``reports.rate_period``;
- the finished runs of this domain's scheduled jobs (status page polls, auto-resolve sweeps, heartbeat
  checks, maintenance schedule runs, rules' delays and this one), ``recurring_job_runs`` after they
  finished. Their keys name a time slot, an occurrence, an alert or a ping count that is past, so nothing
  schedules them again. A heartbeat that pings every minute with a ``max_runtime`` leaves a finished check
  per run: 1,440 rows a day.

On SQLite, the pages the deleted rows took are then given back to the file system (incremental auto-vacuum;
a file made before Warroom set that mode needs ``warroom db vacuum`` once). Deletes go in chunks, each its own
short transaction, so alert intake (which shares SQLite's one write lock)
waits for one chunk at most. The rows of a chunk are chosen by a read, and the delete checks each condition
again, so a row that changed in between (an alert promoted to an incident) is kept.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import ColumnElement, delete, exists, select
from sqlalchemy.orm import InstrumentedAttribute, Session, aliased

from warroom.alerts.automation import CALM_KIND, DELAY_KIND, QUIET_KIND
from warroom.alerts.config import STORM_GUARD_MAX_WITHIN, AutomationConfig
from warroom.alerts.digest import DIGEST_KIND
from warroom.alerts.expiry import SWEEP_KIND
from warroom.alerts.heartbeats import CHECK_KIND as HEARTBEAT_CHECK_KIND
from warroom.alerts.maintenance import SCHEDULE_KIND as MAINTENANCE_SCHEDULE_KIND
from warroom.alerts.models import Alert, AlertStatus, ChangeEvent, PagedOpening, ReportHit
from warroom.alerts.service import SNOOZE_KIND
from warroom.alerts.status_pages import POLL_KIND
from warroom.auth.idempotency import KEEP_FOR as IDEMPOTENCY_KEEP_FOR
from warroom.auth.models import IdempotentRequest
from warroom.db import Base, utcnow
from warroom.jobs import service as jobs_service
from warroom.jobs.models import Job, JobStatus
from warroom.jobs.service import job_handler

if TYPE_CHECKING:
    from warroom.context import AppContext

log = logging.getLogger("warroom.alerts.retention")

PRUNE_KIND = "alerts.retention"
PRUNE_EVERY = timedelta(hours=1)
_KEY_PREFIX = "alerts-retention:"
# Rows per delete transaction: small enough that intake never waits long for the write lock.
CHUNK = 1000
# The scheduled jobs whose finished runs are pruned. Their idempotency keys are never enqueued again.
RECURRING_KINDS = (
    POLL_KIND,
    SWEEP_KIND,
    PRUNE_KIND,
    HEARTBEAT_CHECK_KIND,
    MAINTENANCE_SCHEDULE_KIND,
    DELAY_KIND,
    QUIET_KIND,
    CALM_KIND,
    DIGEST_KIND,
    SNOOZE_KIND,
)


def _conditions(automation: AutomationConfig, now: datetime) -> dict[str, tuple[type[Base], list[Any]]]:
    """What may go, by table: the model and the conditions a row must meet (none when it is kept for ever)."""
    retention = automation.retention
    found: dict[str, tuple[type[Base], list[Any]]] = {}
    if retention.alerts > timedelta(0):
        muted = aliased(Alert)
        found["alerts"] = (
            Alert,
            [
                Alert.status == AlertStatus.resolved,
                Alert.incident_id.is_(None),
                Alert.resolved_at < now - retention.alerts,
                # What muted an alert that stays is part of that alert's story ("was inhibited by ALR-14").
                ~exists().where(muted.inhibited_by_id == Alert.id),
            ],
        )
    if retention.changes > timedelta(0):
        found["changes"] = (ChangeEvent, [ChangeEvent.happened_at < now - retention.changes])
    # Only counted by the storm guard, whose window is at most a day.
    found["paged_openings"] = (PagedOpening, [PagedOpening.opened_at < now - STORM_GUARD_MAX_WITHIN])
    # Only counted by the report form's rate limit, within its period.
    found["report_hits"] = (ReportHit, [ReportHit.at <= now - automation.reports.rate_period])
    # A retry comes within minutes; a day covers a client that retries on its next run.
    found["idempotent_requests"] = (
        IdempotentRequest,
        [IdempotentRequest.created_at <= now - IDEMPOTENCY_KEEP_FOR],
    )
    found["recurring_job_runs"] = (
        Job,
        [
            Job.kind.in_(RECURRING_KINDS),
            Job.status == JobStatus.done,
            Job.finished_at < now - retention.recurring_job_runs,
        ],
    )
    return found


def _prune_table(context: AppContext, model: type[Base], conditions: list[ColumnElement[bool]]) -> int:
    id_column: InstrumentedAttribute[int] = model.id  # type: ignore[attr-defined]
    deleted = 0
    after = 0
    while True:
        with context.db.read() as session:
            chosen = list(
                session.scalars(
                    select(id_column).where(id_column > after, *conditions).order_by(id_column).limit(CHUNK)
                )
            )
        if not chosen:
            return deleted
        with context.db.write() as session:
            # The conditions again: a row that changed since the read stays.
            result = session.execute(delete(model).where(id_column.in_(chosen), *conditions))
            deleted += int(getattr(result, "rowcount", 0) or 0)
        after = chosen[-1]


def prune(context: AppContext, now: datetime) -> dict[str, int]:
    """Delete what ``automation.retention`` lets go; how many rows of each kind."""
    return {
        what: _prune_table(context, model, conditions)
        for what, (model, conditions) in _conditions(context.org.automation, now).items()
    }


def schedule_pruning(session: Session) -> bool:
    """At startup: start the hourly chain unless a run of it is pending (every org prunes at least the
    finished recurring runs). Its first run is at the next slot of the grid, not at once: nothing is urgent,
    and a process that restarts often would prune each time."""
    if jobs_service.has_pending(session, kind=PRUNE_KIND, key_prefix=_KEY_PREFIX):
        return False
    jobs_service.enqueue_on_grid(
        session, kind=PRUNE_KIND, key_prefix=_KEY_PREFIX, payload={}, every=PRUNE_EVERY, after=utcnow()
    )
    return True


@job_handler(PRUNE_KIND, deferred_transaction=True)
def run(context: AppContext, session: Session, job: Job) -> dict[str, Any]:
    """Prune in short transactions of its own, then schedule the next run in the job's transaction."""
    deleted = prune(context, utcnow())
    outcome: dict[str, Any] = {"deleted": deleted}
    if any(deleted.values()):
        log.info("retention: deleted %s", ", ".join(f"{count} {what}" for what, count in deleted.items()))
        # The space the rows took goes back to the file system, so a laptop's SQLite file shrinks.
        outcome["pages_reclaimed"] = context.db.reclaim_free_pages()
    jobs_service.enqueue_on_grid(
        session, kind=PRUNE_KIND, key_prefix=_KEY_PREFIX, payload={}, every=PRUNE_EVERY, after=utcnow()
    )
    return outcome
