"""Heartbeats (dead man's switches): expected pings whose absence is the alert.

Monitoring that has stopped sends nothing, and silence looks like health. Alertmanager's always-firing
``Watchdog`` alert, a cron job or a backup script pings ``POST /api/v1/heartbeats/<name>`` (any
``heartbeat`` integration key) at least every ``interval``. Each ping moves the heartbeat's deadline; one
durable check job per heartbeat runs at the deadline and, when the ping has not come, fires a
``heartbeat`` alert through the normal intake, so rules, grouping, maintenance windows and paging apply.
The next ping resolves it. A missed alert resolved any other way (by a person, with its incident, by
auto-resolve) leaves the heartbeat watched again from that moment, so a sender still silent fires again; a
failure alert resolved so counts as handled (the next failed run fires anew). Either way the heartbeat shows
``watching``, with its deadline, until its next ping. A heartbeat is watched from its first ping, so a new
entry in the org file does not fire before its sender is set up; ``warroom heartbeats`` shows which have
never pinged. One with ``first_ping_within`` is watched from the app's start instead: a sender that was never
set up fires too.

A sender can also say that its run failed (``/fail``, or its exit status: ``/3``), with its output as the
body. That fires a second alert at once, without waiting for the deadline: a backup that fails every night
still pings on time. A failure counts as a sign of life (it moves the deadline); the next successful ping
resolves it. A sender may also say when a run starts (``/start``): with ``max_runtime``, a run that has not
ended that long after its start fires the missed alert, and each run's duration is kept.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from warroom.alerts import automation, scrub, service
from warroom.alerts.adapters import AlertEvent
from warroom.alerts.config import HeartbeatConfig
from warroom.alerts.models import Alert, Heartbeat
from warroom.alerts.schemas import HeartbeatRead, Ingested
from warroom.auth import integrations
from warroom.auth.models import IntegrationType
from warroom.db import utcnow
from warroom.durations import format_duration
from warroom.errors import InvalidInput, NotFound
from warroom.jobs import service as jobs_service
from warroom.jobs.models import Job, JobStatus
from warroom.jobs.service import RetryLater, job_handler
from warroom.orgconfig import OrgConfig

if TYPE_CHECKING:
    from warroom.context import AppContext

CHECK_KIND = "alerts.heartbeat_check"
DEADLINE_KEY = "heartbeat-deadline:"
SOURCE = "heartbeat"
# The tail of a failed run's output is kept on its alert: that is where the error usually is.
OUTPUT_LIMIT = 10_000
# A report's body is read as it arrives, keeping only the bytes that can hold the last OUTPUT_LIMIT characters
# (4 bytes each at most in UTF-8, and 3 more for a character cut at the start): no size is refused. Reading
# stops after OUTPUT_READ_LIMIT bytes, and the run is recorded with the output up to there.
OUTPUT_TAIL_BYTES = 4 * OUTPUT_LIMIT + 3
OUTPUT_READ_LIMIT = 16 * 1024 * 1024
CUT_NOTE = f"\n[... output over {OUTPUT_READ_LIMIT // (1024 * 1024)} MiB: the rest was not read]"


@dataclass(frozen=True)
class Signal:
    """What a sender reported: a plain ping (success), ``/fail``, an exit status (0 is a success), or
    ``/start`` (a run began; it is not a ping)."""

    failed: bool = False
    exit_status: int | None = None
    output: str = ""
    start: bool = False

    @classmethod
    def parse(cls, outcome: str, body: bytes = b"") -> Signal:
        """The signal of ``outcome`` (the path's last part), with ``body`` as its output if it failed."""
        if outcome == "start":
            return cls(start=True)
        if outcome == "fail":
            exit_status = None
        elif outcome.isascii() and outcome.isdigit() and len(outcome) <= 3 and int(outcome) <= 255:
            exit_status = int(outcome)
        else:
            raise InvalidInput(
                f"a heartbeat signal is 'start', 'fail' or an exit status from 0 to 255, not {outcome!r}",
                {"field": "signal", "allowed": ["start", "fail", "0-255"]},
            )
        return cls(failed=exit_status != 0, exit_status=exit_status).with_output(body)

    def with_output(self, body: bytes, *, cut: bool = False) -> Signal:
        """This signal with ``body`` as its output (kept only for a failure), its last OUTPUT_LIMIT
        characters. ``cut``: reading stopped before the body's end (``read_output``)."""
        if not self.failed:
            return self
        # Output is evidence, not a field: undecodable bytes and NULs (PostgreSQL stores none) are replaced
        # rather than losing the failure over them.
        text = body.decode("utf-8", errors="replace").replace("\x00", "\ufffd")
        if len(text) > OUTPUT_LIMIT:
            text = "[...]\n" + text[-OUTPUT_LIMIT:]
        # Viewers read it: API tokens, keys given as keys and passwords in URLs a job printed are taken out
        # here, any other active integration key when it is stored (``ping``).
        text = scrub.scrub_text(text)
        return replace(self, output=text + CUT_NOTE if cut else text)


async def read_output(chunks: AsyncIterator[bytes]) -> tuple[bytes, bool]:
    """The tail of a report's body (``OUTPUT_TAIL_BYTES``), read as it arrives without holding the rest, and
    whether reading stopped at ``OUTPUT_READ_LIMIT`` before its end."""
    tail = bytearray()
    read = 0
    async for chunk in chunks:
        read += len(chunk)
        tail += chunk[-OUTPUT_TAIL_BYTES:]
        if len(tail) > 2 * OUTPUT_TAIL_BYTES:  # trimmed now and then, not at every chunk
            del tail[:-OUTPUT_TAIL_BYTES]
        if read > OUTPUT_READ_LIMIT:
            return bytes(tail[-OUTPUT_TAIL_BYTES:]), True
    return bytes(tail[-OUTPUT_TAIL_BYTES:]), False


def _configured(org: OrgConfig, name: str) -> HeartbeatConfig:
    config = org.automation.heartbeat(name)
    if config is None:
        known = [h.name for h in org.automation.heartbeats]
        raise NotFound(f"no heartbeat {name!r} in the org file" + (f"; it has {known}" if known else ""))
    return config


def _missed_key(name: str) -> str:
    """The dedup key of a heartbeat's missed alert (its failure alert's adds ``:failed``)."""
    return f"heartbeat:{name}"


FAILED_SUFFIX = ":failed"


def _failed_key(name: str) -> str:
    """The dedup key of a heartbeat's failure alert."""
    return _missed_key(name) + FAILED_SUFFIX


def _event(
    config: HeartbeatConfig,
    action: Literal["trigger", "resolve"],
    detail: dict[str, Any],
    *,
    never_pinged: bool = False,
    running_since: datetime | None = None,
) -> AlertEvent:
    if running_since is not None and config.max_runtime is not None:
        # Stuck, not silent: said even after a summary of the org file's, since the fix differs.
        limit = format_duration(config.max_runtime)
        summary = (
            f"{config.summary or f'No heartbeat from {config.name}'}: its run started at "
            f"{running_since:%Y-%m-%d %H:%M} UTC and has not finished within {limit}"
        )
    elif config.summary:
        summary = config.summary
    elif never_pinged and config.first_ping_within is not None:
        summary = (
            f"No heartbeat from {config.name}: it has never pinged, "
            f"{format_duration(config.first_ping_within)} after Warroom started watching it"
        )
    else:
        silence = format_duration(config.interval + config.grace)
        summary = f"No heartbeat from {config.name}: nothing for over {silence}"
    return AlertEvent(
        action=action,
        dedup_key=_missed_key(config.name),
        alert_type="HeartbeatMissed",
        summary=summary,
        severity=config.severity,
        service=config.service,
        labels={"alertname": "HeartbeatMissed", "heartbeat": config.name},
        annotations={},
        links=[],
        raw={"heartbeat": config.name, "action": action, **detail},
    )


def _failure_event(
    config: HeartbeatConfig, action: Literal["trigger", "resolve"], signal: Signal, detail: dict[str, Any]
) -> AlertEvent:
    """The heartbeat's second alert: its sender reported a failed run (resolved by a successful one)."""
    status = f" (exit status {signal.exit_status})" if signal.exit_status is not None else ""
    annotations: dict[str, Any] = {}
    if signal.exit_status is not None:
        annotations["exit_status"] = str(signal.exit_status)
    if signal.output:
        annotations["output"] = signal.output
    return AlertEvent(
        action=action,
        dedup_key=_failed_key(config.name),
        alert_type="HeartbeatFailed",
        summary=f"{config.name} reported a failed run{status}",
        severity=config.severity,
        service=config.service,
        labels={"alertname": "HeartbeatFailed", "heartbeat": config.name},
        annotations=annotations,
        links=[],
        raw={"heartbeat": config.name, "action": action, **annotations, **detail},
        latest_annotations=True,  # each failed run's own output and exit status
    )


def _locked(session: Session, new: Heartbeat) -> tuple[Heartbeat, bool]:
    """The heartbeat's row, locked, and whether it is ``new``, added because there was none. In a
    savepoint: the first signals of a heartbeat may race, and the loser takes the winner's row."""
    by_name = select(Heartbeat).where(Heartbeat.name == new.name).with_for_update()
    heartbeat = session.scalar(by_name)
    if heartbeat is not None:
        return heartbeat, False
    try:
        with session.begin_nested():
            session.add(new)
            session.flush()
    except IntegrityError:
        return session.scalars(by_name).one(), False
    return new, True


def _check_job(session: Session, heartbeat: Heartbeat, *, again_at: datetime | None = None) -> None:
    """The heartbeat's one waiting deadline check, added unless one is waiting: each ping moves the deadline,
    and the waiting check follows it (``RetryLater``) until a deadline passes with no ping.

    A check that ended without firing (the heartbeat was out of the org file, or no longer watched before
    its first ping) or died must not stop the next ping from starting a new one. So the key names the ping
    and miss counts at the time, which never repeat, and a finished check can be pruned (``retention``).
    ``again_at``: the heartbeat is watched again with no new ping or miss (it was put back in the org file,
    or its missed alert was resolved other than by a ping), so the key names that moment too."""
    prefix = f"{DEADLINE_KEY}{heartbeat.name}:"
    # A waiting check is moved earlier if the deadline came closer (the interval was shortened by a reload).
    if jobs_service.run_by(session, kind=CHECK_KIND, key_prefix=prefix, run_at=heartbeat.due_at):
        return
    jobs_service.enqueue(
        session,
        kind=CHECK_KIND,
        payload={"name": heartbeat.name},
        run_at=heartbeat.due_at,
        idempotency_key=f"{prefix}{heartbeat.pings}:{heartbeat.misses}"
        + (f":again:{again_at.isoformat()}" if again_at is not None else ""),
    )


def ping(
    session: Session, *, org: OrgConfig, name: str, secret: str | None, signal: Signal | None = None
) -> Heartbeat:
    """Record a ping: the next one is due ``interval + grace`` from now. A heartbeat that was missed is
    resolved (its alert resolves, and automation does what it does on a resolve).

    A ``signal`` of a failed run fires (or repeats) the heartbeat's failure alert; a successful one
    resolves it. Either is a sign of life."""
    signal = signal or Signal()
    if signal.start:
        return _start(session, org, name, secret)
    integrations.authenticate_integration(session, secret, IntegrationType.heartbeat)
    config = _configured(org, name)
    _lock_open_alerts(session, name)
    now = utcnow()
    due_at = now + config.interval + config.grace
    heartbeat, _ = _locked(
        session, Heartbeat(name=name, first_ping_at=now, last_ping_at=now, pings=0, due_at=due_at, misses=0)
    )
    if heartbeat.first_ping_at is None:  # watched before its first ping (first_ping_within)
        heartbeat.first_ping_at = now
    if heartbeat.started_at is not None:  # the end of a run that signalled its start
        heartbeat.last_run_seconds = max(0, int((now - heartbeat.started_at).total_seconds()))
        heartbeat.started_at = None
    heartbeat.last_ping_at = now
    heartbeat.pings += 1
    heartbeat.due_at = due_at
    heartbeat.watched_again_at = None  # heard from: no longer only watched
    if heartbeat.missed_at is not None:
        late = format_duration(timedelta(seconds=int((now - heartbeat.missed_at).total_seconds())))
        _ingest(session, org, _event(config, "resolve", {"pinged_at": now.isoformat(), "missing_for": late}))
        heartbeat.missed_at = None
    heartbeat.last_exit_status = signal.exit_status
    if signal.failed:
        # Any active integration key the output shows (another integration's, the heartbeat's own), too.
        signal = replace(signal, output=scrub.scrub_with_active_keys(session, signal.output))
        # The time makes each report its own occurrence of the alert, even with the same output.
        _ingest(session, org, _failure_event(config, "trigger", signal, {"reported_at": now.isoformat()}))
        if heartbeat.failed_at is None:
            heartbeat.failed_at = now
    elif heartbeat.failed_at is not None:
        _ingest(session, org, _failure_event(config, "resolve", signal, {"succeeded_at": now.isoformat()}))
        heartbeat.failed_at = None
    _check_job(session, heartbeat)
    return heartbeat


def _lock_open_alerts(session: Session, name: str) -> None:
    """Lock the heartbeat's open alerts, missed and failed (each after its incident), before the heartbeat's
    row: the order a person's resolve takes (``lock_alert``, then the row in ``watch_after_resolve``), so a
    ping or a check and a resolve at the same moment wait for each other on PostgreSQL instead of
    deadlocking."""
    open_alerts = session.scalars(
        select(Alert.id)
        .where(Alert.scope == SOURCE, Alert.open_dedup_key.in_([_missed_key(name), _failed_key(name)]))
        .order_by(Alert.id)
    ).all()
    for alert_id in open_alerts:
        service.lock_alert(session, alert_id)


def watch_after_resolve(session: Session, org: OrgConfig, alert: Alert) -> datetime | None:
    """``alert`` (locked, with its incident) was just resolved other than by a ping: by a person, with its
    incident, by auto-resolve. When it is one of a heartbeat's alerts, the heartbeat is watched again from
    now, and shows ``watching`` (not ``ok``: it has not been heard from) until its next ping:

    - its missed alert: as if it had just pinged (or, never pinged, as if Warroom had just started watching
      it): the on-call resolved it after restarting Prometheus, and if the Watchdog still is not pinging,
      they must hear again.
    - its failure alert: the failed run counts as handled. The heartbeat is no longer ``failed`` (in
      ``warroom heartbeats`` and /metrics, which say whether that alert fires), its deadline stays the last
      report's, and the next failed run fires a new alert.

    A note on the alert (and its incident's timeline) says so. The deadline now watched, or None when none is
    (not a heartbeat's alert; a heartbeat out of the org file, whose reload resolved it; one never pinged and
    not watched before its first ping; one still missed)."""
    prefix = _missed_key("")
    name = alert.dedup_key.removeprefix(prefix)
    failure = name.endswith(FAILED_SUFFIX)
    name = name.removesuffix(FAILED_SUFFIX)
    if alert.scope != SOURCE or not alert.dedup_key.startswith(prefix) or ":" in name:
        return None
    config = org.automation.heartbeat(name)
    if config is None:
        return None
    heartbeat = session.scalar(select(Heartbeat).where(Heartbeat.name == name).with_for_update())
    if failure:
        return _failure_handled(session, org, alert, heartbeat)
    if heartbeat is None or heartbeat.missed_at is None:
        return None
    heartbeat.missed_at = None  # its alert is no longer firing: ``warroom heartbeats`` and /metrics follow
    now = utcnow()
    heartbeat.watched_again_at = now
    if heartbeat.last_ping_at is not None:
        heartbeat.due_at = now + config.interval + config.grace
    elif config.first_ping_within is not None:  # never pinged: as when Warroom started watching it
        heartbeat.due_at = now + config.first_ping_within
    else:
        return None  # a run's time limit fired before any ping: its first ping starts the watch
    _check_job(session, heartbeat, again_at=now)
    service.add_note(
        session,
        ref=alert.id,
        body=f"heartbeat {name} is watched again: its next ping is due by "
        f"{heartbeat.due_at:%Y-%m-%d %H:%M:%S} UTC, or a new alert fires",
        author=automation.PERFORMER,
    )
    return heartbeat.due_at


def _failure_handled(
    session: Session, org: OrgConfig, alert: Alert, heartbeat: Heartbeat | None
) -> datetime | None:
    """The heartbeat's failure alert was resolved by a person (or with its incident, or by auto-resolve)."""
    if heartbeat is None or heartbeat.failed_at is None:
        return None
    now = utcnow()
    heartbeat.failed_at = None  # its alert no longer fires: ``warroom heartbeats`` and /metrics follow
    heartbeat.watched_again_at = now
    due_at = next_due_at(org, heartbeat, now)
    name = heartbeat.name
    if heartbeat.missed_at is not None:
        said = f"heartbeat {name}'s next failed run fires a new alert (its missed alert still fires)"
    elif due_at is not None:
        said = (
            f"heartbeat {name} is watched again: its next ping is due by {due_at:%Y-%m-%d %H:%M:%S} UTC, "
            "and a failed run fires a new alert"
        )
    else:
        said = f"heartbeat {name} is watched again: its next failed run fires a new alert"
    service.add_note(session, ref=alert.id, body=said, author=automation.PERFORMER)
    return due_at


def check_sender(session: Session, *, org: OrgConfig, name: str, secret: str | None) -> None:
    """What a ping or a report is refused for before its body is read: a missing, unknown, revoked or wrong
    kind of key (401/403), or a heartbeat the org file does not name (404). Writes nothing: ``ping`` checks
    again, and records the key's use."""
    integrations.authenticate_integration(session, secret, IntegrationType.heartbeat, record_use=False)
    _configured(org, name)


def _start(session: Session, org: OrgConfig, name: str, secret: str | None) -> Heartbeat:
    """A run began. It moves no deadline; with ``max_runtime``, a check at start + max_runtime fires the
    missed alert if the run has not ended (a ping, or a failure) by then."""
    integrations.authenticate_integration(session, secret, IntegrationType.heartbeat)
    config = _configured(org, name)
    now = utcnow()
    # Started before its first ping: the row begins here, and its deadline is watched from that first ping.
    new = Heartbeat(name=name, pings=0, due_at=now + config.interval + config.grace, misses=0)
    heartbeat, _ = _locked(session, new)
    heartbeat.started_at = now
    if config.max_runtime is not None:
        jobs_service.enqueue(
            session,
            kind=CHECK_KIND,
            payload={"name": name, "run_started_at": now.isoformat()},
            run_at=now + config.max_runtime,
            idempotency_key=f"heartbeat:{name}:run:{now.isoformat()}",
        )
    return heartbeat


def _ingest(session: Session, org: OrgConfig, event: AlertEvent) -> Ingested:
    return service.ingest(session, org=org, source=SOURCE, events=[event])


@job_handler(CHECK_KIND)
def check(context: AppContext, session: Session, job: Job) -> dict[str, Any]:
    """At the deadline: fire the heartbeat's alert if no ping moved it; else wait for the new deadline."""
    name = job.payload["name"]
    # As a ping does: a person resolving its failure alert (or that alert's incident) at this moment takes
    # them first and then the row, and a missed alert fired now may join that incident.
    _lock_open_alerts(session, name)
    heartbeat = session.scalar(select(Heartbeat).where(Heartbeat.name == name).with_for_update())
    config = context.org.automation.heartbeat(name)
    if heartbeat is None or config is None:
        return {"fired": False, "reason": "no longer configured"}
    now = utcnow()
    run_started_at = job.payload.get("run_started_at")
    if run_started_at is not None:
        # A run's time limit: only while that very run is still going.
        started = datetime.fromisoformat(run_started_at)
        if heartbeat.started_at != started:
            return {"fired": False, "reason": "the run ended, or another one started"}
        if heartbeat.missed_at is not None:
            return {"fired": False, "reason": "already missed"}
        return _fire(context, session, heartbeat, config, now, running_since=started)
    if heartbeat.due_at > now:
        raise RetryLater(heartbeat.due_at - now, f"pinged; next ping due at {heartbeat.due_at.isoformat()}")
    if heartbeat.missed_at is not None:
        return {"fired": False, "reason": "already missed"}
    never_pinged = heartbeat.last_ping_at is None
    if never_pinged and config.first_ping_within is None:
        return {"fired": False, "reason": "no longer watched before its first ping"}
    return _fire(context, session, heartbeat, config, now, never_pinged=never_pinged)


def _fire(
    context: AppContext,
    session: Session,
    heartbeat: Heartbeat,
    config: HeartbeatConfig,
    now: datetime,
    *,
    never_pinged: bool = False,
    running_since: datetime | None = None,
) -> dict[str, Any]:
    heartbeat.missed_at = now
    heartbeat.misses += 1  # the next ping schedules a new check job
    detail = {
        "last_ping_at": heartbeat.last_ping_at.isoformat() if heartbeat.last_ping_at else None,
        "due_at": heartbeat.due_at.isoformat(),
    }
    if running_since is not None:
        detail["run_started_at"] = running_since.isoformat()
    event = _event(config, "trigger", detail, never_pinged=never_pinged, running_since=running_since)
    result = _ingest(session, context.org, event)
    return {"fired": True, "alert": result.alerts[0].id}


def watch_unpinged(session: Session, org: OrgConfig) -> int:
    """At startup: start watching each heartbeat with ``first_ping_within`` that has no row yet (it never
    pinged, and was not watched before). A restart keeps the first deadline: the row is there."""
    watched = 0
    now = utcnow()
    existing = set(session.scalars(select(Heartbeat.name)))
    for config in org.automation.heartbeats:
        if config.first_ping_within is None or config.name in existing:
            continue
        # Another process starting at the same moment (or a first ping) may win the row.
        heartbeat, created = _locked(
            session, Heartbeat(name=config.name, pings=0, due_at=now + config.first_ping_within, misses=0)
        )
        if created:
            _check_job(session, heartbeat)
            watched += 1
    return watched


def follow_org_file(session: Session, org: OrgConfig) -> list[str]:
    """After a reload (and at startup): bring the heartbeats in the database in line with the org file.

    - A heartbeat whose ``interval``/``grace`` (or, before its first ping, ``first_ping_within``) changed gets
      its deadline computed again from its last ping (or from when Warroom started watching it), and its
      waiting check is moved to it: earlier at once, later by the check itself, which waits for the deadline
      it finds. A deadline already past is missed at once, by that check (once). Only a heartbeat being
      watched (a check waiting) is moved; one already missed stays missed until its next ping (or its alert
      is resolved: ``watch_after_resolve``).
    - A heartbeat taken out of the org file can no longer be pinged: its waiting checks are cancelled, and
      its open alerts (missed, failed) are resolved by automation with a note that says why.
    - One put back (or whose check ended in a process that did not have it) is watched again from now: its
      deadline is ``interval + grace`` away (``first_ping_within``, if it never pinged), as if it had just
      pinged (or Warroom had just started watching it), so a sender that stays dead fires.

    Each row is locked, as a ping locks it, so processes that run this at once, and pings, take turns; what
    it computes depends only on the row and the file, so the second finds nothing left to do. Returns what
    it did that a person should know (for the log)."""
    said: list[str] = []
    rows = session.scalars(select(Heartbeat).order_by(Heartbeat.id).with_for_update()).all()
    for heartbeat in rows:
        config = org.automation.heartbeat(heartbeat.name)
        if config is None:
            said.extend(_retire(session, org, heartbeat))
        else:
            said.extend(_follow(session, heartbeat, config))
    return said


def _follow(session: Session, heartbeat: Heartbeat, config: HeartbeatConfig) -> list[str]:
    if heartbeat.missed_at is not None:
        return []  # already missed: the next ping (or its alert's resolve) sets a deadline from the file
    prefix = f"{DEADLINE_KEY}{heartbeat.name}:"
    waiting = (
        Job.kind == CHECK_KIND,
        Job.status.in_([JobStatus.pending, JobStatus.running]),
        Job.idempotency_key.startswith(prefix, autoescape=True),
    )
    watched_since = session.scalar(select(func.min(Job.created_at)).where(*waiting))
    if watched_since is None:
        # Its check ended with nothing missed: taken out of the file and put back (or checked by a process
        # that did not have it). Watched again from now, or a sender that stays dead would never fire.
        return _watch_again(session, heartbeat, config)
    if heartbeat.last_ping_at is not None:
        # From its last ping, or from when it was watched again (put back in the file) if that came later.
        due_at = max(heartbeat.last_ping_at, watched_since) + config.interval + config.grace
    elif config.first_ping_within is not None:
        # Never pinged: its one check was added when Warroom started watching it (``watch_unpinged``).
        due_at = watched_since + config.first_ping_within
    else:
        return []  # no longer watched before its first ping: the waiting check ends itself
    if due_at == heartbeat.due_at:
        return []
    heartbeat.due_at = due_at
    jobs_service.run_by(session, kind=CHECK_KIND, key_prefix=prefix, run_at=due_at)
    return []


def _watch_again(session: Session, heartbeat: Heartbeat, config: HeartbeatConfig) -> list[str]:
    """A heartbeat no check watches, not missed: its deadline counts from now, as a ping's would (or, never
    pinged, as ``watch_unpinged``'s would), and a check waits for it. One never pinged without
    ``first_ping_within`` is not watched until its first ping, as a new entry."""
    now = utcnow()
    if heartbeat.last_ping_at is not None:
        heartbeat.due_at = now + config.interval + config.grace
    elif config.first_ping_within is not None:
        heartbeat.due_at = now + config.first_ping_within
    else:
        return []
    heartbeat.watched_again_at = now
    _check_job(session, heartbeat, again_at=now)
    return [
        f"heartbeat {heartbeat.name} is watched again: its next ping is due by "
        f"{heartbeat.due_at:%Y-%m-%d %H:%M:%S} UTC"
    ]


def _retire(session: Session, org: OrgConfig, heartbeat: Heartbeat) -> list[str]:
    name = heartbeat.name
    jobs_service.cancel(session, kind=CHECK_KIND, key_prefix=f"{DEADLINE_KEY}{name}:")
    jobs_service.cancel(session, kind=CHECK_KIND, key_prefix=f"heartbeat:{name}:run:")
    open_alerts = session.scalars(
        select(Alert)
        .where(
            Alert.scope == SOURCE,
            Alert.open_dedup_key.in_([_missed_key(name), _failed_key(name)]),
        )
        .order_by(Alert.id)
        .with_for_update()
    ).all()
    said = []
    for alert in open_alerts:
        note = (
            f"heartbeat {name} was removed from the org file, so no ping can resolve this alert: "
            "resolved on reload"
        )
        service.resolve_by_system(session, org=org, alert=alert, note=note)
        said.append(f"heartbeat {name} is no longer in the org file: its open alert {alert.ref} was resolved")
    # Put back later, it starts afresh: watched again from that reload (``_watch_again``). A run it was in
    # ended unheard (its report got 404) and its time limit is cancelled: not shown running ever after.
    heartbeat.missed_at = None
    heartbeat.failed_at = None
    heartbeat.started_at = None
    return said


HeartbeatState = Literal["never pinged", "ok", "running", "late", "watching", "missed", "failed"]


def state(heartbeat: Heartbeat | None, now: datetime) -> HeartbeatState:
    """What ``warroom heartbeats`` and the API show; ``watching``: watched again without a ping since (its
    alert was resolved by a person, with its incident or by auto-resolve, or it was put back in the org
    file), until its deadline (then ``late``) or its next ping (then ``ok``)."""
    if heartbeat is not None and heartbeat.missed_at is not None:
        return "missed"  # before failed: a sender that went quiet after failing is the worse news
    if heartbeat is not None and heartbeat.failed_at is not None:
        return "failed"
    if heartbeat is not None and heartbeat.started_at is not None:
        return "running"
    if heartbeat is None or heartbeat.last_ping_at is None:
        return "never pinged"
    if heartbeat.due_at <= now:
        return "late"
    return "watching" if heartbeat.watched_again_at is not None else "ok"


def next_due_at(org: OrgConfig, heartbeat: Heartbeat | None, now: datetime | None = None) -> datetime | None:
    """When the heartbeat's missed alert fires unless a ping comes first: its deadline while a check waits for
    it, or a run's time limit (``max_runtime``) still ahead, whichever comes first. None when nothing is
    watched: never pinged and not watched before its first ping (a ``/start`` alone only marks the run), or
    missed (its alert fires already; the next ping resolves it)."""
    config = org.automation.heartbeat(heartbeat.name) if heartbeat is not None else None
    if heartbeat is None or config is None or heartbeat.missed_at is not None:
        return None
    deadlines = []
    if heartbeat.last_ping_at is not None or config.first_ping_within is not None:
        deadlines.append(heartbeat.due_at)
    if heartbeat.started_at is not None and config.max_runtime is not None:
        # Once past, its check has fired (or a person resolved what it fired): no longer watched.
        run_limit = heartbeat.started_at + config.max_runtime
        if run_limit > (now or utcnow()):
            deadlines.append(run_limit)
    return min(deadlines, default=None)


def list_heartbeats(session: Session, org: OrgConfig) -> list[HeartbeatRead]:
    """Every heartbeat of the org file, with its pings (none for those that never pinged)."""
    rows = {row.name: row for row in session.scalars(select(Heartbeat))}
    now = utcnow()
    listed = []
    for config in org.automation.heartbeats:
        row = rows.get(config.name)
        listed.append(
            HeartbeatRead(
                name=config.name,
                interval=config.interval,
                grace=config.grace,
                service=config.service,
                state=state(row, now),
                pings=row.pings if row else 0,
                first_ping_at=row.first_ping_at if row else None,
                last_ping_at=row.last_ping_at if row else None,
                due_at=next_due_at(org, row, now),
                missed_at=row.missed_at if row else None,
                failed_at=row.failed_at if row else None,
                watched_again_at=row.watched_again_at if row else None,
                last_exit_status=row.last_exit_status if row else None,
                started_at=row.started_at if row else None,
                last_run=timedelta(seconds=row.last_run_seconds)
                if row and row.last_run_seconds is not None
                else None,
            )
        )
    return listed
