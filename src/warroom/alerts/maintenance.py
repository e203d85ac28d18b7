"""Maintenance windows: planned work during which alerts for the services (or labels) it covers are
recorded but not acted on (no incident, no page, no handler), like PagerDuty's maintenance windows or an
Alertmanager silence, but for every source.

When a window ends, on time or early, the alerts it held that are still open are handed to automation as
if they had just arrived: an alert that outlives the maintenance is a real problem and pages. One that
another running window covers (they overlap) moves to that window instead, and is held until it ends.
Alerts that resolved during the window stay recorded, tagged with it, so the window shows what fired while
it ran.

Intake reads the active windows in its own transaction (``FOR SHARE`` on PostgreSQL, and only windows not
yet released), and the release locks the window: an alert is either held before the release sees it, or
arrives after it and is routed normally. An alert moved to another window is moved the same way. None is
held forever.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

from sqlalchemy import ColumnElement, Connection, func, or_, select
from sqlalchemy.orm import Session

from warroom import spans
from warroom.alerts import automation
from warroom.alerts.config import (
    STORED_CONDITIONS,
    AlertConditions,
    AlertFacts,
    MaintenanceSchedule,
    RuleMatch,
    window_match,
)
from warroom.alerts.models import Alert, MaintenanceWindow
from warroom.alerts.schemas import MaintenanceCreate, MaintenanceEnded, MaintenanceRead
from warroom.auth import integrations
from warroom.db import get_by_ref, utcnow
from warroom.errors import Conflict, InvalidInput
from warroom.jobs import service as jobs_service
from warroom.jobs.models import Job, JobStatus
from warroom.jobs.service import job_handler
from warroom.orgconfig import OrgConfig

if TYPE_CHECKING:
    from warroom.context import AppContext

RELEASE_KIND = "alerts.maintenance_release"
SCHEDULE_KIND = "alerts.maintenance_schedule"
# A scheduled occurrence's window is created this long before it starts, so people see it coming (and can
# cancel it with ``maintenance end``).
SCHEDULE_LEAD = timedelta(days=1)
# How far in the past a person's window may start: clocks differ a little between the CLI's machine and the
# server's. More is refused.
START_SLACK = timedelta(minutes=1)
_WINDOWS = MaintenanceWindow.__table__
# Ends of windows take turns on PostgreSQL: each locks its window, then (FOR SHARE) the running windows its
# alerts may move to, so two overlapping windows ended at once would each wait for the other (deadlock).
_RELEASE_LOCK = 7270002
# Processes that follow a reload at once bring the schedules' chains in line one after the other.
_SCHEDULES_LOCK = 7270003


def _release_key(window_id: int) -> str:
    return f"maintenance-release:{window_id}"


@dataclass(frozen=True)
class ActiveWindow:
    """What a running window covers. Every condition it sets must hold: the alert's service is one of its
    services (if it names any), and the alert meets its match (labels, sources, severities, types...)."""

    id: int
    match: RuleMatch

    def covers(self, alert: AlertFacts) -> bool:
        return self.match.accepts(alert)


def active_windows(connection: Connection, now: datetime) -> list[ActiveWindow]:
    """The windows running at ``now`` whose alerts are not yet released."""
    statement = (
        select(_WINDOWS.c.id, _WINDOWS.c.services, _WINDOWS.c.labels, _WINDOWS.c.conditions)
        .where(
            _WINDOWS.c.starts_at <= now,
            _WINDOWS.c.ends_at > now,
            _WINDOWS.c.released_at.is_(None),
        )
        .order_by(_WINDOWS.c.id)
        # A window's release waits for intake transactions that may hold alerts in it (PostgreSQL;
        # SQLite runs one writer at a time).
        .with_for_update(read=True)
    )
    return [
        ActiveWindow(row.id, window_match(row.services, row.labels, row.conditions))
        for row in connection.execute(statement)
    ]


def holding_window(windows: list[ActiveWindow], alert: AlertFacts) -> int | None:
    """The first active window covering a new alert."""
    return next((window.id for window in windows if window.covers(alert)), None)


def hold_if_covered(session: Session, alerts: list[Alert], *, ending: int | None = None) -> list[Alert]:
    """Of held alerts about to be routed (their window ends, or the alert that muted them resolved), those a
    running window covers move to it and stay held until it ends, as they would be held had they just
    fired; the others are returned, to route. ``ending``: the window that ends (none stays in it)."""
    if not alerts:
        return []
    session.flush()  # the ending window's new end and release, in the lookup below
    # Locked FOR SHARE as by intake: the release of a window that takes an alert waits for this transaction.
    windows = [window for window in active_windows(session.connection(), utcnow()) if window.id != ending]
    if not windows:
        return alerts
    names = integrations.names_by_id(session, needed=any(window.match.integrations for window in windows))
    to_route = []
    for alert in alerts:
        window_id = holding_window(windows, AlertFacts.of(alert, names.of(alert.integration_id)))
        if window_id is None:
            to_route.append(alert)
        else:
            alert.maintenance_window_id = window_id
    return to_route


def holds(session: Session, window_id: int) -> bool:
    """Whether the window still holds its alerts (it has not released them yet)."""
    window = session.get(MaintenanceWindow, window_id)
    return window is not None and window.released_at is None


WindowState = Literal["scheduled", "active", "ended", "cancelled"]


def _cancelled(window: MaintenanceWindow) -> bool:
    # Ending collapses a window not started to the moment it was cancelled: no other has no length.
    return window.starts_at == window.ends_at


def state(window: MaintenanceWindow, now: datetime) -> WindowState:
    if window.ends_at <= now:
        return "cancelled" if _cancelled(window) else "ended"
    return "active" if window.starts_at <= now else "scheduled"


def to_read(window: MaintenanceWindow, now: datetime | None = None) -> MaintenanceRead:
    moment = now or utcnow()
    return MaintenanceRead(
        id=window.id,
        ref=window.ref,
        reason=window.reason,
        services=window.services,
        labels=window.labels,
        match=AlertConditions.model_validate(window.conditions, context=STORED_CONDITIONS),
        starts_at=window.starts_at,
        ends_at=window.ends_at,
        state=state(window, moment),
        created_by=window.created_by,
        created_at=window.created_at,
        ended_by=window.ended_by,
        released_at=window.released_at,
        planned_starts_at=window.planned_starts_at,
        planned_ends_at=window.planned_ends_at,
    )


def _coverage(
    reason: str, services: list[str], labels: dict[str, str], match: AlertConditions
) -> dict[str, Any]:
    """A window's columns for what it covers and why, as a person's request or a schedule gives them."""
    return {
        "reason": reason.strip(),
        "services": list(dict.fromkeys(services)),
        "labels": dict(labels),
        "conditions": match.model_dump(exclude_defaults=True),
    }


def create_window(
    session: Session, *, org: OrgConfig, data: MaintenanceCreate, performer: str, by_person: bool = True
) -> MaintenanceWindow:
    """A window a person asked for (``by_person``) must name integrations that exist; one of the org file's
    schedules may name one still to be created."""
    now = utcnow()
    org.check_services(data.services)
    if by_person and data.match.integrations:
        # A misspelt name would hold nothing while the responder believes the source is quiet.
        known = set(integrations.names_by_id(session).by_id.values())
        unknown = [name for name in data.match.integrations if name not in known]
        if unknown:
            raise InvalidInput(
                f"no integration named {', '.join(unknown)} (see warroom integration list)",
                {"field": "match.integrations"},
            )
    starts_at = data.starts_at or now
    if by_person and starts_at < now - START_SLACK:
        # A window that started in the past would claim the alerts of that time arrived during it, and read as
        # if it had been planned then.
        raise InvalidInput(
            f"starts_at {starts_at.astimezone(UTC):%Y-%m-%d %H:%M} UTC is in the past: a window starts now "
            "(leave the start out) or later",
            {"field": "starts_at"},
        )
    ends_at = spans.check_span(
        "window", now=now, starts_at=starts_at, ends_at=data.ends_at, duration=data.duration
    )
    window = MaintenanceWindow(
        **_coverage(data.reason, data.services, data.labels, data.match),
        starts_at=starts_at,
        ends_at=ends_at,
        created_by=performer,
        created_at=now,
    )
    session.add(window)
    session.flush()
    jobs_service.enqueue(
        session,
        kind=RELEASE_KIND,
        payload={"window_id": window.id},
        run_at=ends_at,
        idempotency_key=_release_key(window.id),
    )
    return window


def extend_window(session: Session, *, ref: str | int, by: timedelta) -> MaintenanceWindow:
    """End a window later. Its release job, due at the old end, finds it not over and waits for the new."""
    if by <= timedelta(0):
        raise InvalidInput("extend by a positive duration, e.g. 30m", {"field": "by"})
    window = get_window(session, ref, for_update=True)
    if window.ends_at <= utcnow():
        raise Conflict(f"{_over(window)}; start a new one")
    spans.check_length("window", window.starts_at, window.ends_at, "by", by)
    window.ends_at = window.ends_at + by
    return window


def _over(window: MaintenanceWindow) -> str:
    """Why a window that is over can no longer be extended: "already ended" misled about one that was
    cancelled before it started (both its ends are the moment of cancelling, as ``state`` reads it)."""
    at = f"{window.ends_at:%Y-%m-%d %H:%M} UTC"
    by = f" by {window.ended_by}" if window.ended_by else ""
    if _cancelled(window):
        planned = (
            f" (it was planned for {window.planned_starts_at:%Y-%m-%d %H:%M} UTC)"
            if window.planned_starts_at
            else ""
        )
        return f"{window.ref} was cancelled at {at}{by}; it never started{planned}"
    return f"{window.ref} already ended (at {at}{by})"


def get_window(session: Session, ref: str | int, *, for_update: bool = False) -> MaintenanceWindow:
    return get_by_ref(session, MaintenanceWindow, ref, "MW", "maintenance window", for_update=for_update)


def list_windows(
    session: Session, *, include_ended: bool = False, limit: int = 100
) -> list[MaintenanceWindow]:
    """Scheduled and active windows by start; with ``include_ended``, the ended ones too (newest first)."""
    statement = select(MaintenanceWindow)
    if include_ended:
        statement = statement.order_by(MaintenanceWindow.starts_at.desc(), MaintenanceWindow.id.desc())
    else:
        statement = statement.where(MaintenanceWindow.ends_at > utcnow()).order_by(
            MaintenanceWindow.starts_at, MaintenanceWindow.id
        )
    return list(session.scalars(statement.limit(limit)))


def window_alerts(session: Session, window: MaintenanceWindow, *, limit: int = 500) -> list[Alert]:
    statement = (
        select(Alert).where(Alert.maintenance_window_id == window.id).order_by(Alert.id.desc()).limit(limit)
    )
    return list(session.scalars(statement))


def end_window(session: Session, *, org: OrgConfig, ref: str | int, performer: str) -> MaintenanceEnded:
    """End a window now (the work finished early, or was called off): its held alerts still open are
    routed at once. A window that had not started is cancelled: it keeps the times it was planned for apart,
    as both its ends move to now (it holds nothing). One that is over already (ended, cancelled, or ran its
    course) is answered as it is, ``unchanged``, as acknowledging twice is: a second ``maintenance end``
    (a retry, or two people at once) got 409 and failed a script whose window was ended."""
    _releases_take_turns(session)
    window = get_window(session, ref, for_update=True)
    now = utcnow()
    if window.ends_at <= now:
        return MaintenanceEnded(**to_read(window, now).model_dump(), unchanged=True)
    if window.starts_at >= now:
        window.planned_starts_at = window.starts_at
        window.planned_ends_at = window.ends_at
    window.ends_at = now
    window.starts_at = min(window.starts_at, now)
    window.ended_by = performer
    jobs_service.cancel(session, idempotency_key=_release_key(window.id))
    release(session, org, window)
    return MaintenanceEnded(**to_read(window, now).model_dump())


def release(session: Session, org: OrgConfig, window: MaintenanceWindow) -> dict[str, int]:
    """Once: the window's held alerts that are still open move to another running window that covers them
    (overlapping windows: the first by id held them), or else are handed to automation. How many of each."""
    if window.released_at is not None:
        return {"released": 0, "still_held": 0}
    held = automation.held_alerts(session, Alert.maintenance_window_id == window.id)
    window.released_at = utcnow()
    to_route = hold_if_covered(session, held, ending=window.id)
    automation.release_held(
        session,
        org,
        to_route,
        lambda alert: (
            f"{alert.ref} was held during maintenance {window.ref} ({window.reason}) until the "
            f"window ended at {window.ends_at:%Y-%m-%d %H:%M} UTC; it was still {alert.status.value}."
        ),
        {"maintenance_window_id": window.id},
    )
    return {"released": len(to_route), "still_held": len(held) - len(to_route)}


def _releases_take_turns(session: Session) -> None:
    if session.get_bind().dialect.name == "postgresql":
        session.execute(select(func.pg_advisory_xact_lock(_RELEASE_LOCK)))


@job_handler(RELEASE_KIND)
def release_when_over(context: AppContext, session: Session, job: Job) -> dict[str, Any]:
    """At the window's end: route the alerts it held that are still open (or hand them to another window)."""
    _releases_take_turns(session)
    window = session.get(MaintenanceWindow, job.payload["window_id"], with_for_update=True)
    if window is None:
        return {"released": 0, "reason": "the window is gone"}
    now = utcnow()
    if window.ends_at > now:
        # Not over yet (the job ran early, or the window was extended): run again at the end.
        raise jobs_service.RetryLater(window.ends_at - now, f"{window.ref} ends later")
    return release(session, context.org, window)


# --- recurring windows (automation.maintenance_schedules) --------------------------------------------------


def _schedule_key(schedule: MaintenanceSchedule, starts_at: datetime) -> str:
    return f"maintenance-schedule:{schedule.name}:{starts_at.isoformat()}"


def _schedule_prefix(name: str) -> str:
    return f"maintenance-schedule:{name}:"


def _performer(name: str) -> str:
    return f"schedule {name}"


_SUPERSEDED = "the schedule's rule changed: this is no longer an occurrence"
# ``ended_by`` of the windows a reload cancelled (the schedule changed, or left the file): not a person's.
_RELOAD_ENDED_BY = "org file: schedule "


def _reload_ended_by(name: str, why: Literal["changed", "removed"]) -> str:
    return f"{_RELOAD_ENDED_BY}{name} {why}"


def _schedule_occurrence(session: Session, schedule: MaintenanceSchedule, starts_at: datetime) -> None:
    """The job that creates the occurrence's window. Its key names the occurrence, so processes agree on one
    job; one a reload cancelled (the rule changed, then changed back) is waiting again, and so is one that ran
    but whose work a reload undid (``_undone_by_reload``): callers pass only occurrences not handled."""
    run_at = max(starts_at - SCHEDULE_LEAD, utcnow())
    job = jobs_service.enqueue(
        session,
        kind=SCHEDULE_KIND,
        payload={"name": schedule.name, "starts_at": starts_at.isoformat()},
        run_at=run_at,
        idempotency_key=_schedule_key(schedule, starts_at),
    )
    if job.status == JobStatus.cancelled or (
        job.status == JobStatus.done and _undone_by_reload(session, job)
    ):
        job.status = JobStatus.pending
        job.run_at = run_at
        job.attempts = 0
        job.started_at = None
        job.finished_at = None
        jobs_service.set_last_error(job, None)
        job.result = None


def _is_occurrence(schedule: MaintenanceSchedule, starts_at: datetime) -> bool:
    return schedule.is_start(starts_at)


def schedule_windows(session: Session, org: OrgConfig) -> int:
    """At startup: for each schedule with nothing pending, the job that creates the window of the
    occurrence running now, or else of the next one."""
    started = 0
    now = utcnow()
    for schedule in org.automation.maintenance_schedules:
        prefix = _schedule_prefix(schedule.name)
        if jobs_service.has_pending(session, kind=SCHEDULE_KIND, key_prefix=prefix):
            continue
        starts_at = _unhandled(session, schedule, schedule.current_or_next(now))
        if starts_at is not None:
            _schedule_occurrence(session, schedule, starts_at)
            started += 1
    return started


def follow_schedules(session: Session, org: OrgConfig) -> list[str]:
    """After a reload (and at startup): bring the schedules' windows and chains in line with the org file.

    For a schedule whose rule changed (its ``rrule`` or ``time_zone``), the windows it created that have not
    started and are not occurrences of the new rule are cancelled, as ``maintenance end`` cancels one, and its
    chain waits for the first occurrence of the new rule that has no window yet instead of the old one. For
    a schedule taken out of the file, its windows that have not started are cancelled and its chain stops.
    A window already running is left alone: it ends at its end (or by hand). A window not started yet that
    fits the rule takes what the schedule now says it covers, its reason and its length.

    An unchanged schedule is left as it is, so this is safe to run at every start and in every process; on
    PostgreSQL those that run it at once take turns. Returns what it did (for the log)."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(select(func.pg_advisory_xact_lock(_SCHEDULES_LOCK)))
    now = utcnow()
    said: list[str] = []
    configured = {schedule.name: schedule for schedule in org.automation.maintenance_schedules}
    pending = list(
        session.scalars(
            select(Job).where(Job.kind == SCHEDULE_KIND, Job.status == JobStatus.pending).order_by(Job.id)
        )
    )
    upcoming = list(
        session.scalars(
            select(MaintenanceWindow)
            .where(
                MaintenanceWindow.created_by.startswith("schedule ", autoescape=True),
                MaintenanceWindow.starts_at > now,
            )
            .order_by(MaintenanceWindow.starts_at, MaintenanceWindow.id)
        )
    )
    names = {job.payload.get("name") for job in pending} | {
        w.created_by.removeprefix("schedule ") for w in upcoming
    }
    for name in sorted(n for n in names if isinstance(n, str) and n not in configured):
        stopped = jobs_service.cancel(session, kind=SCHEDULE_KIND, key_prefix=_schedule_prefix(name))
        windows = [w for w in upcoming if w.created_by == _performer(name)]
        for window in windows:
            end_window(session, org=org, ref=window.id, performer=_reload_ended_by(name, "removed"))
        if stopped or windows:
            cancelled = "".join(f", cancelled {w.ref}" for w in windows)
            said.append(
                f"maintenance schedule {name} is no longer in the org file: its chain stopped{cancelled}"
            )
    for schedule in configured.values():
        said.extend(_follow_schedule(session, org, schedule, now, pending, upcoming))
    return said


def _follow_schedule(
    session: Session,
    org: OrgConfig,
    schedule: MaintenanceSchedule,
    now: datetime,
    pending: list[Job],
    upcoming: list[MaintenanceWindow],
) -> list[str]:
    performer = _performer(schedule.name)
    said = []
    for window in upcoming:
        if window.created_by != performer:
            continue
        planned = f"{window.starts_at:%Y-%m-%d %H:%M} UTC"
        if not _is_occurrence(schedule, window.starts_at):
            end_window(session, org=org, ref=window.id, performer=_reload_ended_by(schedule.name, "changed"))
            said.append(
                f"maintenance schedule {schedule.name} changed: {window.ref} ({planned}) no longer fits its "
                "rule and was cancelled"
            )
        elif _take_schedule(session, window, schedule):
            said.append(f"maintenance schedule {schedule.name} changed: {window.ref} ({planned}) follows it")
    waiting = [job for job in pending if job.payload.get("name") == schedule.name]
    if not waiting:
        return said  # a new schedule (``schedule_windows`` starts it), or its chain has ended
    starts_at = _unhandled(session, schedule, schedule.current_or_next(now))
    wanted = starts_at.isoformat() if starts_at is not None else None
    stale = [job for job in waiting if job.payload.get("starts_at") != wanted]
    for job in stale:
        jobs_service.cancel(session, idempotency_key=job.idempotency_key)
    if stale and starts_at is not None:
        _schedule_occurrence(session, schedule, starts_at)
        said.append(
            f"maintenance schedule {schedule.name} changed: its next window is created for "
            f"{starts_at:%Y-%m-%d %H:%M} UTC"
        )
    return said


def _take_schedule(session: Session, window: MaintenanceWindow, schedule: MaintenanceSchedule) -> bool:
    """Give a window that has not started what its schedule covers now (services, labels, conditions), its
    reason and its length; whether anything changed. It holds nothing yet, so nothing is released."""
    wanted = {
        **_coverage(schedule.reason, schedule.services, schedule.labels, schedule.match),
        "ends_at": window.starts_at + schedule.duration,
    }
    changed = {name: value for name, value in wanted.items() if getattr(window, name) != value}
    for name, value in changed.items():
        setattr(window, name, value)
    if "ends_at" in changed:
        # The release job waits for the end: at the old end, a shortened window's alerts would stay held.
        release = session.scalar(
            select(Job).where(Job.idempotency_key == _release_key(window.id), Job.status == JobStatus.pending)
        )
        if release is not None:
            release.run_at = window.ends_at
    return bool(changed)


def _unhandled(
    session: Session, schedule: MaintenanceSchedule, starts_at: datetime | None
) -> datetime | None:
    """``starts_at``, or the first occurrence after it that no job has handled yet."""
    for _ in range(1000):  # windows are created a day ahead: only the next few can have been handled
        if starts_at is None or not _handled(session, schedule, starts_at):
            break
        starts_at = schedule.starts(starts_at)
    return starts_at


def _handled(session: Session, schedule: MaintenanceSchedule, starts_at: datetime) -> bool:
    """Whether the occurrence's job ran (its window was created, or someone cancelled it since). What a reload
    undid does not count: a window a reload cancelled (the rule changed, then changed back), or a run that
    found the occurrence no longer in the rule. A window a person cancelled stays cancelled."""
    key = _schedule_key(schedule, starts_at)
    ran = session.scalar(
        select(Job).where(Job.idempotency_key == key, Job.status.in_([JobStatus.running, JobStatus.done]))
    )
    if ran is not None and not _undone_by_reload(session, ran):
        return True
    window = session.scalar(
        select(MaintenanceWindow.id).where(
            MaintenanceWindow.created_by == _performer(schedule.name),
            MaintenanceWindow.starts_at == starts_at,
            _not_cancelled_by_reload(),
        )
    )
    return window is not None


def next_occurrence(session: Session, schedule: MaintenanceSchedule, now: datetime) -> datetime | None:
    """The start of the schedule's occurrence that would hold an alert arriving now or later: the one running,
    else the next one, passing over those a person cancelled or ended early (``maintenance end``)."""
    starts_at = schedule.current_or_next(now)
    for _ in range(1000):  # windows are created a day ahead: only the next few can have been called off
        if starts_at is None or not _called_off(session, schedule, starts_at, now):
            break
        starts_at = schedule.starts(starts_at)
    return starts_at


def _called_off(session: Session, schedule: MaintenanceSchedule, starts_at: datetime, now: datetime) -> bool:
    window = session.scalar(
        select(MaintenanceWindow.id).where(
            MaintenanceWindow.created_by == _performer(schedule.name),
            or_(MaintenanceWindow.starts_at == starts_at, MaintenanceWindow.planned_starts_at == starts_at),
            MaintenanceWindow.ends_at <= now,
            MaintenanceWindow.ended_by.is_not(None),
            _not_cancelled_by_reload(),
        )
    )
    return window is not None


def _not_cancelled_by_reload() -> ColumnElement[bool]:
    return or_(
        MaintenanceWindow.ended_by.is_(None),
        ~MaintenanceWindow.ended_by.startswith(_RELOAD_ENDED_BY, autoescape=True),
    )


def _undone_by_reload(session: Session, job: Job) -> bool:
    """Whether a finished occurrence job's work is undone: the rule no longer had the occurrence when it ran,
    or the window it created (or found) was cancelled by a reload, not by a person."""
    if job.status != JobStatus.done or not job.result:
        return False
    if job.result.get("superseded") or job.result.get("reason") == _SUPERSEDED:
        return True
    window_id = job.result.get("window_id")
    ref = job.result.get("window")  # runs recorded before ``window_id`` was
    if window_id is None and isinstance(ref, str) and ref.startswith("MW-") and ref[3:].isdigit():
        window_id = int(ref[3:])
    if not isinstance(window_id, int):
        return False
    ended_by = session.scalar(select(MaintenanceWindow.ended_by).where(MaintenanceWindow.id == window_id))
    return ended_by is not None and ended_by.startswith(_RELOAD_ENDED_BY)


@job_handler(SCHEDULE_KIND)
def open_scheduled_window(context: AppContext, session: Session, job: Job) -> dict[str, Any]:
    """Create the window of one occurrence (once), then schedule the next occurrence's job."""
    schedule = next(
        (s for s in context.org.automation.maintenance_schedules if s.name == job.payload["name"]), None
    )
    if schedule is None:
        return {"created": False, "reason": "the schedule is no longer in the org file"}
    starts_at = datetime.fromisoformat(job.payload["starts_at"])
    if not _is_occurrence(schedule, starts_at):
        # The rule changed after this job was added (the reload hook of this process has not run yet): the
        # chain goes on from the new rule, with no window at the old time.
        following = _unhandled(session, schedule, schedule.current_or_next(utcnow()))
        if following is not None:
            _schedule_occurrence(session, schedule, following)
        return {
            "created": False,
            "superseded": True,
            "reason": _SUPERSEDED,
        }
    performer = _performer(schedule.name)
    outcome: dict[str, Any] = {"created": False}
    exists = session.scalar(
        select(MaintenanceWindow.id).where(
            MaintenanceWindow.created_by == performer,
            MaintenanceWindow.starts_at == starts_at,
            _not_cancelled_by_reload(),
        )
    )
    if exists is not None:
        outcome = {
            "created": False,
            "window_id": exists,
            "reason": f"MW-{exists} already covers this occurrence",
        }
    elif starts_at + schedule.duration <= utcnow():
        outcome["reason"] = "the occurrence was over before it could be created"
    else:
        window = create_window(
            session,
            org=context.org,
            data=MaintenanceCreate(
                reason=schedule.reason,
                services=schedule.services,
                labels=schedule.labels,
                match=schedule.match,
                starts_at=starts_at,
                duration=schedule.duration,
            ),
            performer=performer,
            by_person=False,
        )
        outcome = {"created": True, "window": window.ref, "window_id": window.id}
    following = _unhandled(session, schedule, schedule.starts(starts_at))
    if following is not None:
        _schedule_occurrence(session, schedule, following)
    return outcome
