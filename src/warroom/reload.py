"""Reloading the org file in a running process, as Alertmanager's ``/-/reload`` does: ``kill -HUP`` the
process, or ``POST /api/v1/config/reload`` (``warroom config reload``). Rules, webhook formats, enrichment,
inhibit rules, heartbeats, schedules: what the file says applies from the next request on, without a restart
that would drop connections in flight.

A file with problems is refused, with every problem, and the running configuration stays; so is a file that
has no services, no escalation policies, no automation rules, no webhook formats or no heartbeats where the
running one has some (a truncated file, a half-finished edit), unless the reload is forced (``warroom config
reload --force``). This holds for every way in: the API, ``kill -HUP`` and a reload announced by another
process (which follows it forced only if that one was). A reload that is taken
says what is worth a look (``ConfigStatus.warnings``, logged too): a section it emptied, an escalation running
on a policy the new file no longer has (the escalation's next deadline hands it over). After a reload the
chains of recurring jobs are started for entries that are new (a status page to poll, a maintenance schedule,
auto-resolve, a heartbeat watched before its first ping); the jobs of entries that are gone find them gone and
stop. Entries that changed or went away are brought in line at once (``start_recurring``): heartbeat deadlines
follow a new interval, removed heartbeats' and status pages' open alerts are resolved, and a maintenance
schedule's chain and upcoming windows follow its new rule (or stop).

Each process holds its own copy. A reload through the API is also announced in the database (a row of
``config_reloads``): every other process that serves or works (``warroom worker`` too) looks for a newer row
every ``reload_poll_seconds`` and then reads its own org file again, so one ``warroom config reload`` reaches
them all, on any machine. ``kill -HUP`` reloads the one process it is sent to.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import timedelta

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from warroom.alerts import automation
from warroom.alerts.config import IncidentAction, file_warnings
from warroom.alerts.digest import schedule_digest
from warroom.alerts.expiry import schedule_sweeps
from warroom.alerts.heartbeats import follow_org_file, watch_unpinged
from warroom.alerts.maintenance import follow_schedules, schedule_windows
from warroom.alerts.models import Alert, AlertStatus
from warroom.alerts.retention import schedule_pruning
from warroom.alerts.status_pages import record_pages, resolve_removed_pages, schedule_polls
from warroom.auth import integrations
from warroom.comms.service import follow_cadences
from warroom.context import AppContext
from warroom.db import unavailable_reason, utcnow
from warroom.durations import format_duration
from warroom.incidents.models import OPEN_STATUSES, Incident
from warroom.jobs.models import ConfigReload
from warroom.oncall import paging
from warroom.oncall import service as oncall_service
from warroom.orgconfig import ConfigError, ConfigProblem, ConfigStatus, OrgConfig, load_org_config

log = logging.getLogger("warroom.reload")


def _counted(count: int, one: str, many: str) -> str:
    return f"{count} {one if count == 1 else many}"


def summary(org: OrgConfig) -> str:
    """What an org file holds, in one line (``config check`` prints it too)."""
    automation = org.automation
    counts = [
        (len(org.services), "service", "services"),
        (len(org.severities), "severity level", "severity levels"),
        (len(org.audiences), "audience", "audiences"),
        (len(org.severity_rules), "suggestion rule", "suggestion rules"),
        (len(org.people), "person", "people"),
        (len(org.teams), "team", "teams"),
        (len(org.schedules), "schedule", "schedules"),
        (len(org.escalation_policies), "escalation policy", "escalation policies"),
        (len(automation.rules), "automation rule", "automation rules"),
        (len(automation.enrich), "enrichment entry", "enrichment entries"),
        (len(automation.inhibit_rules), "inhibit rule", "inhibit rules"),
        (len(automation.webhook_formats), "webhook format", "webhook formats"),
        (len(automation.heartbeats), "heartbeat", "heartbeats"),
        (len(automation.maintenance_schedules), "maintenance schedule", "maintenance schedules"),
        (len(automation.auto_resolve), "auto_resolve entry", "auto_resolve entries"),
        (len(automation.status_pages), "status page", "status pages"),
        (len(automation.email_rules), "email rule", "email rules"),
    ]
    shown = [_counted(*count) for count in counts]
    shown[1] += f" ({', '.join(org.severity_ids)})"
    return ", ".join(shown)


NOTHING_ROUTED = (
    "it defines no services, escalation policies or automation rules: every alert would go unrouted and "
    "nobody would be paged"
)


def pages_and_routes(org: OrgConfig) -> list[str]:
    """What of the file routes alerts or pages people, as "3 services": its services, escalation policies (a
    team's generated one too) and automation rules; empty when it has none of them."""
    counts = [
        (len(org.services), "service", "services"),
        (len(oncall_service.list_policies(org)), "escalation policy", "escalation policies"),
        (len(org.automation.rules), "automation rule", "automation rules"),
    ]
    return [_counted(*count) for count in counts if count[0]]


def _sections(org: OrgConfig) -> dict[str, int]:
    """How many entries the sections a reload may empty have (escalation policies: a team's generated one
    too, as ``pages_and_routes`` counts them)."""
    return {
        "services": len(org.services),
        "escalation policies": len(oncall_service.list_policies(org)),
        "automation rules": len(org.automation.rules),
        "inhibit rules": len(org.automation.inhibit_rules),
        "webhook formats": len(org.automation.webhook_formats),
        "heartbeats": len(org.automation.heartbeats),
        "enrichment entries": len(org.automation.enrich),
        "maintenance schedules": len(org.automation.maintenance_schedules),
        "auto_resolve entries": len(org.automation.auto_resolve),
        "status pages": len(org.automation.status_pages),
        "email rules": len(org.automation.email_rules),
    }


# The sections a reload empties only when forced: one entry's name, and what emptying the section does. A
# truncated file or a half-finished edit loses them as surely as the rules; inhibit rules going is only warned
# of (a file may well drop its last one).
GUARDED_SECTIONS = {
    "services": ("service", "incidents opened from alerts would name no service"),
    "escalation policies": ("escalation policy", "nobody would be paged"),
    "automation rules": ("automation rule", "every alert would go unrouted"),
    "webhook formats": ("webhook format", "webhook deliveries in those formats would be refused (404)"),
    "heartbeats": ("heartbeat", "missed heartbeats would no longer alert (their pings refused, 404)"),
}
FORCE_HINT = (
    "if that is meant, reload with 'warroom config reload --force' (POST /api/v1/config/reload?force=true)"
)


def _listed(items: list[str], last: str = "and") -> str:
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} {last} {items[-1]}"


def sections_lost(running: OrgConfig, new: OrgConfig) -> dict[str, int]:
    """The guarded sections ``new`` has none of where ``running`` has some, with the running file's count."""
    before, after = _sections(running), _sections(new)
    return {name: before[name] for name in GUARDED_SECTIONS if before[name] and not after[name]}


def refuse_sections_lost(running: OrgConfig, new: OrgConfig, path: str, *, force: bool) -> None:
    """ConfigError unless forced, when ``new`` has no services, escalation policies, automation rules,
    webhook formats or heartbeats where ``running`` has some: a file cut off before its ``automation:``
    section, or an edit half done, would leave alerts unrouted, nobody paged and webhook tools refused. It
    names every section lost; any one is enough."""
    lost = sections_lost(running, new)
    if force or not lost:
        return
    had = [_counted(count, GUARDED_SECTIONS[name][0], name) for name, count in lost.items()]
    effects = [GUARDED_SECTIONS[name][1] for name in lost]
    message = (
        f"it has no {_listed(list(lost), 'or')}, where the running file has {_listed(had)} (a truncated "
        f"file, a half-finished edit?): {_listed(effects)}; {FORCE_HINT}"
    )
    raise ConfigError(path, [ConfigProblem("(file)", None, message)])


def reload_warnings(context: AppContext, new: OrgConfig) -> list[str]:
    """What a reload to ``new`` is worth a look for: sections it empties, escalations running on policies it
    no longer has, and open alert groups of rules it drops, or whose group_by or group_window it changes so
    that their next alerts open new incidents (the database is read for those; if it cannot be now, that is
    said instead), and maintenance schedules with no occurrence left or a COUNT from the rules' start."""
    before = _sections(context.org)
    warnings = [
        f"it has no {section}, where the running file has {before[section]}"
        for section, count in _sections(new).items()
        if count == 0 and before[section]
    ]
    warnings.extend(file_warnings(new, utcnow()))
    try:
        with context.db.read() as session:
            warnings.extend(paging.escalations_losing_policy(session, new))
            warnings.extend(automation.groups_losing_rule(session, context.org, new))
            warnings.extend(groups_regrouped(session, context.org, new))
    except Exception as exc:  # a database down for a moment: the file is taken either way
        warnings.append(f"could not look for escalations and alert groups the file's changes cut off ({exc})")
    return warnings


def groups_regrouped(session: Session, running: OrgConfig, new: OrgConfig) -> list[str]:
    """Before a reload to ``new``: the rules both files have whose open groups the new one splits. A group's
    key holds its group-by values, so a rule that groups by other labels (its own ``group_by``, or
    ``automation.group_by`` that it follows) starts new groups; one with a shorter ``group_window`` (or none)
    lets go of groups seen within the old window but not the new one. Either way their next alerts open new
    incidents (and page) instead of joining their open ones: worth a warning, as a renamed rule is."""
    after = {rule.name: rule for rule in new.automation.rules}
    warnings = []
    for rule in running.automation.rules:
        changed = after.get(rule.name)
        if rule.incident is None or changed is None or changed.incident is None:
            continue  # a dropped or renamed rule is warned of apart (``groups_losing_rule``)
        was = automation.group_window(running.automation, rule.incident)
        window = automation.group_window(new.automation, changed.incident)
        if was <= timedelta(0):
            continue  # it grouped nothing
        group_by = _group_by(running, rule.incident)
        new_by = _group_by(new, changed.incident)
        if group_by != new_by:
            why = f"its group_by changes from {group_by} to {new_by}"
            kept = None
        elif window < was:
            why = f"its group_window shortens from {format_duration(was)} to {format_duration(window)}"
            kept = window
        else:
            continue
        refs = _open_groups(session, rule.name, was, kept)
        if refs:
            incidents = _counted(len(refs), "open incident", "open incidents")
            warnings.append(
                f"rule {rule.name!r} groups alerts into {incidents} ({_refs(refs)}) and {why}; their "
                "next alerts open new incidents instead of joining them"
            )
    return warnings


def _group_by(org: OrgConfig, action: IncidentAction) -> list[str]:
    return action.group_by if action.group_by is not None else org.automation.group_by


def _open_groups(session: Session, rule: str, window: timedelta, kept: timedelta | None) -> list[str]:
    """The open incidents that alerts of ``rule``'s groups join now (an alert of the group seen within
    ``window``, or still open), as refs; but those an alert would still join with a window of ``kept``
    (None: none would)."""
    prefix = f"{rule}|"
    now = utcnow()
    rows = session.execute(
        select(Alert.incident_id, Alert.group_key, Alert.last_seen_at, Alert.status)
        .join(Incident, Incident.id == Alert.incident_id)
        .where(
            Incident.status.in_(OPEN_STATUSES),
            func.substr(Alert.group_key, 1, len(prefix)) == prefix,
            or_(Alert.last_seen_at >= now - window, Alert.status != AlertStatus.resolved),
        )
    ).all()
    still: set[str | None] = set()
    if kept is not None and kept > timedelta(0):
        still = {
            row.group_key
            for row in rows
            if row.status != AlertStatus.resolved or row.last_seen_at >= now - kept
        }
    ids = sorted({row.incident_id for row in rows if row.group_key not in still})
    return [f"INC-{incident_id}" for incident_id in ids]


def _refs(refs: list[str], limit: int = 10) -> str:
    shown = ", ".join(refs[:limit])
    return shown + (f" and {len(refs) - limit} more" if len(refs) > limit else "")


def status(context: AppContext) -> ConfigStatus:
    path = context.settings.config
    return ConfigStatus(
        file=str(path) if path is not None else None,
        loaded_at=context.org_loaded_at,
        summary=summary(context.org),
    )


def start_recurring(context: AppContext) -> None:
    """Start the chains of recurring jobs the org file asks for that have none pending (a new entry, or a
    fresh database): status page polls, recurring maintenance windows, auto-resolve sweeps, retention, the
    unrouted digest, and the first deadline of heartbeats watched before their first ping; update reminders
    follow the severities' ``update_every``. Bring changed and
    removed entries in line: heartbeat deadlines follow a new interval, removed heartbeats' and status pages'
    open alerts are resolved, a maintenance schedule's chain and upcoming windows follow its new rule (or
    stop). Each step is safe to run again, at every start and in every process at once. Warn of integrations
    whose service is gone, and of names several live integrations share."""
    with context.db.write() as session:
        # First: a poll in a process that has not read this file locks its page's record before it writes.
        record_pages(session, context.org)
        schedule_polls(session, context.org)
        said = follow_schedules(session, context.org)
        schedule_windows(session, context.org)
        said += follow_org_file(session, context.org)
        said += resolve_removed_pages(session, context.org)
        watch_unpinged(session, context.org)
        schedule_sweeps(session, context.org)
        schedule_pruning(session)
        schedule_digest(session, context.org, utcnow())
        follow_cadences(session, context.org)
        listed = integrations.list_integrations(session, context.org)
    for line in said:
        log.warning("%s", line)
    for integration in integrations.with_lost_service(listed):
        log.warning("%s", integrations.lost_service_warning(integration))
    for name, ids in integrations.shared_names(listed).items():
        log.warning("%s", integrations.shared_name_warning(name, ids))


def reload_org(context: AppContext, *, announce_as: str | None = None, force: bool = False) -> ConfigStatus:
    """Read the org file again and run with it; ConfigError if it has problems (the running one stays), or
    if it empties a section the running one has of those ``GUARDED_SECTIONS`` names and ``force`` is not
    given. ``announce_as``:
    tell the other processes to do the same (the performer is recorded, and ``force``)."""
    path = context.settings.config
    org = load_org_config(path)
    refuse_sections_lost(context.org, org, str(path or "(no org file)"), force=force)
    warnings = reload_warnings(context, org)
    if announce_as is not None:
        # Announced before this process works under the new file: a worker elsewhere that claims a job this
        # process enqueues from now on (a rule's page of a new policy, a new schedule's window) sees the
        # announcement and reads the file first (``ReloadWatcher.catch_up``).
        announce(context, announce_as, forced=force)
    context.org = org
    context.org_loaded_at = utcnow()
    loaded = status(context).model_copy(update={"warnings": warnings})
    log.info("org file %s reloaded: %s", loaded.file or "(none: defaults)", loaded.summary)
    for warning in warnings:
        log.warning("org file %s reloaded, but %s", loaded.file or "(none: defaults)", warning)
    try:
        start_recurring(context)
    except Exception as exc:
        # The new file is in effect either way; only its new recurring work waits (a database that cannot be
        # written now). The next reload or start begins it.
        log.warning("org file reloaded, but its recurring jobs could not be started now: %s", exc)
    return loaded


def announce(context: AppContext, performer: str, *, forced: bool = False) -> None:
    """Ask every other process to read its org file again (``forced``: as this one did); this one has (so it
    skips its own row)."""
    try:
        with context.db.write() as session:
            row = ConfigReload(requested_at=utcnow(), requested_by=performer, forced=forced)
            session.add(row)
            session.flush()
            context.reloads_seen = max(context.reloads_seen, row.id)
    except Exception as exc:
        # This process runs with the new file either way; the others keep theirs until the next reload.
        log.warning("org file reloaded here, but the other processes could not be told: %s", exc)


def latest_reload(context: AppContext) -> int:
    """The newest announced reload (0: none)."""
    with context.db.read() as session:
        return session.scalar(select(func.max(ConfigReload.id))) or 0


def follow_announced(context: AppContext) -> bool:
    """Reload if another process announced a reload since this one last looked (forced if any of those
    was); whether it did."""
    with context.db.read() as session:
        rows = session.execute(
            select(ConfigReload.id, ConfigReload.forced).where(ConfigReload.id > context.reloads_seen)
        ).all()
    # Read again after the query: this process may have announced one of these meanwhile (``announce`` marks
    # it seen before it commits, so a row of its own that the query found is seen by now), and must not
    # read the file again for its own reload.
    seen = context.reloads_seen
    rows = [row for row in rows if row.id > seen]
    if not rows:
        return False
    latest = max(row.id for row in rows)
    forced = any(row.forced for row in rows)
    context.reloads_seen = latest
    log.info(
        "a reload was announced (config_reloads %d%s): reading the org file again",
        latest,
        ", forced" if forced else "",
    )
    reload_logged(context, force=forced)
    return True


# How often a poll that keeps failing for the same reason is logged again.
POLL_FAILURE_LOG_SECONDS = 60.0


class ReloadWatcher:
    """A thread that follows announced reloads (``follow_announced``) every ``reload_poll_seconds``, and
    ``catch_up`` for a worker that must not wait for the next poll."""

    def __init__(self, context: AppContext) -> None:
        self.context = context
        self.stop_event = threading.Event()
        self.thread = threading.Thread(target=self._run, name="warroom-reload-watcher", daemon=True)
        self.lock = threading.Lock()  # one reload at a time: the poll's and a worker's catch-up

    def start(self) -> None:
        try:
            # What was announced before this process started is in the file it read at start.
            self.context.reloads_seen = max(self.context.reloads_seen, latest_reload(self.context))
        except Exception as exc:
            log.warning(
                "could not read the announced reloads now (%s); looking again later", unavailable_reason(exc)
            )
        self.context.catch_up_reloads = self.catch_up
        self.thread.start()

    def catch_up(self) -> None:
        """Follow a reload announced since the last poll, now. A worker calls this before running the jobs it
        claimed: a job another process enqueued after reloading (a page of a policy the file just gained)
        must not run under the file this process read before."""
        if latest_reload(self.context) <= self.context.reloads_seen:
            return
        with self.lock:
            follow_announced(self.context)

    def _run(self) -> None:
        # A database down for a while fails every poll: its first failure is logged (one line), then only a
        # new reason or once a minute, and the poll that works again.
        failing: str | None = None
        logged_at = 0.0
        while not self.stop_event.wait(self.context.settings.reload_poll_seconds):
            try:
                with self.lock:
                    follow_announced(self.context)
            except Exception as exc:  # look again at the next poll
                reason = unavailable_reason(exc)
                if reason != failing or time.monotonic() - logged_at >= POLL_FAILURE_LOG_SECONDS:
                    log.warning("could not look for announced reloads: %s", reason)
                    logged_at = time.monotonic()
                failing = reason
                continue
            if failing is not None:
                log.info("looking for announced reloads works again")
                failing = None

    def stop(self) -> None:
        self.stop_event.set()
        self.context.catch_up_reloads = None
        self.thread.join(5)


def reload_logged(context: AppContext, *, force: bool = False) -> None:
    """``reload_org`` for a signal or an announced reload: problems are logged, not raised."""
    try:
        reload_org(context, force=force)
    except ConfigError as exc:
        log.error(
            "org file %s not reloaded, the running one stays: %s", exc.path, "; ".join(map(str, exc.problems))
        )
    except Exception:
        log.exception("org file reload failed; the running one stays")
