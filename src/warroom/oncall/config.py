"""The org file's on-call part: people, teams, schedules of layered rotations, escalation policies.

Kept free of imports from ``warroom.orgconfig`` (which imports this module) so the two never cycle.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from datetime import date, datetime, time, timedelta
from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

from warroom.alerts.config import names_taken
from warroom.business_hours import BusinessHours
from warroom.durations import Duration
from warroom.fields import not_in_file, visible_line
from warroom.notify.config import (
    CHANNEL_TYPES,
    check_email_address,
    check_recipient,
    find_channel,
    recipient_problem,
)
from warroom.timezones import check_zone

if TYPE_CHECKING:
    from warroom.orgconfig import OrgConfig

_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_CLOCK = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")

# Bare channel types of notification delivery (warroom.notify); the org file's
# notification_channels add named ones (e.g. ops-webhook), which contacts may use too.
CHANNELS = CHANNEL_TYPES
PagingMode = Literal["all_hands", "escalate", "first_step", "none"]
PAGING_MODES = ("all_hands", "escalate", "first_step", "none")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _check_id(value: str) -> str:
    if not _ID.match(value):
        raise ValueError("must be letters, digits, '-', '_' or '.' (starting with a letter or digit)")
    return value


def _check_display_name(value: str) -> str:
    """A name shown to people (pages, timelines, the web UI) in place of the handle: one visible line, as the
    handle is (a line break or U+202E in it made a page or a timeline entry read as something else). Empty:
    the handle is shown."""
    return visible_line(value) if value else value


def _check_clock(value: str) -> str:
    if not _CLOCK.match(value):
        raise ValueError("must be a 24-hour time like 09:00")
    return value


def parse_clock(value: str) -> time:
    hour, minute = value.split(":")
    return time(int(hour), int(minute))


class ContactMethod(_Strict):
    name: str = Field(description="How rules refer to it, e.g. work-email.")
    channel: str = Field(description=f"{', '.join(CHANNELS)} or a notification_channels name.")
    to: Annotated[str, AfterValidator(check_recipient)] = Field(
        min_length=1, description="Address, webhook URL or chat handle."
    )

    _name = field_validator("name")(_check_id)


class NotificationRule(_Strict):
    """One personal rule: reach me on this contact method (or channel) this long after I am paged."""

    contact: str | None = Field(default=None, description="Name of one of the person's contact methods.")
    channel: str | None = Field(
        default=None, description="Or a channel (type or notification_channels name)."
    )
    to: Annotated[str, AfterValidator(check_recipient)] | None = Field(
        default=None, description="Destination for `channel`; defaults from the person."
    )
    delay: Duration = Field(default=timedelta(0), description="Wait this long (unless acknowledged).")

    @model_validator(mode="after")
    def _one_way(self) -> NotificationRule:
        if (self.contact is None) == (self.channel is None):
            raise ValueError("give exactly one of contact (a contact method name) or channel")
        if self.delay < timedelta(0):
            raise ValueError("delay must not be negative")
        return self


class PersonConfig(_Strict):
    name: str = Field(description="The person's id (handle) used everywhere else in the file.")
    display_name: str = ""
    email: Annotated[str, AfterValidator(check_email_address)] | None = None
    phone: str | None = None
    chat_handle: str | None = None
    time_zone: str = "UTC"
    contact_methods: list[ContactMethod] = Field(default_factory=list)
    notification_rules: list[NotificationRule] = Field(
        default_factory=list, description="Empty: email now if an email is set, else the console."
    )

    _name = field_validator("name")(_check_id)
    _display_name = field_validator("display_name")(_check_display_name)
    _zone = field_validator("time_zone")(check_zone)

    @property
    def label(self) -> str:
        return self.display_name or self.name

    def contact_method(self, name: str) -> ContactMethod | None:
        return next((c for c in self.contact_methods if c.name == name), None)


class TeamConfig(_Strict):
    name: str
    display_name: str = ""
    members: list[str] = Field(default_factory=list)
    manager: str | None = None
    schedule: str | None = Field(default=None, description="The team's on-call schedule.")
    escalation_policy: str | None = Field(default=None, description="The team's default policy.")
    business_hours: BusinessHours | None = Field(
        default=None,
        description="The team's own working hours (its time zone, days and holidays), for the services it "
        "owns: rules' during and wait_for_business_hours, and next-business-day targets. None: the org's.",
    )

    _name = field_validator("name")(_check_id)
    _display_name = field_validator("display_name")(_check_display_name)


class Restriction(_Strict):
    """The layer applies only on these weekdays between these local times (end before start: overnight)."""

    days: list[int] = Field(default_factory=lambda: [0, 1, 2, 3, 4, 5, 6], description="0 is Monday.")
    start: str = "00:00"
    end: str = "00:00"

    _start = field_validator("start", "end")(_check_clock)

    @field_validator("days")
    @classmethod
    def _weekdays(cls, value: list[int]) -> list[int]:
        if not value or any(day < 0 or day > 6 for day in value):
            raise ValueError("weekdays are 0 (Monday) to 6 (Sunday), at least one")
        return sorted(set(value))


class LayerConfig(_Strict):
    name: str = ""
    shift_length: Duration = Field(description="e.g. 1w, 1d, 12h.")
    handoff_time: str = Field(default="09:00", description="Local wall-clock time of the hand-off.")
    time_zone: str = "UTC"
    start: date = Field(description="The first shift starts on this day at the hand-off time.")
    participants: list[str] = Field(default_factory=list, description="People, in rotation order.")
    restrictions: list[Restriction] = Field(default_factory=list)

    _zone = field_validator("time_zone")(check_zone)
    _clock = field_validator("handoff_time")(_check_clock)

    @field_validator("shift_length")
    @classmethod
    def _positive(cls, value: timedelta) -> timedelta:
        if value < timedelta(minutes=1) or value > timedelta(days=365):
            raise ValueError("a shift must last between 1 minute and 365 days")
        return value


class OverrideConfig(_Strict):
    person: str
    start: datetime
    end: datetime

    @model_validator(mode="after")
    def _ordered(self) -> OverrideConfig:
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise ValueError("start and end need a UTC offset, e.g. 2026-12-24T09:00:00+01:00")
        if self.end <= self.start:
            raise ValueError("end must be after start")
        return self


class ScheduleConfig(_Strict):
    name: str
    description: str = ""
    time_zone: str = Field(default="UTC", description="Zone used to show the schedule.")
    layers: list[LayerConfig] = Field(default_factory=list, description="Later layers win where they apply.")
    overrides: list[OverrideConfig] = Field(default_factory=list)

    _name = field_validator("name")(_check_id)
    _zone = field_validator("time_zone")(check_zone)


class TargetConfig(_Strict):
    """Exactly one of: a person, a schedule (whoever is on call), a team (every member), a team's manager."""

    person: str | None = None
    schedule: str | None = None
    team: str | None = None
    manager_of: str | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> TargetConfig:
        given = [v for v in (self.person, self.schedule, self.team, self.manager_of) if v is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of person, schedule, team or manager_of")
        return self

    @property
    def kind(self) -> str:
        for kind in ("person", "schedule", "team", "manager_of"):
            if getattr(self, kind) is not None:
                return kind
        raise AssertionError("validated to have one")

    @property
    def name(self) -> str:
        value: str = getattr(self, self.kind)
        return value

    def describe(self) -> str:
        return {"person": "", "schedule": "on call for ", "team": "team ", "manager_of": "manager of "}[
            self.kind
        ] + self.name


class StepConfig(_Strict):
    targets: list[TargetConfig] = Field(default_factory=list)
    delay: Duration = Field(default=timedelta(minutes=15), description="Ack deadline before the next step.")

    @field_validator("delay")
    @classmethod
    def _positive(cls, value: timedelta) -> timedelta:
        if value < timedelta(minutes=1):
            raise ValueError("a step's delay must be at least 1 minute")
        return value


class EscalationPolicyConfig(_Strict):
    name: str
    description: str = ""
    repeat: int = Field(default=0, ge=0, le=20, description="Passes through the steps after the first.")
    steps: list[StepConfig] = Field(default_factory=list)

    _name = field_validator("name")(_check_id)

    @property
    def fingerprint(self) -> str:
        """What the policy does (its steps and repeats), without its name: a policy a reload only renamed has
        the same fingerprint, so a page asked of it under the old name can find it."""
        body = self.model_dump(mode="json", exclude={"name", "description"})
        return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:16]


def default_recipient(org: OrgConfig, person: PersonConfig, channel: str) -> str | None:
    """Where a rule naming only a channel reaches the person: by the channel's type."""
    config = find_channel(org, channel)
    if config is None:
        return None
    personal = {"email": person.email, "slack": person.chat_handle, "console": person.name}.get(config.type)
    return personal or config.to


def _nowhere_to_post(problems: list[str], org: OrgConfig, where: str, channel: str, to: str) -> None:
    """A page to ``to`` through a Slack or webhook ``channel`` with no URL, or through an email channel to
    what is not an email address, would be refused every time."""
    config = find_channel(org, channel)
    reason = recipient_problem(config, to) if config is not None else None
    if reason:
        got = "" if repr(to) in reason else f" (got {to!r})"
        problems.append(f"{where}.to: {reason}{got}: every page this way would be refused")


def default_paging_modes() -> dict[str, PagingMode]:
    """The seed's matrix: P0 all hands, P1 on-call then manager, P2 the assigned engineer, P3 nobody."""
    return {"P0": "all_hands", "P1": "escalate", "P2": "first_step", "P3": "none"}


def _oncall_names(org: OrgConfig) -> list[str]:
    """Names given twice, each section on its own: one that did not parse skips only its own."""
    problems: list[str] = []
    # Both places named, as for services and rules ("'bob' at line 212 is already the name of the person at
    # line 40").
    for section, kind in (
        ("people", "person"),
        ("teams", "team"),
        ("schedules", "schedule"),
        ("escalation_policies", "escalation policy"),
    ):
        try:
            entries = getattr(org, section)
        except AttributeError:  # the section did not parse (``_salvaged_reference_problems``)
            continue
        problems += names_taken(section, [entry.name for entry in entries], kind)
    return problems


def _contact_references(org: OrgConfig) -> list[str]:
    """People's contact methods and notification rules: their channels, contacts and recipients."""
    problems: list[str] = []
    channels = sorted({c.name for c in org.notification_channels} | set(CHANNEL_TYPES))
    for index, person in enumerate(org.people):
        method_names = [c.name for c in person.contact_methods]
        for method_index, method in enumerate(person.contact_methods):
            if method.channel not in channels:
                problems.append(
                    f"people[{index}].contact_methods[{method_index}].channel: "
                    f"unknown channel {method.channel!r} (allowed: {', '.join(channels)})"
                )
            else:
                _nowhere_to_post(
                    problems,
                    org,
                    f"people[{index}].contact_methods[{method_index}]",
                    method.channel,
                    method.to,
                )
        for rule_index, rule in enumerate(person.notification_rules):
            where = f"people[{index}].notification_rules[{rule_index}]"
            if rule.contact is not None and rule.contact not in method_names:
                problems.append(
                    f"{where}.contact: {not_in_file(rule.contact, 'contact method', method_names)}"
                )
            if rule.channel is not None and rule.channel not in channels:
                problems.append(
                    f"{where}.channel: unknown channel {rule.channel!r} (allowed: {', '.join(channels)})"
                )
            elif rule.channel is not None:
                to = rule.to or default_recipient(org, person, rule.channel)
                if not to:
                    problems.append(f"{where}.to: channel {rule.channel!r} needs `to` for this person")
                else:
                    _nowhere_to_post(problems, org, where, rule.channel, to)
    return problems


def _team_references(org: OrgConfig) -> list[str]:
    problems: list[str] = []
    people = [p.name for p in org.people]
    schedules = [s.name for s in org.schedules]
    policies = [p.name for p in org.escalation_policies]
    for index, team in enumerate(org.teams):
        for item, member in enumerate(team.members):
            if member not in people:
                problems.append(f"teams[{index}].members[{item}]: {not_in_file(member, 'person', people)}")
        if team.manager is not None and team.manager not in people:
            problems.append(f"teams[{index}].manager: {not_in_file(team.manager, 'person', people)}")
        if team.schedule is not None and team.schedule not in schedules:
            problems.append(f"teams[{index}].schedule: {not_in_file(team.schedule, 'schedule', schedules)}")
        if team.escalation_policy is not None and team.escalation_policy not in policies:
            problems.append(
                f"teams[{index}].escalation_policy: {not_in_file(team.escalation_policy, 'policy', policies)}"
            )
    return problems


def _schedule_references(org: OrgConfig) -> list[str]:
    problems: list[str] = []
    people = [p.name for p in org.people]
    for index, schedule in enumerate(org.schedules):
        if not schedule.layers:
            problems.append(f"schedules[{index}].layers: a schedule needs at least one rotation layer")
        for layer_index, layer in enumerate(schedule.layers):
            where = f"schedules[{index}].layers[{layer_index}]"
            if not layer.participants:
                problems.append(f"{where}.participants: a rotation needs at least one participant")
            for item, participant in enumerate(layer.participants):
                if participant not in people:
                    problems.append(
                        f"{where}.participants[{item}]: {not_in_file(participant, 'person', people)}"
                    )
        for override_index, override in enumerate(schedule.overrides):
            if override.person not in people:
                problems.append(
                    f"schedules[{index}].overrides[{override_index}].person: "
                    + not_in_file(override.person, "person", people)
                )
    return problems


def _policy_references(org: OrgConfig) -> list[str]:
    problems: list[str] = []
    people = [p.name for p in org.people]
    teams = [t.name for t in org.teams]
    schedules = [s.name for s in org.schedules]
    for index, policy in enumerate(org.escalation_policies):
        if not policy.steps:
            problems.append(f"escalation_policies[{index}].steps: a policy needs at least one step")
        for step_index, step in enumerate(policy.steps):
            where = f"escalation_policies[{index}].steps[{step_index}].targets"
            if not step.targets:
                problems.append(f"{where}: a step needs at least one target")
            for item, target in enumerate(step.targets):
                known = {"person": people, "schedule": schedules, "team": teams, "manager_of": teams}[
                    target.kind
                ]
                label = "team" if target.kind == "manager_of" else target.kind
                if target.name not in known:
                    problems.append(f"{where}[{item}]: {not_in_file(target.name, label, known)}")
                elif target.kind == "manager_of":
                    team_config = next(t for t in org.teams if t.name == target.name)
                    if team_config.manager is None:
                        problems.append(f"{where}[{item}]: team {target.name!r} has no manager")
    return problems


def _severity_policy_references(org: OrgConfig) -> list[str]:
    problems: list[str] = []
    severity_ids = [s.id for s in org.severities]
    policies = [p.name for p in org.escalation_policies]
    for severity_id, policy_name in org.severity_policies.items():
        if severity_id not in severity_ids:
            problems.append(
                f"severity_policies.{severity_id}: not one of the severities {', '.join(severity_ids)}"
            )
        if policy_name not in policies:
            problems.append(
                f"severity_policies.{severity_id}: {not_in_file(policy_name, 'policy', policies)}"
            )
    return problems


def _paging_mode_references(org: OrgConfig) -> list[str]:
    problems: list[str] = []
    severity_ids = [s.id for s in org.severities]
    for severity_id, mode in org.paging_modes.items():
        if severity_id not in severity_ids and severity_id not in default_paging_modes():
            problems.append(
                f"paging_modes.{severity_id}: not one of the severities {', '.join(severity_ids)}"
            )
        if mode not in PAGING_MODES:
            problems.append(f"paging_modes.{severity_id}: {mode!r} is not one of {', '.join(PAGING_MODES)}")
    return problems


def _service_policy_references(org: OrgConfig) -> list[str]:
    policies = [p.name for p in org.escalation_policies]
    return [
        f"services[{index}].escalation_policy: " + not_in_file(service.escalation_policy, "policy", policies)
        for index, service in enumerate(org.services)
        if service.escalation_policy is not None and service.escalation_policy not in policies
    ]


# Cross-references of the on-call sections, as "section[index].field: message" strings. Apart, so that a
# section that did not parse (a paging mode's typo, a channel of an unknown type) skips only the checks that
# read it, not every on-call one.
ONCALL_REFERENCE_CHECKS: tuple[Callable[[OrgConfig], list[str]], ...] = (
    _oncall_names,
    _contact_references,
    _team_references,
    _schedule_references,
    _policy_references,
    _severity_policy_references,
    _paging_mode_references,
    _service_policy_references,
)
