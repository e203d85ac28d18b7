"""Replaying stored alerts through an org file's rules: what would they have opened and paged?

Before a change to the rules goes live, the on-call lead wants to know what it does to the pager: how many of
last week's alerts would have opened an incident, how many pages, and how many of those at night. The alerts
Warroom stored are the test set. Each is replayed, in the order it first fired, through the file's
automation: its rules (``during`` and business hours at the time it fired), grouping (group-by values, the
group window), a rule's ``delay`` and ``wait_for_business_hours`` (an alert resolved before its incident would
have opened opens none), the storm guard, and ``resolve_after`` (an incident it would have resolved takes no
more alerts). Nothing is written.

An alert is replayed with the severity it has now (its latest), as from when it first fired. So one that got
worse under its dedup key counts as automation routes it: a warning no rule took that turned critical opens
the critical rule's incident (automation routes it again when it gets worse), and one already on an incident
raises it. The replay places that incident at the alert's first firing, not at its rise.

It is a model, not a second run of automation: maintenance windows, inhibition, joining by service
dependencies and incidents closed by people are left out, and an incident stays joinable while an alert of
its group fires, or one was seen within the window. What the replay says is what the rules alone do.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session, load_only

from warroom.alerts.automation import called_level, group_key, group_window, matching_rules, opening_scope
from warroom.alerts.models import FACT_COLUMNS, Alert
from warroom.alerts.schemas import Replay, RuleReplay
from warroom.auth import integrations
from warroom.oncall import service as oncall_service
from warroom.orgconfig import OrgConfig

# The columns rules and grouping read, the dedup key too (grouping falls back to it for an alert that names
# neither its service nor its type): the raw payloads stay on disk.
_COLUMNS = (
    Alert.id,
    *FACT_COLUMNS,
    Alert.dedup_key,
    Alert.first_seen_at,
    Alert.last_seen_at,
    Alert.resolved_at,
)


@dataclass
class _Group:
    """A group's incident, as far as the replay follows it."""

    last_seen: datetime
    # When its last alert resolved; None while one is open.
    quiet_since: datetime | None

    def take(self, alert: Alert) -> None:
        self.last_seen = max(self.last_seen, alert.last_seen_at)
        if self.quiet_since is not None:  # once an alert of the group stays open, it is never quiet
            self.quiet_since = None if alert.resolved_at is None else max(self.quiet_since, alert.resolved_at)

    def firing_at(self, moment: datetime) -> bool:
        """Whether an alert of the group (each one fired by ``moment``) was still firing then."""
        return self.quiet_since is None or self.quiet_since > moment

    def resolved_by(self, moment: datetime, resolve_after: timedelta) -> bool:
        """Whether ``resolve_after`` would have resolved the incident before ``moment``."""
        return (
            resolve_after > timedelta(0)
            and self.quiet_since is not None
            and moment - self.quiet_since >= resolve_after
        )

    @classmethod
    def of(cls, alert: Alert) -> _Group:
        return cls(alert.last_seen_at, alert.resolved_at)


@dataclass
class _Tally:
    alerts: int = 0
    incidents: int = 0
    pages: int = 0
    pages_outside_hours: int = 0


@dataclass
class _Replayer:
    org: OrgConfig
    rules: dict[str, _Tally] = field(default_factory=dict)
    # Each group's incident.
    groups: dict[str, _Group] = field(default_factory=dict)
    # Per escalation policy, when automation opened its recent incidents (the storm guard's window).
    openings: dict[str, deque[datetime]] = field(default_factory=dict)
    # Pages by day (in the org's time zone), for a chart of when the pager would have gone off.
    pages_by_day: dict[str, int] = field(default_factory=dict)
    alerts: int = 0
    unrouted: int = 0
    held_back: int = 0
    storm_guarded: int = 0

    def __post_init__(self) -> None:
        self.rules = {rule.name: _Tally() for rule in self.org.automation.rules}

    def play(self, alert: Alert, integration: str | None) -> None:
        automation = self.org.automation
        self.alerts += 1
        applied = matching_rules(self.org, alert, alert.first_seen_at, integration)
        if not applied:
            self.unrouted += 1
            return
        for rule in applied:
            self.rules[rule.name].alerts += 1
        acting = [rule for rule in applied if rule.incident is not None]
        if not acting:
            return
        opening = acting[0]
        assert opening.incident is not None
        key = group_key(opening, opening.incident, automation, alert)
        window = group_window(automation, opening.incident)
        group = self.groups.get(key)
        resolve_after = automation.resolve_after if opening.resolve_after is None else opening.resolve_after
        if opening.resolve_to_monitoring is False or (
            opening.resolve_to_monitoring is None and not automation.resolve_to_monitoring
        ):
            resolve_after = timedelta(0)  # only an incident automation moved to monitoring is resolved
        if (
            group is not None
            and window > timedelta(0)  # 0s: no grouping, each alert its own incident
            and (alert.first_seen_at - group.last_seen <= window or group.firing_at(alert.first_seen_at))
            and not group.resolved_by(alert.first_seen_at, resolve_after)
        ):
            group.take(alert)
            return
        opens_at = opening.incident.opens_at(self.org, alert.first_seen_at, alert.service)
        if alert.resolved_at is not None and alert.resolved_at <= opens_at and opens_at > alert.first_seen_at:
            self.held_back += 1  # a blip: resolved before its rule's delay (or business hours) was over
            return
        # As automation pages: the incident's own policy (unless its severity, the most severe its rules call
        # for, pages nobody), and the policies of the opening rule and every later one with an incident.
        _, services = opening_scope(self.org, opening.incident, alert)
        severity = called_level(self.org, acting, alert.severity)
        requested = [rule.page for rule in acting if rule.page]
        policies = oncall_service.policies_paged(self.org, severity, services, requested)
        if self._storm_guarded(policies, opens_at):
            self.storm_guarded += 1
            self.groups[key] = _Group.of(alert)
            return
        self.groups[key] = _Group.of(alert)
        tally = self.rules[opening.name]
        tally.incidents += 1
        if policies:
            hours, _ = self.org.business_hours_for([alert.service])
            tally.pages += len(policies)
            day = opens_at.astimezone(self.org.business_hours.zone).date().isoformat()
            self.pages_by_day[day] = self.pages_by_day.get(day, 0) + len(policies)
            if not hours.is_open(opens_at):
                tally.pages_outside_hours += len(policies)

    def _storm_guarded(self, policies: list[str], at: datetime) -> bool:
        """Whether the storm guard holds an incident that pages ``policies`` (each at its cap); else it is
        counted as opened."""
        guard = self.org.automation.storm_guard
        if not policies:
            return False
        recents = [self.openings.setdefault(policy, deque()) for policy in policies]
        if guard is not None:
            for recent in recents:
                while recent and recent[0] < at - guard.within:
                    recent.popleft()
            if all(len(recent) >= guard.incidents for recent in recents):
                return True
        for recent in recents:
            recent.append(at)
        return False

    def report(self, since: datetime, until: datetime) -> Replay:
        rules = [RuleReplay(rule=name, **vars(tally)) for name, tally in self.rules.items()]
        return Replay(
            since=since,
            until=until,
            alerts=self.alerts,
            unrouted=self.unrouted,
            incidents=sum(rule.incidents for rule in rules),
            pages=sum(rule.pages for rule in rules),
            pages_outside_hours=sum(rule.pages_outside_hours for rule in rules),
            held_back=self.held_back,
            storm_guarded=self.storm_guarded,
            rules=rules,
            pages_by_day=dict(sorted(self.pages_by_day.items())),
        )


def replay(session: Session, org: OrgConfig, *, since: datetime, until: datetime) -> Replay:
    """What ``org``'s automation would have done with the alerts that first fired in [since, until)."""
    names = integrations.names_by_id(session, needed=org.automation.matches_integrations)
    replayer = _Replayer(org)
    stored = session.scalars(
        select(Alert)
        .options(load_only(*_COLUMNS))
        .where(Alert.first_seen_at >= since, Alert.first_seen_at < until)
        .order_by(Alert.first_seen_at, Alert.id)
        .execution_options(yield_per=1000)
    )
    for alert in stored:
        integration = names.of(alert.integration_id)
        replayer.play(alert, integration)
    return replayer.report(since, until)
