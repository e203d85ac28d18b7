"""Automation rules: what happens to an alert once it is stored. Everything here is done as ``automation``
and recorded on the incident's timeline."""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import orjson
from jinja2 import Template
from sqlalchemy import ColumnElement, String, and_, case, cast, func, literal, or_, select
from sqlalchemy.orm import Session, aliased
from sqlalchemy.sql.expression import Exists, ScalarSelect

from warroom.alerts import enrichment, follow, inhibition
from warroom.alerts import metrics as alert_metrics
from warroom.alerts.adapters import FALLBACK_TYPES, AlertEvent
from warroom.alerts.config import (
    AlertFacts,
    AutomationConfig,
    AutomationRule,
    IncidentAction,
    alert_name,
    matrix_severity_map,
    template_environment,
)
from warroom.alerts.handlers import failure_text, schedule_handlers
from warroom.alerts.models import Alert, AlertNote, AlertStatus, PagedOpening
from warroom.alerts.schemas import IncidentPreview, RoutingPreview, RuleVerdict
from warroom.auth.models import IntegrationKey, IntegrationType
from warroom.db import utcnow
from warroom.durations import format_duration
from warroom.errors import InvalidInput
from warroom.events import DomainEvent, publish
from warroom.fields import one_line
from warroom.incidents import service as incident_service
from warroom.incidents.models import (
    OPEN_STATUSES,
    Incident,
    IncidentService,
    IncidentStatus,
    TimelineEntry,
    TimelineKind,
)
from warroom.incidents.schemas import (
    Assessment,
    CommunicationCreate,
    IncidentCreate,
    IncidentUpdate,
    cut_long_text,
)
from warroom.jobs import service as jobs_service
from warroom.jobs.models import Job, JobStatus
from warroom.oncall import paging
from warroom.oncall import service as oncall_service
from warroom.orgconfig import OrgConfig

log = logging.getLogger(__name__)

PERFORMER = "automation"

_ASSESSMENT_SOURCE = {
    "customer-report": "customer-report",
    "internal-discovery": "internal-discovery",
}


def rule_mismatch(
    org: OrgConfig, rule: AutomationRule, now: datetime, service: str | None, *, when: str = "now"
) -> str | None:
    """Why a rule's ``during`` keeps it from applying to an alert of ``service`` at ``now``, in words (None:
    it may apply), ``now`` read as ``when`` ("then": a later moment). Business hours are those of the
    service's owner team when it has its own."""
    if rule.during == "always":
        return None
    hours, team = org.business_hours_for([service])
    whose = f"the business hours of team {team}" if team else "business hours"
    open_now = hours.is_open(now)
    if rule.during == "business_hours" and not open_now:
        return f"outside {whose} {when} (the rule is for business hours)"
    if rule.during == "outside_business_hours" and open_now:
        return f"within {whose} {when} (the rule is for outside them)"
    return None


def matching_rules(
    org: OrgConfig, alert: Alert, now: datetime, integration: str | None = None
) -> list[AutomationRule]:
    """The rules that apply to ``alert``, which came in through the integration named ``integration``."""
    automation = org.automation
    facts = AlertFacts.of(alert, integration)
    found = []
    for rule in automation.rules:
        if rule.match.accepts(facts) and rule_mismatch(org, rule, now, alert.service) is None:
            found.append(rule)
            if automation.mode == "first":
                break
    return found


def integration_name(session: Session, org: OrgConfig, alert: Alert) -> str | None:
    """The name of the integration an alert came in through, when a condition asks (one lookup per
    integration and session: the session's identity map keeps it)."""
    if alert.integration_id is None or not org.automation.matches_integrations:
        return None
    integration = session.get(IntegrationKey, alert.integration_id)
    return integration.name if integration is not None else None


def template_alert(alert: Alert) -> dict[str, Any]:
    """What a rule template's ``alert`` holds (``config.ALERT_TEMPLATE_FIELDS``)."""
    return {
        "id": alert.id,
        "ref": alert.ref,
        "source": alert.source,
        "type": alert.alert_type,
        # One line: a rule's message is sent as written, and a sender's line breaks in the summary laid out
        # lines in emails and Slack posts that passed for the message's own footer.
        "summary": alert.summary_line,
        "severity": alert.severity,
        "service": alert.service,
        "labels": dict(alert.labels),
        "annotations": dict(alert.annotations),
        "dedup_key": alert.dedup_key,
    }


def template_incident(ref: str, title: str, severity: str) -> dict[str, str]:
    """What a notify message's ``incident`` holds (``config.INCIDENT_TEMPLATE_FIELDS``)."""
    return {"ref": ref, "title": title, "severity": severity}


@functools.lru_cache(maxsize=1024)
def _compiled(template: str) -> Template:
    return template_environment.from_string(template)


def render(template: str, alert: Alert, where: str, **values: Any) -> str:
    """A rule's template over an alert. One that fails on this alert's data (a label it lacks, a sandbox
    refusal) renders empty, so the caller falls back to the alert's summary, and the failure is kept with
    the alert as a failing handler's is: routing an alert never fails on its text."""
    # Copies of the alert's labels and annotations, in a read-only sandbox: a template changes neither.
    view = template_alert(alert)
    try:
        return _compiled(template).render(alert=view, labels=view["labels"], **values).strip()
    except Exception as exc:
        error = failure_text(exc)
        # The org file's mistake, not the code's: one line, no traceback (a missing label is common). A
        # preview's alert (id 0) is stored nowhere: its failures are answered to the caller, not logged.
        if alert.id:
            log.warning("template %s failed on %s: %s", where, alert.ref, error)
        failure = {"handler": where, "event": "template", "error": error}
        alert.handler_errors = [*(alert.handler_errors or []), {**failure, "at": utcnow().isoformat()}]
        return ""


def _template_errors(org: OrgConfig, alert: Alert, applied: list[AutomationRule], title: str) -> list[str]:
    """For the dry run: the rule templates that fail on this alert (its title was rendered already; the
    notify messages are rendered here with the incident's fields as they would be)."""
    incident = template_incident("INC-?", title, "")
    for rule in applied:
        for notify in rule.notify:
            render(notify.message, alert, f"rule {rule.name}: notify.message", incident=incident)
    return [
        f"{failure['handler']}: {failure['error']}"
        for failure in alert.handler_errors or []
        if failure.get("event") == "template"
    ]


def _note_template_failures(session: Session, incident: Incident, alert: Alert, before: int) -> None:
    """Put the template failures ``alert`` gained since it had ``before`` on the incident's timeline, and
    count them on ``/metrics``."""
    failures = [f for f in (alert.handler_errors or [])[before:] if f.get("event") == "template"]
    if not failures:
        return
    alert_metrics.count_template_errors(session.connection(), [f["handler"] for f in failures])
    for failure in failures:
        incident_service.append_timeline(
            session,
            incident,
            performer=PERFORMER,
            kind=TimelineKind.automation,
            action=f"Template {failure['handler']} failed on {alert.ref} ({failure['error']}); "
            "the alert's summary was used instead",
            data={"template": failure["handler"], "alert": alert.id, "error": failure["error"]},
        )


def _group_value(alert: Alert, name: str) -> str:
    if name == "source":
        return alert.source
    if name == "type":
        return alert.alert_type
    if name == "severity":
        return alert.severity
    if name == "service":
        return alert.service or alert.labels.get("service", "")
    if name == "alertname":
        return alert_name(alert.labels, alert.alert_type)
    return alert.labels.get(name, "")


def _names_nothing(alert: Alert, name: str, value: str) -> bool:
    """Whether an alertname or type is only the type its source's adapter gave an alert that named none
    (``generic``, ``pagerduty``): it says where the alert came from, not which alert it is."""
    return name in ("alertname", "type") and value == FALLBACK_TYPES.get(alert.source)


def group_values(alert: Alert, group_by: list[str]) -> list[tuple[str, str]]:
    """The group-by names and the alert's values of them: alerts of a rule with the same values share an
    incident. When they do not say which alert it is (every value empty, or the alertname only its source's
    fallback type), the alert's own identity, its dedup key, is added: a plain JSON alert with no type nor
    service and another would otherwise share an incident ("database down" with "certificate expired"),
    while a repeat of the same alert still joins its own. An empty ``group_by`` (one group per rule) is
    left as configured."""
    values = [(name, _group_value(alert, name)) for name in group_by]
    if values and (
        not any(value for _, value in values) or any(_names_nothing(alert, *pair) for pair in values)
    ):
        values.append(("dedup_key", alert.dedup_key))
    return values


def group_key(
    rule: AutomationRule, action: IncidentAction, automation: AutomationConfig, alert: Alert
) -> str:
    group_by = action.group_by if action.group_by is not None else automation.group_by
    values = [value for _, value in group_values(alert, group_by)]
    key = f"{rule.name}|" + json.dumps(values, separators=(",", ":"))
    return key if len(key) <= 500 else f"{rule.name}|sha256:" + _sha(key)


_MOVED = "|moved:"
_MOVED_KEY = re.compile(r".*\|moved:[0-9a-f]{64}", re.DOTALL)


def moved_key(key: str, scope: str, dedup_key: str) -> str:
    """The group key of an alert a person moved out of its group's incident (``promote --move``, ``attach``):
    a group of its own, for that alert and its later firings (the same scope and dedup key). It is derived
    from the group's key, so a new alert of the group finds it in the same lookup; it keeps the group key's
    start (the rule's name, as reload warnings read it) and the 500 characters of the column."""
    suffix = _MOVED + _sha(f"{key}\n{scope}\n{dedup_key}")
    return key[: 500 - len(suffix)] + suffix


def take_out_of_group(alert: Alert) -> None:
    """A person moved ``alert`` out of an incident: the grouping put it with alerts of another cause, or
    missed that it shares this one's. Its group stays with the incident it was on; the alert and its later
    firings have a group of their own, wherever it went. A second move keeps that group."""
    key = alert.group_key
    if key is not None and not _MOVED_KEY.fullmatch(key):
        alert.group_key = moved_key(key, alert.scope, alert.dedup_key)


def group_window(automation: AutomationConfig, action: IncidentAction) -> timedelta:
    """How recently a group's incident must have had an alert for the next one to join it: the rule's
    ``group_window`` when it has one (``0s`` too: no grouping, each alert opens its own incident), else the
    automation block's."""
    return action.group_window if action.group_window is not None else automation.group_window


def groups_alerts(org: OrgConfig, alert: Alert) -> bool:
    """Whether other alerts of ``alert``'s group may join its incident: not when the rule that grouped it
    (the first of its rules with an incident action) has a group window of 0s."""
    for name in alert.rules or []:
        rule = next((rule for rule in org.automation.rules if rule.name == name), None)
        if rule is not None and rule.incident is not None:
            return group_window(org.automation, rule.incident) > timedelta(0)
    return org.automation.group_window > timedelta(0)


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _lock_group(session: Session, key: str) -> None:
    """PostgreSQL runs intake transactions at once (several processes): those routing alerts of one group
    take turns until commit, so the second sees the incident the first opened instead of opening another.
    SQLite has one writer at a time."""
    if session.get_bind().dialect.name == "postgresql":
        lock_id = int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "big", signed=True)
        session.execute(select(func.pg_advisory_xact_lock(lock_id)))


def _storm_incident(session: Session, org: OrgConfig, policies: list[str], now: datetime) -> Incident | None:
    """Past the storm guard's cap for every policy a new incident would page, the newest open incident one of
    them was paged for, locked (the alert joins it instead of opening one); None to open an incident as usual
    (no guard, nobody to page, or a policy with room left: its people are paged as usual)."""
    if org.automation.storm_guard is None or not policies:
        return None
    # Incidents paging one policy open one at a time (PostgreSQL runs intake transactions at once), so
    # that concurrent alerts cannot each see room under the cap and all open one. In name order: no deadlock.
    for policy in sorted(policies):
        _lock_group(session, f"storm-guard|{policy}")
    return _locked_open(session, lambda: _storm_candidate(session, org, policies, now))


def _storm_candidate(session: Session, org: OrgConfig, policies: list[str], now: datetime) -> int | None:
    guard = org.automation.storm_guard
    if guard is None or not policies:
        return None
    since = now - guard.within
    for policy in policies:
        recent = PagedOpening.policy == policy, PagedOpening.opened_at >= since
        if (
            session.scalar(select(func.count()).select_from(PagedOpening).where(*recent)) or 0
        ) < guard.incidents:
            return None
    return session.scalar(
        select(PagedOpening.incident_id)
        .join(Incident, Incident.id == PagedOpening.incident_id)
        .where(
            PagedOpening.policy.in_(policies),
            PagedOpening.opened_at >= since,
            Incident.status.in_(OPEN_STATUSES),
        )
        .order_by(PagedOpening.opened_at.desc(), PagedOpening.id.desc())
        .limit(1)
    )


def _policies_paged(org: OrgConfig, rules: list[AutomationRule], alert: Alert) -> list[str]:
    """The policies an incident these rules open for ``alert`` would page (what the storm guard counts): its
    own, by the level the rules call for, and the ``page`` of each rule with an incident action."""
    acting = [rule for rule in rules if rule.incident is not None]
    assert acting and acting[0].incident is not None
    _, services = opening_scope(org, acting[0].incident, alert)
    severity = called_level(org, acting, alert.severity)
    return oncall_service.policies_paged(org, severity, services, [rule.page for rule in acting if rule.page])


def _record_paged(session: Session, org: OrgConfig, incident: Incident, rules: list[AutomationRule]) -> None:
    """What the storm guard counts: each policy a new incident pages (its own, and its rules' ``page``)."""
    requested = [rule.page for rule in rules if rule.page]
    now = utcnow()
    for policy in oncall_service.policies_paged(org, incident.severity, incident.service_names, requested):
        session.add(PagedOpening(policy=policy, incident_id=incident.id, rule=rules[0].name, opened_at=now))


def _storm_note(org: OrgConfig, rule: AutomationRule, policies: list[str]) -> str:
    guard = org.automation.storm_guard
    assert guard is not None
    return (
        f" (storm guard: {guard.incidents} incident(s) paging {', '.join(policies)} opened within "
        f"{format_duration(guard.within)}, so it joins this one instead of opening another by rule "
        f"{rule.name})"
    )


def _locked_open(
    session: Session, find: Callable[[], int | None], batch: Batch | None = None
) -> Incident | None:
    """The open incident ``find`` names, locked for the alert to join; None when it names none.

    ``find`` reads without a lock, and on PostgreSQL another transaction may merge or resolve the incident
    while this one waits for its lock: a closed incident is not joined, and ``find`` runs again, seeing that
    commit (a merged incident's alerts are on its target now; a resolved one's group finds nothing, and
    opens a new incident). Every path by which a new alert joins an incident goes through here."""
    while (found := find()) is not None:
        # Locked already in this transaction (for an earlier alert of the delivery): the row is as this
        # session left it.
        incident = batch.locked_incidents.get(found) if batch is not None else None
        if incident is None:
            incident = incident_service.get_incident(session, found, for_update=True)
        if incident.status.is_open:
            return incident
    return None


def _group_incident(
    session: Session, org: OrgConfig, alert: Alert, key: str, window: timedelta, batch: Batch | None = None
) -> tuple[Incident, list[str] | None] | None:
    """The open incident an alert of group ``key`` joins, locked: its group's, else an upstream service's
    (with the chain of dependencies to it). The alert's ``group_key`` is set: ``key``, or the group of its own
    a person gave an earlier firing of it by moving that (``take_out_of_group``)."""
    chain: list[str] | None = None

    def find() -> int | None:
        nonlocal chain
        chain = None
        existing, alert.group_key = _open_group_incident(
            session, key, window, alert.scope, alert.dedup_key, batch
        )
        if existing is None and (upstream := _upstream_incident(session, org, alert)) is not None:
            existing, chain = upstream
        return existing

    incident = _locked_open(session, find, batch)
    return None if incident is None else (incident, chain)


def _joinable(window: timedelta) -> ColumnElement[bool]:
    """Whether an alert's incident (joined in the query) is one a new alert of its group joins: open, and the
    alert seen within the group's window or still open."""
    return and_(
        or_(Alert.last_seen_at >= utcnow() - window, Alert.status != AlertStatus.resolved),
        Incident.status.in_(OPEN_STATUSES),
    )


def _open_group_incident(
    session: Session,
    key: str,
    window: timedelta,
    scope: str | None,
    dedup_key: str,
    batch: Batch | None = None,
) -> tuple[int | None, str]:
    """The open incident of the group an alert of ``key`` joins: one with an alert of the group seen within
    the window, or still firing. A source that sends an alert once (a script, a report) or repeats it rarely
    must not split one ongoing problem into an incident per window. With it, the alert's group key: ``key``,
    unless a person moved an earlier firing of this alert (``scope``, ``dedup_key``) out of its incident; then
    the group of its own that firing has (``moved_key``), and its incident (when open and the firing recent),
    not the group's: the split holds for its later firings, and the group stays where it was.

    One query on the group key's index for both, as this runs for every new alert."""
    if window <= timedelta(0):
        return (
            None,
            key,
        )  # no grouping: with 0s, an alert of the group seen this very instant would still join
    moved = moved_key(key, scope or "", dedup_key)
    known = batch.group_incidents.get(key) if batch is not None else None
    if known is not None and batch is not None:
        if batch.locked_incidents[known].status.is_open:
            # An alert of this delivery went there: the group's newest alert, seen now, on an open incident.
            # Only a moved firing of this alert comes before it (looked up for the whole delivery at once: no
            # scan of the group, which grows with every alert of the delivery).
            was_moved, moved_incident = batch.moved_firing(key, moved, window)
            if not was_moved:
                return known, key
            return moved_incident, moved
        del batch.group_incidents[key]  # closed since (merged, say): looked up again
    of_moved = Alert.group_key == moved
    joinable = _joinable(window)
    # A moved firing first, however old: its newest is where the alert went (a firing that is still open
    # would have been updated, not made anew).
    row = session.execute(
        select(Alert.incident_id, of_moved.label("moved"), joinable.label("joinable"))
        .join(Incident, Incident.id == Alert.incident_id)
        .where(or_(of_moved, and_(Alert.group_key == key, joinable)))
        .order_by(of_moved.desc(), Alert.last_seen_at.desc())
        .limit(1)
    ).first()
    if row is None:
        return None, key
    return (row.incident_id if row.joinable else None), (moved if row.moved else key)


def groups_losing_rule(session: Session, running: OrgConfig, new: OrgConfig) -> list[str]:
    """Before a reload to ``new``: the rules of ``running`` that it drops (or renames) while their groups
    still gather alerts into open incidents. A group is its rule's name and its group-by values, so the next
    alert of such a group opens a new incident instead of joining its old one: worth a warning."""
    kept = {rule.name for rule in new.automation.rules}
    warnings = []
    for rule in running.automation.rules:
        if rule.name in kept or rule.incident is None:
            continue
        window = group_window(running.automation, rule.incident)
        if window <= timedelta(0):
            continue  # it grouped nothing
        prefix = f"{rule.name}|"
        refs = session.scalars(
            select(Incident.id)
            .join(Alert, Alert.incident_id == Incident.id)
            .where(
                Incident.status.in_(OPEN_STATUSES),
                func.substr(Alert.group_key, 1, len(prefix)) == prefix,
                Alert.last_seen_at >= utcnow() - window,
            )
            .distinct()
            .order_by(Incident.id)
        ).all()
        if refs:
            warnings.append(
                f"rule {rule.name!r} is not in the new file but groups alerts into {len(refs)} open "
                f"incident{'s' if len(refs) > 1 else ''} ({_refs([f'INC-{ref}' for ref in refs])}); their "
                "next alerts open new incidents instead of joining them (a renamed rule starts new groups)"
            )
    return warnings


def dependency_chains(org: OrgConfig, service: str) -> dict[str, list[str]]:
    """Every service that ``service`` depends on, directly or through others (``services[].dependencies``),
    with the shortest chain to it: ``{"database": ["frontend", "api", "database"]}``."""
    dependencies = {entry.name: entry.dependencies for entry in org.services}
    chains: dict[str, list[str]] = {}
    frontier = [[service]]
    while frontier:
        chain = frontier.pop(0)  # breadth first: the shortest chain to each service is found first
        for upstream in dependencies.get(chain[-1], []):
            if upstream != service and upstream not in chains:
                chains[upstream] = [*chain, upstream]
                frontier.append(chains[upstream])
    return chains


# An upstream incident still going on: under investigation (or identified), or with an alert still open. One
# in monitoring whose alerts have all resolved is over as far as anyone knows: a dependent's alert then is a
# problem of its own, and opens its own incident.
_ONGOING = (IncidentStatus.investigating, IncidentStatus.identified)


def _upstream_incident(session: Session, org: OrgConfig, alert: Alert) -> tuple[int, list[str]] | None:
    """The most severe ongoing incident (by the org's severity order), opened within ``dependency_window``,
    that affects a service the alert's service depends on, the newest among equals; with the chain of
    dependencies to it. Ongoing: investigating or identified, or in monitoring with an alert of its own still
    firing or acknowledged. Severity first: a warning of the database opened in the same second as its
    outage is not where the outage's symptoms belong."""
    window = org.automation.dependency_window
    if window <= timedelta(0) or alert.service is None:
        return None
    chains = dependency_chains(org, alert.service)
    if not chains:
        return None
    found = session.execute(
        select(Incident.id, IncidentService.service)
        .join(IncidentService, IncidentService.incident_id == Incident.id)
        .where(
            IncidentService.service.in_(chains),
            Incident.status.in_(OPEN_STATUSES),
            Incident.created_at >= utcnow() - window,
            or_(
                Incident.status.in_(_ONGOING),
                select(Alert.id)
                .where(Alert.incident_id == Incident.id, Alert.status != AlertStatus.resolved)
                .exists(),
            ),
        )
        .order_by(
            _severity_rank(org),
            Incident.created_at.desc(),
            Incident.id.desc(),  # opened in the same instant: the later one
            func.length(IncidentService.service),
        )
        .limit(1)
    ).first()
    return (found[0], chains[found[1]]) if found is not None else None


def _severity_rank(org: OrgConfig) -> ColumnElement[int]:
    """An incident's severity's place in the org's matrix, most severe first (0); a level the matrix no longer
    has (the file changed since the incident opened) last."""
    known = org.severity_ids
    return case({level: rank for rank, level in enumerate(known)}, value=Incident.severity, else_=len(known))


def depends_text(chain: list[str]) -> str:
    """``api depends on database``, or ``frontend depends on database (through api)``."""
    through = f" (through {', '.join(chain[1:-1])})" if len(chain) > 2 else ""
    return f"{chain[0]} depends on {chain[-1]}{through}"


def attach(
    session: Session,
    incident: Incident,
    alert: Alert,
    *,
    performer: str,
    note: str = "",
    carry_notes: bool = True,
) -> None:
    """Put the alert on the incident, saying so on its timeline. The notes responders wrote on the alert
    before follow it there (``carry_notes``; False for an alert stored in this transaction: it has none)."""
    alert.incident_id = incident.id
    incident_service.append_timeline(
        session,
        incident,
        performer=performer,
        kind=TimelineKind.alert,
        action=f"Alert {alert.ref} ({alert.source}, {alert.severity}) attached: {alert.summary_line}{note}",
        data={
            "alert": alert.id,
            "source": alert.source,
            "dedup_key": alert.dedup_key,
            "severity": alert.severity,
            "labels": dict(alert.labels),
        },
    )
    # Joining an incident someone is on (acknowledged): nobody is paged for it, and it is theirs too.
    follow.acknowledge_with_incident(session, incident, [alert], performer=performer, joined=True)
    if not carry_notes:
        return
    for earlier in alert.notes:
        # By its author, as when a note is written on an alert already on an incident; the entry's time is
        # now, so the note's own time is in the words.
        incident_service.append_timeline(
            session,
            incident,
            performer=earlier.author,
            kind=TimelineKind.note,
            action=f"Note on alert {alert.ref} (written {earlier.created_at:%Y-%m-%d %H:%M} UTC, before it "
            f"joined {incident.ref}): {earlier.body}",
            data={"alert": alert.id, "note": earlier.id, "written_at": earlier.created_at.isoformat()},
        )


def mapped_severity(org: OrgConfig, action: IncidentAction, alert_severity: str) -> str:
    """The incident level an alert of this severity calls for under the rule's incident action: its fixed
    ``severity``, else its ``severity_map``, else ``automation.severity_map`` (by matrix position when that is
    empty), else the default level. A rule's map that lists some severities leaves the others to the
    automation block's, as the README says it defaults to it."""
    if action.severity:
        return action.severity
    overall = org.automation.severity_map or matrix_severity_map(org.severity_ids)
    for severity_map in (action.severity_map or {}, overall):
        level = _level_in(severity_map, alert_severity)
        if level:
            return level
    return org.default_severity


def _level_in(severity_map: Mapping[Any, str], alert_severity: str) -> str | None:
    # Keyed by the AlertSeverity literals; an alert's severity is any string (one outside them maps nowhere).
    return severity_map.get(alert_severity)


def called_level(org: OrgConfig, rules: list[AutomationRule], alert_severity: str) -> str:
    """The incident level an alert of ``alert_severity`` calls for under the rules that put it on an
    incident: the most severe of theirs. With ``mode: all``, a later rule that says P1 (and pages) is not
    lowered to an earlier one's P3. Under no such rule (an alert a person attached), the severity map's."""
    levels = [mapped_severity(org, rule.incident, alert_severity) for rule in rules if rule.incident]
    if not levels:
        return mapped_severity(org, IncidentAction(), alert_severity)
    known = org.severity_ids
    return min(levels, key=lambda level: known.index(level) if level in known else len(known))


def opening_scope(org: OrgConfig, action: IncidentAction, alert: Alert) -> tuple[str, list[str]]:
    """The severity and affected services of the incident ``action`` opens for ``alert``."""
    known = {s.name for s in org.services}
    services = list(dict.fromkeys([*action.services, *([alert.service] if alert.service in known else [])]))
    return mapped_severity(org, action, alert.severity), services


def incident_fields(
    org: OrgConfig,
    alert: Alert,
    *,
    action: IncidentAction | None = None,
    title: str | None = None,
    severity: str | None = None,
    rule_name: str = "",
) -> IncidentCreate:
    action = action or IncidentAction()
    mapped, services = opening_scope(org, action, alert)
    severity = severity or mapped
    if title is None:
        title = render(action.title, alert, f"rule {rule_name}: incident.title") or alert.summary
    source: Any = _ASSESSMENT_SOURCE.get(alert.source, "monitoring-alert")
    # Business impact is for people to judge: unknown (null) unless the rule says it, not "none" everywhere.
    if action.assessment is not None:
        update: dict[str, Any] = {"source": source}
        if "business_impact" not in action.assessment.model_fields_set:
            update["business_impact"] = None
        assessment = action.assessment.model_copy(update=update)
    else:
        assessment = Assessment(source=source, affected_systems=services, business_impact=None)
    description = alert.annotations.get("description")
    # The summary on one line, so the description's lines below it are the only ones the alert lays out.
    summary = alert.summary_line + (
        f"\n\n{description}" if isinstance(description, str) and description else ""
    )
    return IncidentCreate(
        title=(one_line(title or "") or one_line(alert.summary) or "Alert")[:300],
        summary=cut_long_text(summary),
        severity=severity,
        services=services,
        is_private=action.private,
        assessment=assessment,
    )


def _opened_from(alert_id: ScalarSelect[Any]) -> Exists:
    """Whether the incident (correlated) was opened from alert ``alert_id``: its "declared" entry says so, as
    ``_open_incident`` ("from alert ALR-7 by rule …") and a promotion ("promoted from alert ALR-7") word it.
    No column records the opening alert; the entry is written once, with the incident."""
    ref = literal("ALR-") + cast(alert_id, String)
    return (
        select(TimelineEntry.id)
        .where(
            TimelineEntry.incident_id == Incident.id,
            TimelineEntry.kind == TimelineKind.created,
            or_(
                TimelineEntry.action.like("%(from alert " + ref + " by rule %"),
                TimelineEntry.action.like("%(promoted from alert " + ref + ")%"),
                TimelineEntry.action.like("%(promoted from alert " + ref + ";%"),
            ),
        )
        .correlate(Incident)
        .exists()
    )


def _earlier_incidents(session: Session, org: OrgConfig, alert: Alert) -> list[tuple[int, datetime, str]]:
    """(id, opened at, status) of the incidents the alert's group opened within the recurrence window,
    newest first (five at most). Opened: the incident's first alert (the first attached, by its timeline, as
    ``_opening_alert`` reads it) is of the group, wherever that alert is now (an incident merged into another
    is still the group's; the one it was merged into is not), and the incident was opened from it (by a rule,
    or a person promoting it). One the group's alerts only joined (by a service dependency, the storm guard, a
    merge or by hand, a person's declared incident too) was another problem's: no recurrence of this."""
    window = org.automation.recurrence_window
    if alert.group_key is None or window <= timedelta(0):
        return []
    first_alert = (
        select(TimelineEntry.data["alert"].as_integer())
        .where(TimelineEntry.incident_id == Incident.id, TimelineEntry.kind == TimelineKind.alert)
        .order_by(TimelineEntry.seq)
        .limit(1)
        .correlate(Incident)
        .scalar_subquery()
    )
    rows = session.execute(
        select(Incident.id, Incident.created_at, Incident.status)
        .where(
            Incident.created_at >= utcnow() - window,
            first_alert.in_(select(Alert.id).where(Alert.group_key == alert.group_key)),
            _opened_from(first_alert),
        )
        .order_by(Incident.created_at.desc(), Incident.id.desc())
        .limit(5)
    )
    return [(incident_id, created_at, str(status)) for incident_id, created_at, status in rows]


def _open_incident(
    session: Session,
    org: OrgConfig,
    rule: AutomationRule,
    action: IncidentAction,
    alert: Alert,
    *,
    carry_notes: bool,
    rules: list[AutomationRule],
) -> Incident:
    """``rules``: every rule that puts the alert on an incident (mode all: several); the incident opens at the
    most severe level of theirs, and its first timeline entry names the rule that level comes from when that
    is not ``rule``."""
    failures = len(alert.handler_errors or [])
    severity = called_level(org, rules, alert.severity)
    data = incident_fields(org, alert, action=action, rule_name=rule.name, severity=severity)
    kind_note = f"from alert {alert.ref} by rule {rule.name}"
    if severity != mapped_severity(org, action, alert.severity):
        raised_by = next(
            other.name
            for other in rules
            if other.incident is not None and mapped_severity(org, other.incident, alert.severity) == severity
        )
        kind_note += f"; {severity} as rule {raised_by} says, the most severe level of the alert's rules"
    earlier = _earlier_incidents(session, org, alert)
    if earlier and data.assessment is not None and data.assessment.recurring is None:
        # "Is this a new issue or a recurring problem?": the alerts have answered it.
        data.assessment = data.assessment.model_copy(update={"recurring": True})
    incident = incident_service.create_incident(
        session,
        org=org,
        data=data,
        performer=PERFORMER,
        kind_note=kind_note,
    )
    attach(session, incident, alert, performer=PERFORMER, carry_notes=carry_notes)
    _note_template_failures(session, incident, alert, failures)
    if earlier:
        named = ", ".join(f"INC-{number} ({opened:%Y-%m-%d}, {status})" for number, opened, status in earlier)
        incident_service.append_timeline(
            session,
            incident,
            performer=PERFORMER,
            kind=TimelineKind.assessment,
            action=f"Recurring: the same alerts opened {named} in the last "
            f"{format_duration(org.automation.recurrence_window)}; their timelines and post-mortems may "
            "help.",
            data={"earlier_incidents": [number for number, _, _ in earlier]},
        )
    return incident


def _page_on_join(
    session: Session,
    org: OrgConfig,
    rules: list[AutomationRule],
    incident: Incident,
    alert: Alert,
    batch: Batch | None = None,
) -> None:
    """The alert joined an open incident (its group's, an upstream service's, the storm guard's): its rules'
    ``page`` policies that have not paged that incident are asked for now. A critical alert that joins a P3
    nobody was paged for would otherwise page no one. Not for an incident someone has acknowledged: they
    are on it, and see the alert and any raise on its timeline."""
    if incident.acknowledged_at is not None:
        return
    wanted = [rule.page for rule in rules if rule.incident is not None and rule.page]
    # A policy that paged the incident stays paged for the rest of the delivery's transaction.
    settled = (incident.id, tuple(wanted))
    if batch is not None and settled in batch.paged:
        return
    if batch is not None:
        batch.paged.add(settled)  # asked for below if not yet paging
    for policy in paging.policies_not_paging(session, org, incident, list(dict.fromkeys(wanted))):
        rule_name = next(rule.name for rule in rules if rule.page == policy)
        incident_service.append_timeline(
            session,
            incident,
            performer=PERFORMER,
            kind=TimelineKind.page,
            action=f"Page requested: escalation policy {policy} (rule {rule_name}; {alert.ref} joined "
            f"{incident.ref}, which it had not paged)",
            data={"policy": policy, "rule": rule_name, "alert": alert.id},
        )
        session.flush()
        requested = {"policy": policy, "rule": rule_name}
        publish(session, DomainEvent("incident.page_requested", incident.id, PERFORMER, requested))


def _after_open(
    session: Session,
    org: OrgConfig,
    rule: AutomationRule,
    incident: Incident,
    alert: Alert,
    paged: set[str],
) -> None:
    """What ``rule`` does once the alert opened ``incident``. ``paged``: the policies earlier rules of this
    opening asked to page (``mode: all``); a policy is requested once."""
    for runbook in rule.runbooks:
        incident_service.append_timeline(
            session,
            incident,
            performer=PERFORMER,
            kind=TimelineKind.automation,
            action=f"Runbook attached: {runbook}",
            data={"runbook": runbook, "rule": rule.name},
        )
    if rule.page and rule.page not in paged:
        paged.add(rule.page)
        incident_service.append_timeline(
            session,
            incident,
            performer=PERFORMER,
            kind=TimelineKind.page,
            action=f"Page requested: escalation policy {rule.page}",
            data={"policy": rule.page, "rule": rule.name},
        )
        session.flush()
        requested = {"policy": rule.page, "rule": rule.name}
        publish(session, DomainEvent("incident.page_requested", incident.id, PERFORMER, requested))
    for notify in rule.notify:
        audience = org.audience(notify.audience)
        if incident.is_private and audience is not None and audience.reaches_outside:
            # Another rule's incident (mode all) may be private: its news stays inside the org.
            incident_service.append_timeline(
                session,
                incident,
                performer=PERFORMER,
                kind=TimelineKind.automation,
                action=f"Rule {rule.name}'s update to {audience.id} not sent: {incident.ref} is private",
                data={"rule": rule.name, "audience": audience.id},
            )
            continue
        failures = len(alert.handler_errors or [])
        message = render(
            notify.message,
            alert,
            f"rule {rule.name}: notify.message",
            incident=template_incident(incident.ref, incident.title, incident.severity),
        )
        _note_template_failures(session, incident, alert, failures)
        incident_service.send_communication(
            session,
            org=org,
            ref=incident.id,
            # Something to say, whatever the template and the sender left blank.
            data=CommunicationCreate(
                audience=notify.audience,
                message=cut_long_text(message.strip() or alert.summary_line or incident.title),
            ),
            performer=PERFORMER,
        )


def _preview_back_to_investigating(
    session: Session, org: OrgConfig, shown: IncidentPreview, incident: Incident, alert: Alert
) -> None:
    """A firing alert joining an incident in monitoring moves it back to investigating, as intake does
    (``_back_to_investigating``), and the escalations held there go on, each paging its step again
    (``paging.resume_escalations``; none once someone acknowledged it), by the same rule: a step paged less
    than its delay ago is not paged again (``resumes_not_paged``)."""
    if not _resolve_to_monitoring(org, _opening_alert(session, incident, alert)):
        return
    shown.back_to_investigating = True
    if incident.acknowledged_at is not None:
        return
    shown.resumes, shown.resumes_not_paged = paging.resume_preview(session, org, incident)


def preview(
    org: OrgConfig,
    source: str,
    event: AlertEvent,
    session: Session | None = None,
    *,
    scope: str | None = None,
    integration: str | None = None,
) -> RoutingPreview:
    """What the rules would do with this alert: which match (and why the others do not), and the incident it
    would open or join. Nothing is written. Without a ``session`` it is the org file alone; with one it also
    names the open alert the delivery would update and the group's open incident it would join (the caller
    adds the maintenance window, see ``service.preview``). An open alert is looked up in ``scope`` (one
    integration's alerts, as intake dedups them) when given, else among all alerts of ``source``."""
    automation = org.automation
    if automation.enrich:
        enrichment.enrich(automation, source, [event], integration)
    alert = Alert(
        id=0,
        source=source,
        alert_type=event.alert_type,
        summary=event.summary,
        severity=event.severity,
        service=event.service,
        labels=event.labels,
        annotations=event.annotations,
        dedup_key=event.dedup_key,
    )
    facts = AlertFacts.of(alert, integration)
    now = utcnow()
    applied = matching_rules(org, alert, now, integration)
    verdicts = []
    for rule in automation.rules:
        why_not = rule.match.mismatch(facts) or rule_mismatch(org, rule, now, alert.service)
        verdicts.append(
            RuleVerdict(rule=rule.name, matched=why_not is None, applied=rule in applied, why_not=why_not)
        )
    incident: IncidentPreview | None = None
    opening = next((rule for rule in applied if rule.incident is not None), None)
    if opening is not None and opening.incident is not None:
        action = opening.incident
        fields = incident_fields(
            org,
            alert,
            action=action,
            rule_name=opening.name,
            severity=called_level(org, applied, alert.severity),
        )
        group_by = action.group_by if action.group_by is not None else automation.group_by
        window = group_window(automation, action)
        incident = IncidentPreview(
            rule=opening.name,
            title=fields.title,
            severity=fields.severity or "",
            services=fields.services,
            group=dict(group_values(alert, group_by)),
            group_window=window,
            runbooks=[name for rule in applied for name in rule.runbooks],
            page=list(dict.fromkeys(rule.page for rule in applied if rule.page)),
            notify=[notify.audience for rule in applied for notify in rule.notify],
            delay=action.delay if action.delay > timedelta(0) else None,
            template_errors=_template_errors(org, alert, applied, fields.title),
        )
        opens_at = action.opens_at(org, now, alert.service)
        if action.wait_for_business_hours and opens_at > now + action.delay:
            incident.waits_for_business_hours = opens_at
        if opens_at > now:
            # The rules are matched again when the wait is over (``alerts.pending``): a delay that ends
            # outside the rule's hours opens nothing.
            incident.not_opened_then = rule_mismatch(org, opening, opens_at, alert.service, when="then")
        if session is not None:
            key = group_key(opening, action, automation, alert)
            joined, _ = _open_group_incident(session, key, window, scope, alert.dedup_key)
            upstream = _upstream_incident(session, org, alert) if joined is None else None
            if upstream is not None:
                joined, incident.depends_on = upstream
            if joined is None and automation.storm_guard is not None:
                stormed = _storm_candidate(session, org, _policies_paged(org, applied, alert), now)
                if stormed is not None:
                    joined, incident.storm_guard = stormed, True
            incident.open_incident = f"INC-{joined}" if joined is not None else None
            joined_incident = session.get(Incident, joined) if joined is not None else None
            if joined_incident is not None and joined_incident.acknowledged_at is None:
                incident.pages_on_join = paging.policies_not_paging(
                    session, org, joined_incident, incident.page
                )
            if (
                joined_incident is not None
                and incident.depends_on is None
                and joined_incident.status == IncidentStatus.monitoring
            ):
                alert.rules = [rule.name for rule in applied]
                _preview_back_to_investigating(session, org, incident, joined_incident, alert)
    open_alert: int | None = None
    same_delivery = False
    if session is not None:
        same_key = select(Alert.id, Alert.event_hash).where(
            Alert.scope == scope if scope is not None else Alert.source == source,
            Alert.open_dedup_key == event.dedup_key,
        )
        found = session.execute(same_key.limit(1)).first()
        if found is not None:
            open_alert = found.id
            # As intake decides: the delivery last applied to it again counts no occurrence.
            same_delivery = found.event_hash == event.event_hash
    expiry = automation.auto_resolve_for(facts)
    return RoutingPreview(
        summary=alert.summary,
        source=source,
        action=event.action,
        severity=alert.severity,
        type=alert.alert_type,
        service=alert.service,
        dedup_key=alert.dedup_key,
        labels=alert.labels,
        rules=verdicts,
        incident=incident,
        unrouted=not applied,
        auto_resolve_after=expiry.after if expiry is not None else None,
        maintenance_schedules={
            schedule.name: schedule.current_or_next(utcnow())
            for schedule in automation.maintenance_schedules
            if schedule.covers(facts)
        },
        live=session is not None,
        open_alert=f"ALR-{open_alert}" if open_alert is not None else None,
        open_alert_unchanged=same_delivery,
    )


class Batch:
    """What routing one delivery's new alerts learns once and reuses for each of them, all in the delivery's
    transaction: their inhibitors (one query, ``inhibition.BatchInhibitors``), the incident each group went
    to, the incidents and group locks already held, and the incidents a rule's ``page`` has paged already. A
    storm's group of thousands of alerts then costs a few statements per alert instead of a dozen, and none
    whose cost grows with the group. Dropped whole when a routing savepoint is rolled back (``forget``): the
    row and advisory locks taken in it went with it on PostgreSQL."""

    def __init__(self, session: Session, org: OrgConfig, new_alerts: list[tuple[str, str]]) -> None:
        """``new_alerts``: the (scope, dedup key) of each new alert of the delivery."""
        self._session = session
        self._org = org
        self._new_alerts = new_alerts
        self._inhibitors: inhibition.BatchInhibitors | None = None
        self.group_incidents: dict[str, int] = {}  # group key -> the incident its last alert went to
        self.locked_incidents: dict[int, Incident] = {}
        self.locked_groups: set[str] = set()
        self.paged: set[tuple[int, tuple[str, ...]]] = set()  # (incident, rules' pages) with nothing to ask
        # group key -> {moved key of a new alert: its newest earlier firing's incident, None if not joinable}
        self._moved: dict[str, dict[str, int | None]] = {}

    @property
    def inhibitors(self) -> inhibition.BatchInhibitors | None:
        """None for a delivery of few new alerts: each is looked up alone, on the narrower query (reading
        every open alert that may inhibit would cost more than it saves)."""
        if len(self._new_alerts) < inhibition.BATCH_FROM:
            return None
        if self._inhibitors is None:
            self._inhibitors = inhibition.BatchInhibitors(self._session, self._org)
        return self._inhibitors

    def moved_firing(self, key: str, moved: str, window: timedelta) -> tuple[bool, int | None]:
        """Whether a firing of a new alert was moved out of group ``key`` by a person (its group of its own:
        ``moved``), and if so the incident of its newest such firing when joinable. Looked up once per group
        for all the delivery's new alerts (by their exact moved keys, on the group key's index), instead of
        once per alert."""
        found = self._moved.get(key)
        if found is None:
            found = self._moved[key] = {}
            candidates = sorted({moved_key(key, scope, dedup_key) for scope, dedup_key in self._new_alerts})
            for start in range(0, len(candidates), 500):
                rows = self._session.execute(
                    select(Alert.group_key, Alert.incident_id, _joinable(window).label("joinable"))
                    .join(Incident, Incident.id == Alert.incident_id)
                    .where(Alert.group_key.in_(candidates[start : start + 500]))
                    .order_by(Alert.last_seen_at)  # the newest firing of each key comes last, and stays
                )
                for row in rows:
                    found[row.group_key] = row.incident_id if row.joinable else None
        if moved not in found:
            return False, None
        return True, found[moved]

    def moved_alert_joined(self, key: str, moved: str, incident_id: int) -> None:
        """A new alert of the delivery took its moved firing's group (``moved``) to ``incident_id``: it is
        that group's newest firing now. (Before the group's firings are looked up, nothing is noted: the
        lookup finds this one, flushed by then, with the others.)"""
        found = self._moved.get(key)
        if found is not None:
            found[moved] = incident_id

    def forget(self) -> None:
        if self._inhibitors is not None:
            self._inhibitors.forget_locks()
        self._moved.clear()
        self.group_incidents.clear()
        self.locked_incidents.clear()
        self.locked_groups.clear()
        self.paged.clear()


def on_created(
    session: Session,
    org: OrgConfig,
    alert: Alert,
    *,
    stored_earlier: bool = False,
    waited: bool = False,
    batch: Batch | None = None,
    inhibitor: Alert | None = None,
) -> None:
    """Route a new alert by the rules. ``stored_earlier``: it was stored before this transaction (a
    maintenance window held it, its rule's ``delay``, or it got more severe on no incident: ``route_raised``),
    so it may carry responders' notes to its incident. ``waited``: its rule's delay is over
    (``alerts.pending``), so the incident opens now. ``batch``: what routing the other new alerts of the
    delivery it came in (intake) found, to reuse. ``inhibitor``: the alert that muted it until it resolved
    (``release_inhibited``): a rule that would put it on an incident puts it on that alert's, while open."""
    automation = org.automation
    integration = integration_name(session, org, alert)
    if automation.inhibit_rules and _inhibited(
        session, org, alert, integration, batch.inhibitors if batch is not None else None
    ):
        return  # recorded; routed when its inhibitor resolves
    now = utcnow()
    rules = matching_rules(org, alert, now, integration) if automation.rules else []
    incident: Incident | None = None
    rule_group: str | None = None  # the group key of the rule whose group the alert went to
    waiting = False  # a rule's delay holds the incident back
    if rules:
        alert.rules = [rule.name for rule in rules]
        opened = waiting = False
        opened_by: list[AutomationRule] = []  # the rules that acted on the incident this alert opened
        paged: set[str] = set()  # the policies they asked to page
        # Under every rule that opens or joins incidents (mode all: several), the most severe level.
        level = called_level(org, rules, alert.severity)
        for rule in rules:
            if rule.incident is None or waiting:
                continue
            if incident is None:
                key = rule_group = group_key(rule, rule.incident, automation, alert)
                alert.group_key = key
                window = group_window(automation, rule.incident)
                if batch is None or key not in batch.locked_groups:
                    _lock_group(session, key)
                    if batch is not None:
                        batch.locked_groups.add(key)
                cause = _cause_incident(session, inhibitor, batch) if inhibitor is not None else None
                joined = (
                    None if cause is not None else _group_incident(session, org, alert, key, window, batch)
                )
                if cause is not None and inhibitor is not None:
                    # Its cause is known, and has an incident: a symptom goes with it, before its group's
                    # incident or an upstream service's (a dependency is only a guess at the cause).
                    incident = cause
                    why = (
                        f" (a symptom of {inhibitor.ref}, {inhibitor.summary_line}, which inhibited it; "
                        f"{inhibitor.ref} is on {incident.ref})"
                    )
                    firing = alert.status == AlertStatus.firing  # before an acknowledged incident takes it on
                    attach(
                        session, incident, alert, performer=PERFORMER, note=why, carry_notes=stored_earlier
                    )
                    _add_affected_service(
                        session,
                        org,
                        incident,
                        alert,
                        reason=f"a symptom of {inhibitor.ref}, which inhibited it",
                    )
                    if firing:
                        # Its cause resolved and it still fires: whatever monitoring watches is not over.
                        _back_to_investigating(session, org, incident, alert, symptom_of=inhibitor)
                    _raise_severity(session, org, level, incident, alert)
                    _page_on_join(session, org, rules, incident, alert, batch)
                elif joined is not None:
                    incident, chain = joined
                    why = (
                        f" (group of rule {rule.name})"
                        if chain is None
                        else f" ({depends_text(chain)}, which {incident.ref} affects)"
                    )
                    attach(
                        session, incident, alert, performer=PERFORMER, note=why, carry_notes=stored_earlier
                    )
                    if chain is not None:
                        # Not one of its own alerts: it says nothing of whether the fix held. (An upstream
                        # incident in monitoring is joined only while an alert of its own is still open,
                        # where a person moved it there: its status stays theirs to move.)
                        _add_affected_service(session, org, incident, alert)
                    else:
                        _back_to_investigating(session, org, incident, alert)
                    _raise_severity(session, org, level, incident, alert)
                    _page_on_join(session, org, rules, incident, alert, batch)
                elif not waited and (opens_at := rule.incident.opens_at(org, now, alert.service)) > now:
                    _open_later(session, alert, rule, opens_at)
                    waiting = True
                    continue
                elif (
                    automation.storm_guard is not None  # off: no policies to work out for every opening
                    and (
                        stormed := _storm_incident(
                            session, org, policies := _policies_paged(org, rules, alert), now
                        )
                    )
                    is not None
                ):
                    incident = stormed
                    for policy in policies:
                        alert_metrics.count_storm_guarded(session.connection(), policy)
                    attach(
                        session,
                        incident,
                        alert,
                        performer=PERFORMER,
                        note=_storm_note(org, rule, policies),
                        carry_notes=stored_earlier,
                    )
                    _back_to_investigating(session, org, incident, alert, storm_guard=True)
                    _raise_severity(session, org, level, incident, alert)
                    _page_on_join(session, org, rules, incident, alert, batch)
                else:
                    incident = _open_incident(
                        session, org, rule, rule.incident, alert, carry_notes=stored_earlier, rules=rules
                    )
                    opened = True
            if opened:
                _after_open(session, org, rule, incident, alert, paged)
                opened_by.append(rule)
        if incident is not None and opened_by and automation.storm_guard is not None:
            _record_paged(session, org, incident, opened_by)
        if batch is not None and incident is not None and alert.group_key is not None:
            # The next alert of the group finds this one, the newest, and goes where it went.
            batch.group_incidents[alert.group_key] = incident.id
            batch.locked_incidents[incident.id] = incident
            if rule_group is not None and alert.group_key != rule_group:
                batch.moved_alert_joined(rule_group, alert.group_key, incident.id)
    elif alert.rules is not None:
        # Routed again once stored (its rule's delay is over, its window or inhibitor let it go) and no rule
        # matches it now (the org file changed meanwhile): it is unrouted, as ``rules`` NULL says everywhere.
        alert.rules = None
    if automation.inhibit_rules:
        _note_symptoms(session, org, alert, integration)
    if not waiting:
        # A rule's delay holds the incident back: the handlers run once, when it opens (``waited``).
        schedule_handlers(session, alert, "created")


def _note_symptoms(session: Session, org: OrgConfig, alert: Alert, integration: str | None) -> None:
    """An inhibitor that fires after its symptoms (a host's down alert waits out its ``for``, its services'
    alerts do not): Alertmanager mutes them from then on, but they have opened incidents here already. Each
    of those incidents is told what its alerts are a symptom of, and the inhibitor's incident which alerts are
    its symptoms elsewhere, so responders can put them together (``alerts attach``); nothing is moved."""
    found = inhibition.symptoms(session, org, AlertFacts.of(alert, integration), exclude_id=alert.id)
    by_incident: dict[int, list[tuple[int, str]]] = {}
    for symptom_id, incident_id, rule_name in found:
        if incident_id != alert.incident_id:
            by_incident.setdefault(incident_id, []).append((symptom_id, rule_name))
    if not by_incident:
        return
    where = f" (on INC-{alert.incident_id})" if alert.incident_id is not None else ""
    # Locked in id order with the inhibitor's own incident, so two of these at once cannot deadlock.
    locked = incident_service.lock_incidents(
        session, [*by_incident, *([alert.incident_id] if alert.incident_id is not None else [])]
    )
    merged = set()
    target = locked[alert.incident_id] if alert.incident_id is not None else None
    for incident_id, symptoms in sorted(by_incident.items()):
        refs = _refs([f"ALR-{symptom_id}" for symptom_id, _ in symptoms])
        rules = ", ".join(sorted({rule_name for _, rule_name in symptoms}))
        if target is not None and _merges_late(session, org, target, locked[incident_id], symptoms):
            note = (
                f"by inhibit rule {rules}, its alerts ({refs}) are symptoms of {alert.ref}: "
                f"{alert.summary_line}"
            )
            merge_into(session, org, locked[incident_id], target, performer=PERFORMER, note=note)
            merged.add(incident_id)
            continue
        verb, they = ("is a symptom", "it") if len(symptoms) == 1 else ("are symptoms", "they")
        incident_service.append_timeline(
            session,
            locked[incident_id],
            performer=PERFORMER,
            kind=TimelineKind.alert,
            action=f"Alert {alert.ref} fired{where}: {alert.summary_line}. By inhibit rule {rules}, {refs} "
            "here "
            f"{verb} of it (had it fired first, {they} would have been muted)",
            data={"alert": alert.id, "symptoms": [symptom_id for symptom_id, _ in symptoms]},
        )
    elsewhere = [
        f"ALR-{symptom_id} (INC-{incident_id})"
        for incident_id, symptoms in sorted(by_incident.items())
        if incident_id not in merged
        for symptom_id, _ in symptoms
    ]
    if alert.incident_id is not None and elsewhere:
        incident_service.append_timeline(
            session,
            locked[alert.incident_id],
            performer=PERFORMER,
            kind=TimelineKind.alert,
            action=f"Alerts already open elsewhere are symptoms of {alert.ref} (inhibit rules): "
            f"{_refs(elsewhere)}",
            data={
                "alert": alert.id,
                "symptoms": [
                    s_id
                    for incident_id, listed in by_incident.items()
                    if incident_id not in merged
                    for s_id, _ in listed
                ],
            },
        )


def _merges_late(
    session: Session, org: OrgConfig, target: Incident, incident: Incident, symptoms: list[tuple[int, str]]
) -> bool:
    """Whether a late inhibitor folds ``incident`` into its own (``target``): every rule that found the
    symptoms says ``merge_late``, both are open, and every alert of ``incident`` (resolved ones too) is a
    symptom, so nothing of another cause goes with them."""
    by_name = {rule.name: rule for rule in org.automation.inhibit_rules}
    if not all(by_name[name].merge_late for _, name in symptoms):
        return False
    if not (incident.status.is_open and target.status.is_open):
        return False
    on_it = set(session.scalars(select(Alert.id).where(Alert.incident_id == incident.id)))
    return on_it == {symptom_id for symptom_id, _ in symptoms}


def merge_into(
    session: Session, org: OrgConfig, source: Incident, target: Incident, *, performer: str, note: str | None
) -> list[Alert]:
    """Fold ``source`` into ``target`` (both open and locked): its alerts move, both timelines say so, and it
    is resolved as merged. The alerts moved."""
    # Read before anything moves: resolving ``source`` stops its escalations.
    carried = _pages_carried(session, org, source, target)
    alerts = list(
        session.scalars(
            select(Alert).where(Alert.incident_id == source.id).order_by(Alert.id).with_for_update()
        )
    )
    for alert in alerts:
        attach(session, target, alert, performer=performer, note=f" (merged from {source.ref})")
    moved = f"its {len(alerts)} alert(s) moved here" if alerts else "it had no alerts"
    responders = [f"{r.name} ({r.role})" for r in source.responders if r.left_at is None]
    why = f" — {note}" if note else ""
    incident_service.append_timeline(
        session,
        target,
        performer=performer,
        kind=TimelineKind.note,
        action=f"{source.ref} ({source.severity}, {source.title!r}) merged into this incident: {moved}"
        + (f"; its responders: {', '.join(responders)}" if responders else "")
        + why,
        data={"merged": source.id, "alerts": [alert.id for alert in alerts], "responders": responders},
    )
    # They go on on ``target`` where they were (same step, same deadline), paging nobody for the merge.
    paging.carry_over(session, org, source=source, target=target, policies=carried, performer=performer)
    incident_service.append_timeline(
        session,
        source,
        performer=performer,
        kind=TimelineKind.note,
        # A private incident's title stays off a public incident's record (its updates may reach customers).
        action=f"Merged into {target.ref}"
        + ("" if target.is_private and not source.is_private else f" ({target.title!r})")
        + (f": its {len(alerts)} alert(s) moved there" if alerts else "")
        + why,
        data={"into": target.id, "alerts": [alert.id for alert in alerts]},
    )
    known = org.severity_ids
    if (
        source.severity in known
        and target.severity in known
        and org.severity_rank(source.severity) < org.severity_rank(target.severity)
    ):
        # A P0 merged into a P3 stays a P0: raised as a person would (and paged per the severity policies).
        raised = IncidentUpdate(severity=source.severity, note=f"merged from {source.ref}")
        incident_service.update_incident(session, org=org, ref=target.id, data=raised, performer=performer)
    # One outage: what the merged incident affected, this one affects. Only services the org file still has;
    # a merge (automation's merge_late too) never fails on a name a reload dropped.
    added = [name for name in source.service_names if name not in target.service_names and org.service(name)]
    if added:
        update = IncidentUpdate(services=[*target.service_names, *added], note=f"merged from {source.ref}")
        try:
            with session.begin_nested():
                incident_service.update_incident(
                    session, org=org, ref=target.id, data=update, performer=performer
                )
        except InvalidInput as exc:  # the target itself names a service the org file no longer has
            log.warning("merge of %s into %s: services not added: %s", source.ref, target.ref, exc.message)
    incident_service.resolve(
        session, org=org, ref=source.id, performer=performer, note=f"merged into {target.ref}"
    )
    return alerts


def _pages_carried(session: Session, org: OrgConfig, source: Incident, target: Incident) -> list[str]:
    """The policies ``source`` is escalating that ``target`` is not: its alerts' pages follow them, carried
    on to ``target`` (``paging.carry_over``: a run of its own there, going on where it was), whatever policy a
    raise of ``target`` picks from its services' order. Nothing once someone acknowledged either: they are on
    it (as ``_page_on_join``)."""
    if source.acknowledged_at is not None or target.acknowledged_at is not None:
        return []
    already = set(paging.policies_escalating(session, org, target))
    return [policy for policy in paging.policies_escalating(session, org, source) if policy not in already]


def _inhibited(
    session: Session,
    org: OrgConfig,
    alert: Alert,
    integration: str | None,
    inhibitors: inhibition.BatchInhibitors | None = None,
) -> bool:
    """Whether an open alert inhibits this new one (automation.inhibit_rules); if so, it is noted on it."""
    facts = AlertFacts.of(alert, integration)
    if inhibitors is not None:
        found = inhibitors.inhibitor(facts, exclude_id=alert.id, lock=True)  # stored: it has its id
    else:
        session.flush()  # the alert's id, to leave it out of its own inhibitors
        found = inhibition.inhibitor(session, org, facts, exclude_id=alert.id, lock=True)
    if found is None:
        return False
    alert.inhibited_by_id = found[0]
    return True


def _cause_incident(session: Session, inhibitor: Alert, batch: Batch | None = None) -> Incident | None:
    """The incident of the alert that muted a released one, locked, when it is still open (it may be in
    monitoring: its own alerts resolved); None when it is on none, or that one is over."""

    def find() -> int | None:
        if inhibitor.incident_id is None:
            return None
        return session.scalar(
            select(Incident.id).where(
                Incident.id == inhibitor.incident_id, Incident.status.in_(OPEN_STATUSES)
            )
        )

    return _locked_open(session, find, batch)


def muted_by(session: Session, source: Alert) -> list[Alert]:
    """The alerts ``source`` inhibited that are still open and on no incident, locked for their release."""
    return held_alerts(session, Alert.inhibited_by_id == source.id)


def release_inhibited(session: Session, org: OrgConfig, source: Alert, muted: list[Alert]) -> None:
    """Route ``muted``, alerts ``source`` inhibited, now that it has resolved (another open alert may inhibit
    them in turn)."""
    release_held(
        session,
        org,
        muted,
        lambda alert: (
            f"{alert.ref} was inhibited by {source.ref} ({source.summary_line}) until that alert "
            f"resolved; it was still {alert.status.value}."
        ),
        {"inhibited_by": source.id},
        inhibitor=source,
    )


def held_alerts(session: Session, held_by: ColumnElement[bool]) -> list[Alert]:
    """The alerts a maintenance window or an inhibiting alert held (``held_by``) that are still open and on no
    incident, locked for their release."""
    statement = (
        select(Alert)
        .where(held_by, Alert.status != AlertStatus.resolved, Alert.incident_id.is_(None))
        .order_by(Alert.id)
        .with_for_update()
    )
    return list(session.scalars(statement))


def release_held(
    session: Session,
    org: OrgConfig,
    alerts: list[Alert],
    why: Callable[[Alert], str],
    data: dict[str, Any],
    *,
    inhibitor: Alert | None = None,
) -> None:
    """Route alerts that were held as if they had just fired; the timeline of the incident each one opens or
    joins says why it comes late (``why``, worded from the alert as it was held), and one acknowledged
    meanwhile is acknowledged there. ``inhibitor``: the alert that muted them (see ``on_created``)."""
    for alert in alerts:
        # Before routing: joining an acknowledged incident acknowledges a firing alert, which is neither what
        # it was while held nor an acknowledgement of its own to carry.
        held_text = why(alert)
        acknowledged_while_held = alert.status == AlertStatus.acknowledged
        on_created(session, org, alert, stored_earlier=True, inhibitor=inhibitor)
        session.flush()
        if alert.incident_id is None:
            continue
        on_incident_timeline(
            session,
            alert,
            performer=PERFORMER,
            kind=TimelineKind.alert,
            action=held_text,
            data={"alert_id": alert.id, **data},
        )
        if acknowledged_while_held:
            carry_acknowledgement(session, org, alert)


def _add_affected_service(
    session: Session, org: OrgConfig, incident: Incident, alert: Alert, *, reason: str | None = None
) -> None:
    """A service that alerts because of an upstream outage is affected by it too (its status page component,
    the blast radius in the post-mortem). ``reason``: why the alert is the incident's, when not by its
    service's dependency (a symptom of the incident's alert)."""
    if alert.service is None or alert.service in incident.service_names:
        return
    services = [*incident.service_names, alert.service]
    why = reason or f"{alert.service} depends on a service this incident affects"
    note = f"alert {alert.ref}: {why}"
    _update(session, org, incident, IncidentUpdate(services=services, note=note))


DELAY_KIND = "alerts.open_after_delay"
QUIET_KIND = "alerts.resolve_when_quiet"
CALM_KIND = "alerts.settle_after_flapping"


def _resolve_when_quiet(session: Session, incident: Incident, quiet: timedelta) -> None:
    """``resolve_after``: the incident is resolved if it is still in this stay in monitoring, with every alert
    resolved, once ``quiet`` has passed (``alerts.settle`` runs the job)."""
    assert incident.monitoring_at is not None
    jobs_service.enqueue(
        session,
        kind=QUIET_KIND,
        payload={
            "incident_id": incident.id,
            "monitoring_at": incident.monitoring_at.isoformat(),
            "quiet": format_duration(quiet),
        },
        run_at=incident.monitoring_at + quiet,
        idempotency_key=f"alerts-quiet:{incident.id}:{incident.monitoring_at.isoformat()}",
        incident_id=incident.id,
    )


def _open_later(session: Session, alert: Alert, rule: AutomationRule, opens_at: datetime) -> None:
    """The rule's incident opens at ``opens_at`` (its delay is over, business hours begin), if the alert is
    still open then (``alerts.pending`` runs the job). One job per alert: one routed again while its job
    waits (it got more severe, an inhibitor held it meanwhile) moves that job to ``opens_at`` when that comes
    sooner, so it is neither routed twice nor kept waiting longer than it was going to; one whose job ran
    already (and opened nothing) has a job of its own."""
    assert rule.incident is not None
    session.flush()  # the alert's id
    waits_for = [format_duration(rule.incident.delay)] if rule.incident.delay > timedelta(0) else []
    if rule.incident.wait_for_business_hours:
        waits_for.append("business hours")
    payload = {"alert_id": alert.id, "rule": rule.name, "delay": " and ".join(waits_for)}
    key = _delay_key(alert.id)
    # On the unique key's index: a new alert's first wait pays one lookup; only an alert routed again looks
    # further, for a job of its own (its key has the moment it was made).
    first = session.scalar(select(Job).where(Job.idempotency_key == key))
    if first is not None:
        waiting = first if first.status == JobStatus.pending else _waiting_delay_job(session, alert)
        if waiting is not None:
            if opens_at < waiting.run_at:
                waiting.run_at, waiting.payload = opens_at, payload
            return
        key += f":again:{utcnow().isoformat()}"
    jobs_service.enqueue(session, kind=DELAY_KIND, payload=payload, run_at=opens_at, idempotency_key=key)


def _waiting_delay_job(session: Session, alert: Alert) -> Job | None:
    """The alert's delay job of its own (routed again after its first job ran) that is still waiting."""
    return session.scalar(
        select(Job).where(
            Job.kind == DELAY_KIND,
            Job.status == JobStatus.pending,
            Job.payload["alert_id"].as_integer() == alert.id,
        )
    )


def _delay_key(alert_id: int) -> str:
    return f"alert-delay:{alert_id}"


def _update(session: Session, org: OrgConfig, incident: Incident, data: IncidentUpdate) -> None:
    """Automation changes an incident's status or severity the way a person does (timeline, events)."""
    incident_service.update_incident(session, org=org, ref=incident.id, data=data, performer=PERFORMER)


def _back_to_investigating(
    session: Session,
    org: OrgConfig,
    incident: Incident,
    alert: Alert,
    *,
    storm_guard: bool = False,
    symptom_of: Alert | None = None,
) -> None:
    """The other half of ``resolve_to_monitoring``: an alert of the group firing again while the incident
    is being monitored means the fix did not hold, so the incident is back under investigation.
    ``storm_guard``: the alert is of another group, which the storm guard put here instead of opening an
    incident: the incident has a firing alert again, so it is investigated again, but nothing is said of
    its fix. ``symptom_of``: the alert was muted as a symptom of that one, whose incident this is; it still
    fires now that its cause resolved, so the outage is not over. (An alert joining by a service dependency
    never comes here.)

    ``resolve_to_monitoring`` of the incident's rule decides (``_opening_alert``), as it does for the move to
    monitoring (``settle``). A storm-guarded alert's own rule, or that of a later alert of its group,
    says nothing of this incident (with it off, an incident automation moved to monitoring stayed there with a
    firing alert, which nothing would move again)."""
    if incident.status != IncidentStatus.monitoring:
        return
    if not _resolve_to_monitoring(org, _opening_alert(session, incident, alert)):
        return
    if symptom_of is not None:
        cause = symptom_of.ref
        note = f"alert {alert.ref}, a symptom of {cause}, still fires now that {cause} resolved"
    elif storm_guard:
        note = f"alert {alert.ref} of another group joined by the storm guard and fires while monitoring"
    else:
        note = f"alert {alert.ref} fired while monitoring: the fix did not hold"
    _update(session, org, incident, IncidentUpdate(status=IncidentStatus.investigating, note=note))
    automation = org.automation
    if automation.flap_count and _returns(session, incident, automation.flap_window) == automation.flap_count:
        window = format_duration(automation.flap_window)
        incident_service.append_timeline(
            session,
            incident,
            performer=PERFORMER,
            kind=TimelineKind.alert,
            action=f"Flapping: its alerts fired again {automation.flap_count} times within {window} of "
            "resolving. Automation leaves the incident in investigating, not monitoring, until "
            f"{window} pass with no alert firing again (then, its alerts resolved, it moves to monitoring); "
            "a person can move it.",
            data={"flapping": True, "returns": automation.flap_count, "window": window},
        )


def _opening_alert(session: Session, incident: Incident, alert: Alert) -> Alert:
    """The alert whose rules are the incident's own (``resolve_to_monitoring``, ``resolve_after``): the one
    that opened it, the first attached (by the timeline, as an alert held back and then routed by the storm
    guard may be older than the incident), that is still on it; ``alert`` (one of its alerts) if none is."""
    first = session.scalar(
        select(Alert)
        .join(TimelineEntry, TimelineEntry.data["alert"].as_integer() == Alert.id)
        .where(
            TimelineEntry.incident_id == incident.id,
            TimelineEntry.kind == TimelineKind.alert,
            Alert.incident_id == incident.id,
        )
        .order_by(TimelineEntry.seq)
        .limit(1)
    )
    return first if first is not None else alert


def _returns(session: Session, incident: Incident, window: timedelta) -> int:
    """How often automation moved the incident back from monitoring to investigating within ``window``."""
    moves = session.scalars(
        select(TimelineEntry.data).where(
            TimelineEntry.incident_id == incident.id,
            TimelineEntry.kind == TimelineKind.status_change,
            TimelineEntry.performer == PERFORMER,
            TimelineEntry.occurred_at >= utcnow() - window,
        )
    )
    return sum(
        1 for move in moves if move and (move.get("from"), move.get("to")) == ("monitoring", "investigating")
    )


def flapping_until(session: Session, org: OrgConfig, incident: Incident) -> datetime | None:
    """When a flapping incident calms down: ``flap_window`` after both its last return to investigating and
    the last time one of its alerts fired again (None: it is not flapping now). It began flapping when the
    last return made ``flap_count`` within ``flap_window``; while it flaps it never reaches monitoring, so its
    alerts firing again are no returns, and only their firing says it has not calmed down.

    Firing again: an alert of a group already on the incident (the flapping alert's next firing, another of
    its group). An alert that joined by a service dependency or the storm guard, the first of its group there,
    is another problem's, and says nothing of whether the incident's own keeps coming back."""
    automation = org.automation
    if not automation.flap_count:
        return None
    moves = session.execute(
        select(TimelineEntry.occurred_at, TimelineEntry.data)
        .where(
            TimelineEntry.incident_id == incident.id,
            TimelineEntry.kind == TimelineKind.status_change,
            TimelineEntry.performer == PERFORMER,
        )
        .order_by(TimelineEntry.occurred_at.desc(), TimelineEntry.id.desc())
    )
    returns = [
        at
        for at, move in moves
        if move and (move.get("from"), move.get("to")) == ("monitoring", "investigating")
    ]
    if not returns:
        return None
    last = returns[0]
    if sum(1 for at in returns if at >= last - automation.flap_window) < automation.flap_count:
        return None
    earlier = aliased(Alert)
    of_its_group_before = (
        select(earlier.id)
        .where(
            earlier.incident_id == incident.id,
            earlier.group_key == Alert.group_key,
            earlier.id < Alert.id,
        )
        .exists()
    )
    fired = session.scalar(
        select(func.max(Alert.first_seen_at)).where(Alert.incident_id == incident.id, of_its_group_before)
    )
    calm = max(last, fired or last) + automation.flap_window
    return calm if utcnow() < calm else None


def _settle_when_calm(session: Session, incident: Incident, alert: Alert, calm: datetime) -> None:
    """Resolved while flapping: nothing else may come to move the incident once it calms down, so a job
    settles it then (``alerts.settle``), if its alerts are still resolved and none fired again meanwhile."""
    jobs_service.enqueue(
        session,
        kind=CALM_KIND,
        payload={"incident_id": incident.id, "alert_id": alert.id},
        run_at=calm,
        idempotency_key=f"alerts-calm:{incident.id}:{calm.isoformat()}",
        incident_id=incident.id,
    )


def on_severity_raised(session: Session, org: OrgConfig, alert: Alert, *, was: str) -> None:
    """A repeat of an alert on an incident came more severe than it was (PagerDuty's warning, then critical,
    under one dedup key): the incident is raised as a joining alert of that severity raises it."""
    if alert.incident_id is None:
        return
    incident = incident_service.get_incident(session, alert.incident_id, for_update=True)
    if not incident.status.is_open:
        return
    wanted = _called_for(org, alert.severity, alert.rules)
    rank = org.severity_rank
    lowered = session.scalars(
        select(TimelineEntry.data).where(
            TimelineEntry.incident_id == incident.id,
            TimelineEntry.kind == TimelineKind.severity_change,
            TimelineEntry.performer != PERFORMER,
        )
    )
    if any(
        change.get("direction") == "lowered" and rank(str(change.get("from"))) <= rank(wanted)
        for change in lowered
        if isinstance(change, dict)
    ):
        return  # a person lowered it from this level: a flapping alert does not overrule them
    _raise_severity(
        session, org, wanted, incident, alert, why=f"alert {alert.ref} went from {was} to {alert.severity}"
    )


def route_raised(
    session: Session, org: OrgConfig, alert: Alert, *, was: str, snoozed_by: str | None = None
) -> None:
    """An alert on no incident (unrouted, or routed by a rule with no incident action, or waiting out a rule's
    delay) whose repeat came more severe, firing and held by nothing: the rules see it as they would see a new
    alert of its severity (PagerDuty's way to escalate: the same dedup key sent again as critical). It opens
    or joins an incident and pages as such an alert would, or stays on none if no rule says otherwise; the
    incident's timeline says why an alert older than the incident came to it now. ``snoozed_by``: it got worse
    while that person had it snoozed, and is routed now that the snooze is over."""
    unrouted = " (no rule had routed it)" if alert.rules is None else ""
    on_created(session, org, alert, stored_earlier=True)
    session.flush()
    if alert.incident_id is None:
        return
    if snoozed_by is None:
        how = f"while on no incident{unrouted}"
    else:
        how = (
            f"while snoozed by {snoozed_by}, on no incident{unrouted}; the snooze is over and it still fires"
        )
    on_incident_timeline(
        session,
        alert,
        performer=PERFORMER,
        kind=TimelineKind.alert,
        action=f"Alert {alert.ref} went from {was} to {alert.severity} {how}: the rules took it as a new "
        f"{alert.severity} alert",
        data={"alert": alert.id, "severity_from": was, "severity_to": alert.severity}
        | ({"snoozed_by": snoozed_by} if snoozed_by is not None else {}),
    )


def note_raised_while_acknowledged(alert: Alert, *, was: str) -> None:
    """An acknowledged alert on no incident got more severe: whoever acknowledged it took it on without an
    incident, so the rules leave it be, and a note on it says so (``alerts show``). One snoozed is left to
    them until the snooze ends: if it still fires then, more severe than when snoozed, the rules see it."""
    by = f"by {alert.acknowledged_by}" if alert.acknowledged_by else f"at its source ({alert.source})"
    promote = f"warroom alerts promote {alert.ref}"
    if alert.snoozed_until is not None:
        until = alert.snoozed_until.astimezone(UTC) if alert.snoozed_until.tzinfo else alert.snoozed_until
        body = (
            f"Went from {was} to {alert.severity} while snoozed by {alert.snoozed_by}, on no incident: not "
            f"routed while it is snoozed. If it still fires when the snooze ends ({until:%Y-%m-%d %H:%M} "
            f"UTC), the rules see it then as a new {alert.severity} alert. To open an incident now: {promote}"
        )
    else:
        body = (
            f"Went from {was} to {alert.severity} while acknowledged {by}, on no incident: not routed, as "
            f"someone is on it. To open an incident: {promote}"
        )
    alert.notes.append(AlertNote(author=PERFORMER, body=body))


def _raise_severity(
    session: Session,
    org: OrgConfig,
    wanted: str,
    incident: Incident,
    alert: Alert,
    *,
    why: str | None = None,
) -> None:
    """A joining alert more severe than any before it (a warning, then the critical alert of the same
    name) raises the incident's level to the one its rules call for (``wanted``), which pages per the
    severity policies. Never lowered, and a level a person lowered is not raised again by alerts no more
    severe than those already on the incident."""
    rank = org.severity_rank
    if rank(wanted) >= rank(incident.severity):
        return
    # What each earlier alert called for, under the rule that routed it: an alert that joined by a
    # dependency or the storm guard came by another rule, whose fixed level says nothing of theirs.
    earlier = session.execute(
        select(Alert.severity, cast(Alert.rules, String))
        .where(Alert.incident_id == incident.id, Alert.id != alert.id)
        .distinct()
    )
    if any(
        rank(_called_for(org, severity, orjson.loads(rules) if rules else None)) <= rank(wanted)
        for severity, rules in earlier
    ):
        return
    note = why or f"alert {alert.ref} ({alert.severity}) joined the incident"
    _update(session, org, incident, IncidentUpdate(severity=wanted, note=note))


def _called_for(org: OrgConfig, severity: str, rules: list[str] | None) -> str:
    """The level an alert of ``severity`` called for under its ``rules`` (their names, as stored) that open
    incidents, the most severe of theirs; an alert no such rule routed (attached by a person) under the
    severity map."""
    by_name = {rule.name: rule for rule in org.automation.rules}
    return called_level(org, [by_name[name] for name in rules or [] if name in by_name], severity)


def on_incident_timeline(
    session: Session, alert: Alert, *, performer: str, kind: TimelineKind, action: str, data: dict[str, Any]
) -> None:
    """An entry on the timeline of the alert's incident, if it is on one (the incident's row is locked)."""
    if alert.incident_id is None:
        return
    incident = incident_service.get_incident(session, alert.incident_id, for_update=True)
    incident_service.append_timeline(
        session, incident, performer=performer, kind=kind, action=action, data=data
    )


def _incident_of(session: Session, alert: Alert, known: Incident | None) -> Incident | None:
    if known is not None or alert.incident_id is None:
        return known
    return incident_service.get_incident(session, alert.incident_id, for_update=True)


_RuleSetting = Literal["resolve_to_monitoring", "acknowledge_incident_with_alerts"]


def _rule_value(org: OrgConfig, alert: Alert, name: str) -> Any:
    """The first of the alert's rules that overrides the setting decides; else the automation block."""
    for rule_name in alert.rules or []:
        rule = next((r for r in org.automation.rules if r.name == rule_name), None)
        value = getattr(rule, name) if rule is not None else None
        if value is not None:
            return value
    return getattr(org.automation, name)


def _rule_setting(org: OrgConfig, alert: Alert, name: _RuleSetting) -> bool:
    return bool(_rule_value(org, alert, name))


def _resolve_after(org: OrgConfig, alert: Alert) -> timedelta:
    after: timedelta = _rule_value(org, alert, "resolve_after")
    return after


def _resolve_to_monitoring(org: OrgConfig, alert: Alert) -> bool:
    return _rule_setting(org, alert, "resolve_to_monitoring")


def _refs(refs: list[str], limit: int = 10) -> str:
    shown = ", ".join(refs[:limit])
    return shown + (f" and {len(refs) - limit} more" if len(refs) > limit else "")


def carry_acknowledgement(session: Session, org: OrgConfig, alert: Alert) -> None:
    """An alert someone acknowledged while it was held (a maintenance window, its rule's delay) and that is
    now on an incident: the acknowledgement carries over, as if they had acknowledged it there (which stops
    the incident's escalation once every open alert is)."""
    if (
        alert.status == AlertStatus.acknowledged
        and alert.incident_id is not None
        and not follow.acknowledged_with_incident(session, alert)
    ):
        on_acknowledged(session, org, alert, performer=alert.acknowledged_by or PERFORMER, while_held=True)


def on_acknowledged(
    session: Session,
    org: OrgConfig,
    alert: Alert,
    *,
    performer: str = PERFORMER,
    at_source_by: str | None = None,
    while_held: bool = False,
) -> None:
    """``performer``: who acknowledged it, when a person did rather than its source. ``at_source_by``: who
    the source says acknowledged it there (Opsgenie's ``user``), when it tells. ``while_held``: the
    acknowledgement (or snooze) was made earlier, while the alert was held, and reaches the incident now."""
    incident = _incident_of(session, alert, None)
    if incident is not None:
        _acknowledge_with_alerts(session, org, alert, incident, performer, at_source_by, while_held)
    schedule_handlers(session, alert, "acknowledged")


def _held_acknowledgement(alert: Alert, performer: str) -> str:
    """How an acknowledgement made while the alert was held reads when it reaches the incident: when, and a
    snooze as a snooze (its end), not as an acknowledgement by hand made at the release."""
    if alert.snoozed_until is not None:
        until = alert.snoozed_until.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
        return (
            f"Alert {alert.ref} snoozed by {performer} until {until} (while it was held): if it still fires "
            f"then, it fires again and the first responders are paged as a reminder: {alert.summary_line}"
        )
    at = alert.acknowledged_at.astimezone(UTC).strftime("%H:%M UTC") if alert.acknowledged_at else "earlier"
    return f"Alert {alert.ref} acknowledged by hand (by {performer} at {at}, while it was held): " + (
        alert.summary_line
    )


def _acknowledge_with_alerts(
    session: Session,
    org: OrgConfig,
    alert: Alert,
    incident: Incident,
    performer: str,
    at_source_by: str | None = None,
    while_held: bool = False,
) -> None:
    """Record the alert's acknowledgement; when it was the last open alert of the incident still firing,
    acknowledge the incident the way a person does (which stops its escalation): by automation when the
    source acknowledged, by the person who acknowledged the alert here otherwise."""
    by_person = performer != PERFORMER
    if by_person:
        if while_held:
            action = _held_acknowledgement(alert, performer)
        else:
            action = f"Alert {alert.ref} acknowledged by hand: {alert.summary_line}"
        data: dict[str, Any] = {"alert": alert.id, "acknowledged_by": performer}
        if while_held and alert.snoozed_until is not None:
            data["until"] = alert.snoozed_until.isoformat()
    else:
        # A webhook alert is named by its integration too: "webhook" says nothing of which tool it was (each
        # format is a tool of its own); the other sources name the tool.
        integration = (
            session.get(IntegrationKey, alert.integration_id)
            if alert.integration_id is not None and alert.source == IntegrationType.webhook.value
            else None
        )
        source = alert.source
        data = {"alert": alert.id, "source": alert.source}
        if integration is not None and integration.name != alert.source:
            source = f"{alert.source} {integration.name}"
            data["integration"] = integration.name
        action = f"Alert {alert.ref} acknowledged at its source ({source})"
        if at_source_by:
            action += f" by {at_source_by}"
            data["acknowledged_at_source_by"] = at_source_by
    acknowledge = False
    if (
        incident.acknowledged_at is None
        and incident.status.is_open
        and _rule_setting(org, alert, "acknowledge_incident_with_alerts")
    ):
        # Column reads, not ORM rows: the statuses intake has just written, never a stale identity map.
        open_alerts = session.execute(
            select(Alert.id, Alert.status, Alert.source, Alert.acknowledged_by)
            .where(Alert.incident_id == incident.id, Alert.status != AlertStatus.resolved)
            .order_by(Alert.id)
        ).all()
        firing = [alert_id for alert_id, status, _, _ in open_alerts if status == AlertStatus.firing]
        # No open alert left (acknowledged and resolved in one delivery): the resolve settles the incident,
        # and an acknowledgement with no open alert behind it would stand for nothing.
        if firing:
            still = _refs([f"ALR-{alert_id}" for alert_id in firing])
            verb = "fires" if len(firing) == 1 else "fire"
            action += f"; {incident.ref} stays unacknowledged: {still} still {verb}"
            data["still_firing"] = firing
        elif open_alerts:
            acknowledged = [
                f"ALR-{alert_id} ({f'by {person}' if person else source})"
                for alert_id, _, source, person in open_alerts
            ]
            action += (
                f"; every open alert of {incident.ref} is acknowledged ({_refs(acknowledged)}), "
                f"so {performer} acknowledges the incident"
            )
            data["acknowledged_alerts"] = [alert_id for alert_id, *_ in open_alerts]
            acknowledge = True
    incident_service.append_timeline(
        session, incident, performer=performer, kind=TimelineKind.alert, action=action, data=data
    )
    if acknowledge:
        # The same path as a person's ack: ``incident.acknowledged`` stops escalation and pending pages.
        incident_service.acknowledge(session, ref=incident.id, performer=performer)


def on_resolved(
    session: Session, org: OrgConfig, alert: Alert, *, performer: str = PERFORMER, settle: bool = True
) -> None:
    """``performer``: who resolved it, when a person did rather than its source. ``settle=False``: the caller
    resolves more alerts in the same delivery and calls ``settle_resolved`` once they are all on the timeline,
    so that the status change ("all alerts resolved") comes after every alert's entry, not between them."""
    incident = _incident_of(session, alert, None)
    if incident is not None:
        by_person = performer != PERFORMER
        data: dict[str, Any] = {"alert": alert.id}
        if by_person:
            data["resolved_by"] = performer
        if alert.resolution_note:  # a person's note, or why automation resolved it (auto_resolve)
            data["note"] = alert.resolution_note
        incident_service.append_timeline(
            session,
            incident,
            performer=performer,
            kind=TimelineKind.alert,
            action=f"Alert {alert.ref} resolved"
            + (" by hand" if by_person else "")
            + f": {alert.summary_line}"
            + (f" — {alert.resolution_note}" if alert.resolution_note else ""),
            data=data,
        )
        if settle:
            settle_resolved(session, org, alert)
    # One resolved while its rule's delay held it: its created handlers, which were waiting for the incident,
    # run first (with none); ``schedule_handlers`` orders every event that way.
    schedule_handlers(session, alert, "resolved")


def settle_resolved(session: Session, org: OrgConfig, alert: Alert) -> None:
    """``resolve_to_monitoring``: once ``alert`` resolved (the last of a delivery's resolves on its incident),
    the incident moves to monitoring if none of its alerts is open now, unless it is flapping or the sender's
    latest notification of a group said it left alerts out (``max_alerts``): those may still fire."""
    incident = _incident_of(session, alert, None)
    if incident is None:
        return
    settle(session, org, incident, alert)


def settle(
    session: Session, org: OrgConfig, incident: Incident, alert: Alert, *, calmed: bool = False
) -> str:
    """``settle_resolved`` for ``incident``, whose alert ``alert`` resolved; ``calmed``: run when the incident
    stopped flapping (``alerts.settle``). What came of it, in words."""
    session.flush()
    still_open = session.scalar(
        select(Alert.id)
        .where(Alert.incident_id == incident.id, Alert.status != AlertStatus.resolved)
        .limit(1)
    )
    if still_open is not None:
        return f"ALR-{still_open} is open"
    # The incident's own rule decides, as for the move back (``_back_to_investigating``): not the rule of the
    # alert that happened to resolve last (one the storm guard put here, of another rule).
    own = _opening_alert(session, incident, alert)
    if not _resolve_to_monitoring(org, own):
        return "resolve_to_monitoring is off for its rule"
    if incident.status not in (IncidentStatus.investigating, IncidentStatus.identified):
        return f"it is {incident.status.value}"
    if (calm := flapping_until(session, org, incident)) is not None:
        _settle_when_calm(session, incident, alert, calm)
        return f"it is flapping until {calm.isoformat()}"
    if truncated := _truncated_groups(session, incident):
        _note_kept_open(session, incident, truncated)
        return "its sender left alerts out"
    note = "all alerts resolved"
    if calmed:
        window = format_duration(org.automation.flap_window)
        note += f", and none fired again for {window}: it stopped flapping"
    _update(session, org, incident, IncidentUpdate(status=IncidentStatus.monitoring, note=note))
    if (quiet := _resolve_after(org, own)) > timedelta(0):
        _resolve_when_quiet(session, incident, quiet)
    return "moved to monitoring"


def _truncated_groups(session: Session, incident: Incident) -> dict[str, int]:
    """The notification groups (Alertmanager's, Grafana's) of the incident's alerts whose latest notification
    here said the sender left alerts out (``truncatedAlerts``), with how many: by group key.

    An alert keeps the payload it first came in (``raw``) and the latest one that changed it (``last_raw``: an
    update, its resolve), each with the notification's group key and count; the alert of a group seen last
    tells what the group's latest notification said. Four JSON values per alert, read only when the last open
    alert of an incident resolves."""
    rows = session.execute(
        select(
            Alert.last_raw["groupKey"].as_string(),
            Alert.last_raw["truncatedAlerts"].as_integer(),
            Alert.raw["groupKey"].as_string(),
            Alert.raw["truncatedAlerts"].as_integer(),
        )
        .where(Alert.incident_id == incident.id, Alert.source.in_(_GROUPED_SOURCES))
        .order_by(Alert.last_seen_at.desc(), Alert.id.desc())
    )
    latest: dict[str, int] = {}
    for last_group, last_count, first_group, first_count in rows:
        group, count = (last_group, last_count) if last_group is not None else (first_group, first_count)
        if group is not None and group not in latest:
            latest[group] = count or 0
    return {group: count for group, count in sorted(latest.items()) if count > 0}


_GROUPED_SOURCES = ("alertmanager", "grafana")
_KEPT_OPEN = "All alerts resolved, but"


def _note_kept_open(session: Session, incident: Incident, truncated: dict[str, int]) -> None:
    """Say once per notification group why automation leaves the incident where it is with every alert
    resolved: the sender's latest notification of the group left alerts out, which may still fire."""
    noted = session.scalars(
        select(TimelineEntry.data).where(
            TimelineEntry.incident_id == incident.id,
            TimelineEntry.kind == TimelineKind.alert,
            TimelineEntry.action.startswith(_KEPT_OPEN),
        )
    )
    seen = {group for data in noted if data for group in data.get("group_keys", [])}
    new = {group: count for group, count in truncated.items() if group not in seen}
    if not new:
        return
    groups = "; ".join(f"of group {group} left {count} alert(s) out" for group, count in new.items())
    incident_service.append_timeline(
        session,
        incident,
        performer=PERFORMER,
        kind=TimelineKind.alert,
        action=f"{_KEPT_OPEN} {incident.ref} stays {incident.status.value}: the sender's latest notification "
        f"{groups} (its max_alerts), and those may still fire. It moves to monitoring when its alerts "
        "resolve in a notification that leaves none out; a person can move it.",
        data={"group_keys": sorted(new), "truncated_alerts": new},
    )


_TRUNCATED = "Incomplete notification"


def note_truncations(session: Session, source: str, truncated: list[tuple[int, int, AlertEvent]]) -> None:
    """Tell an incident, once per notification group, that its source left alerts of the group out of a
    notification (Alertmanager's ``max_alerts``): the incident may have more alerts than it shows.

    ``truncated``: (incident id, alert id, the event that came in the notification). Alertmanager repeats
    the flag on every notification of the group, so a group already noted on the incident is not noted
    again.
    """
    by_group: dict[tuple[int, str], tuple[int, list[int]]] = {}
    for incident_id, alert_id, event in truncated:
        group_key = event.group_key or "(no group key)"
        count, alert_ids = by_group.get((incident_id, group_key), (0, []))
        by_group[(incident_id, group_key)] = (max(count, event.truncated_alerts), [*alert_ids, alert_id])
    for (incident_id, group_key), (count, alert_ids) in sorted(by_group.items()):
        incident = incident_service.get_incident(session, incident_id, for_update=True)
        noted = session.scalars(
            select(TimelineEntry.data).where(
                TimelineEntry.incident_id == incident_id,
                TimelineEntry.kind == TimelineKind.alert,
                TimelineEntry.action.startswith(_TRUNCATED),
            )
        )
        if any(data and data.get("group_key") == group_key for data in noted):
            continue
        incident_service.append_timeline(
            session,
            incident,
            performer=PERFORMER,
            kind=TimelineKind.alert,
            action=f"{_TRUNCATED} from {source}: it left {count} alert(s) of group {group_key} out (its "
            f"max_alerts), so {incident.ref} may have more alerts than it shows; look in {source} for the "
            "rest. Later incomplete notifications of the group are not noted again.",
            data={"group_key": group_key, "truncated_alerts": count, "alerts": sorted(set(alert_ids))},
        )


def needs_work(org: OrgConfig, session: Session) -> bool:
    """False when no rule and no handler (in this process or one a worker announced) can act, so intake can
    skip the automation pass."""
    from warroom.alerts.handlers import any_installed

    return bool(org.automation.rules or org.automation.inhibit_rules) or any_installed(session)
