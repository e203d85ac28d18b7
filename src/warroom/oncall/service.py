"""On-call operations: people, teams, who is on call, shifts, overrides, escalation policies."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TypeVar

from sqlalchemy import select
from sqlalchemy.orm import Session

from warroom import spans
from warroom.db import utcnow
from warroom.errors import InvalidInput, NotFound
from warroom.fields import in_era
from warroom.notify import service as notify_service
from warroom.oncall import schedule as schedule_math
from warroom.oncall.config import (
    EscalationPolicyConfig,
    PagingMode,
    PersonConfig,
    ScheduleConfig,
    StepConfig,
    TargetConfig,
    TeamConfig,
    default_recipient,
)
from warroom.oncall.models import ScheduleOverride
from warroom.oncall.schemas import (
    ContactMethodRead,
    EscalationPolicyRead,
    LayerRead,
    NotificationRuleRead,
    OnCallRead,
    OverrideCreate,
    OverrideRead,
    PersonRead,
    ScheduleRead,
    ShiftRead,
    StepRead,
    TeamRead,
)
from warroom.orgconfig import OrgConfig

MAX_SHIFTS = 200
OVERRIDE_MAX_LENGTH = timedelta(days=31)


# --- people and teams ------------------------------------------------------------------------------


Named = TypeVar("Named", PersonConfig, TeamConfig, ScheduleConfig)


def _by_name(items: list[Named], name: str, what: str) -> Named:
    found = next((item for item in items if item.name == name), None)
    if found is None:
        known = [item.name for item in items]
        raise NotFound(f"no {what} {name!r}; known: {', '.join(known) or 'none'}", {"allowed": known})
    return found


def get_person(org: OrgConfig, name: str) -> PersonConfig:
    return _by_name(org.people, name, "person")


def get_team(org: OrgConfig, name: str) -> TeamConfig:
    return _by_name(org.teams, name, "team")


def get_schedule(org: OrgConfig, name: str) -> ScheduleConfig:
    return _by_name(org.schedules, name, "schedule")


@dataclass(frozen=True)
class EffectiveRule:
    index: int
    channel: str
    to: str
    delay: timedelta
    contact: str | None = None


def effective_rules(org: OrgConfig, person: PersonConfig) -> list[EffectiveRule]:
    """The person's notification rules with destinations filled in; email now (or console) by default."""
    if not person.notification_rules:
        if person.email:
            return [EffectiveRule(0, "email", person.email, timedelta(0))]
        return [EffectiveRule(0, "console", person.name, timedelta(0))]
    rules: list[EffectiveRule] = []
    for index, rule in enumerate(person.notification_rules):
        if rule.contact is not None:
            method = person.contact_method(rule.contact)
            if method is None:
                continue  # rejected when the org file is loaded
            rules.append(EffectiveRule(index, method.channel, method.to, rule.delay, method.name))
            continue
        assert rule.channel is not None
        to = rule.to or default_recipient(org, person, rule.channel)
        if to:
            rules.append(EffectiveRule(index, rule.channel, to, rule.delay))
    return rules


def person_read(
    org: OrgConfig, person: PersonConfig, *, addresses: bool = True, whole_urls: bool = True
) -> PersonRead:
    """A person of the org file; without ``addresses`` (for viewers) their phone and the addresses they are
    paged at are left out, as the pages of an incident are. Without ``whole_urls`` (responders) a URL they
    are paged at (a webhook, a credential in itself) is shown by its host, as the notifications API and an
    incident's pages show it to them; admins, who read the org file anyway, see it whole."""

    def shown(to: str | None) -> str | None:
        if not addresses or to is None:
            return None
        return to if whole_urls else notify_service.shown_recipient(to)

    return PersonRead(
        name=person.name,
        display_name=person.label,
        email=person.email,
        phone=person.phone if addresses else None,
        chat_handle=person.chat_handle,
        time_zone=person.time_zone,
        teams=[t.name for t in org.teams if person.name in t.members or t.manager == person.name],
        contact_methods=[
            ContactMethodRead(name=c.name, channel=c.channel, to=shown(c.to)) for c in person.contact_methods
        ],
        notification_rules=[
            NotificationRuleRead(
                channel=r.channel,
                to=shown(r.to),
                delay_seconds=int(r.delay.total_seconds()),
                contact=r.contact,
            )
            for r in effective_rules(org, person)
        ],
    )


def list_people(org: OrgConfig, *, addresses: bool = True, whole_urls: bool = True) -> list[PersonRead]:
    return [person_read(org, p, addresses=addresses, whole_urls=whole_urls) for p in org.people]


def list_teams(org: OrgConfig) -> list[TeamRead]:
    return [
        TeamRead(
            name=t.name,
            display_name=t.display_name or t.name,
            members=t.members,
            manager=t.manager,
            schedule=t.schedule,
            escalation_policy=t.escalation_policy,
        )
        for t in org.teams
    ]


def list_schedules(org: OrgConfig) -> list[ScheduleRead]:
    return [
        ScheduleRead(
            name=s.name,
            description=s.description,
            time_zone=s.time_zone,
            layers=[
                LayerRead(
                    name=schedule_math.layer_label(layer, index),
                    shift_length_seconds=int(layer.shift_length.total_seconds()),
                    handoff_time=layer.handoff_time,
                    time_zone=layer.time_zone,
                    start=layer.start.isoformat(),
                    participants=layer.participants,
                    restricted=bool(layer.restrictions),
                )
                for index, layer in enumerate(s.layers)
            ],
        )
        for s in org.schedules
    ]


# --- who is on call ----------------------------------------------------------------------------------


def _aware(at: datetime | None, field: str = "at") -> datetime:
    if at is None:
        return utcnow()
    if at.tzinfo is None:
        raise InvalidInput(f"{field} needs a UTC offset, e.g. 2026-03-29T09:00:00Z", {"field": field})
    _in_range(at, field)
    return at.astimezone(UTC)


def _in_range(at: datetime, field: str) -> None:
    # Schedules are computed a year or so either side; keep far-off instants from overflowing.
    try:
        in_era(at)
    except ValueError as exc:
        raise InvalidInput(f"{field} {exc}", {"field": field}) from None


def overrides_for(session: Session, schedule: ScheduleConfig) -> list[schedule_math.OverrideSpan]:
    """Config overrides first, then runtime ones by id, so the newest runtime override wins."""
    return _overrides_of(session, [schedule])[schedule.name]


def _overrides_of(
    session: Session, schedules: list[ScheduleConfig]
) -> dict[str, list[schedule_math.OverrideSpan]]:
    """``overrides_for`` of each schedule, in one query (not one a schedule)."""
    found = {schedule.name: schedule_math.config_overrides(schedule) for schedule in schedules}
    query = select(ScheduleOverride).order_by(ScheduleOverride.id)
    if len(schedules) == 1:
        query = query.where(ScheduleOverride.schedule == schedules[0].name)
    for row in session.scalars(query):
        if row.schedule in found:
            found[row.schedule].append(
                schedule_math.OverrideSpan(row.person, row.starts_at, row.ends_at, f"override:{row.id}")
            )
    return found


def _shift_read(org: OrgConfig, shift: schedule_math.Shift) -> ShiftRead:
    person = next((p for p in org.people if p.name == shift.person), None)
    return ShiftRead(
        schedule=shift.schedule,
        person=shift.person,
        display_name=person.label if person else None,
        start=shift.start,
        end=shift.end,
        source=shift.source,
        override_id=shift.override_id,
    )


def on_call_person(session: Session, org: OrgConfig, schedule_name: str, at: datetime) -> str | None:
    schedule = get_schedule(org, schedule_name)
    return schedule_math.person_at(schedule, at, overrides_for(session, schedule))


def who_is_on_call(
    session: Session, *, org: OrgConfig, at: datetime | None = None, schedule: str | None = None
) -> list[OnCallRead]:
    moment = _aware(at)
    schedules = [get_schedule(org, schedule)] if schedule else org.schedules
    overrides = _overrides_of(session, schedules)
    result = []
    for config in schedules:
        shift = _shift_read(org, schedule_math.on_call_at(config, moment, overrides[config.name]))
        result.append(
            OnCallRead(
                schedule=config.name,
                at=moment,
                person=shift.person,
                display_name=shift.display_name,
                shift=shift,
            )
        )
    return result


def upcoming_shifts(
    session: Session, *, org: OrgConfig, schedule: str, count: int = 10, after: datetime | None = None
) -> list[ShiftRead]:
    if count < 1 or count > MAX_SHIFTS:
        raise InvalidInput(f"count must be between 1 and {MAX_SHIFTS}", {"field": "count"})
    config = get_schedule(org, schedule)
    moment = _aware(after, "after")
    shifts = schedule_math.next_shifts(config, moment, count, overrides_for(session, config))
    return [_shift_read(org, shift) for shift in shifts]


# --- overrides --------------------------------------------------------------------------------------


def create_override(
    session: Session, *, org: OrgConfig, schedule: str, data: OverrideCreate, performer: str
) -> ScheduleOverride:
    config = get_schedule(org, schedule)
    _in_range(data.start, "start")
    _in_range(data.end, "end")
    known = [p.name for p in org.people]
    if data.person not in known:
        raise InvalidInput(
            f"unknown person {data.person!r}; allowed: {', '.join(known)}",
            {"field": "person", "allowed": known},
        )
    # The limits of a maintenance window, but up to a month long (a holiday's cover; a weekly shift across a
    # clock change is a week and an hour): one in the past would change nothing, and one of ten years (a
    # typo) would keep one person on call for all of it.
    spans.check_span(
        "override",
        now=utcnow(),
        starts_at=data.start,
        ends_at=data.end,
        start_field="start",
        end_field="end",
        max_length=OVERRIDE_MAX_LENGTH,
    )
    row = ScheduleOverride(
        schedule=config.name,
        person=data.person,
        starts_at=data.start.astimezone(UTC),
        ends_at=data.end.astimezone(UTC),
        reason=data.reason,
        created_by=performer,
        created_at=utcnow(),
    )
    session.add(row)
    session.flush()
    return row


def list_overrides(
    session: Session, *, org: OrgConfig, schedule: str, include_past: bool = False
) -> list[OverrideRead]:
    config = get_schedule(org, schedule)
    statement = select(ScheduleOverride).where(ScheduleOverride.schedule == config.name)
    if not include_past:
        statement = statement.where(ScheduleOverride.ends_at > utcnow())
    rows = session.scalars(statement.order_by(ScheduleOverride.starts_at, ScheduleOverride.id))
    return [OverrideRead.model_validate(row) for row in rows]


def delete_override(session: Session, *, org: OrgConfig, schedule: str, override_id: int) -> OverrideRead:
    config = get_schedule(org, schedule)
    row = session.get(ScheduleOverride, override_id)
    if row is None or row.schedule != config.name:
        raise NotFound(f"no override {override_id} on schedule {config.name!r}")
    read = OverrideRead.model_validate(row)
    session.delete(row)
    session.flush()
    return read


# --- escalation policies ------------------------------------------------------------------------------


def _team_policy(org: OrgConfig, team: TeamConfig) -> EscalationPolicyConfig | None:
    """A team's implied policy: its on-call (or its members), then its manager."""
    first: list[TargetConfig] = (
        [TargetConfig(schedule=team.schedule)]
        if team.schedule
        else ([TargetConfig(team=team.name)] if team.members else [])
    )
    steps: list[StepConfig] = []
    if first:
        steps.append(StepConfig(targets=first, delay=timedelta(minutes=15)))
    if team.manager:
        steps.append(StepConfig(targets=[TargetConfig(manager_of=team.name)], delay=timedelta(minutes=15)))
    if not steps:
        return None
    return EscalationPolicyConfig(
        name=f"{team.name}-default",
        description=f"Generated for team {team.name}: on-call, then the manager.",
        repeat=1,
        steps=steps,
    )


def get_policy(org: OrgConfig, name: str) -> EscalationPolicyConfig:
    policy = next((p for p in org.escalation_policies if p.name == name), None)
    if policy is not None:
        return policy
    for team in org.teams:
        generated = _team_policy(org, team)
        if generated is not None and generated.name == name:
            return generated
    known = [p.name for p in org.escalation_policies]
    raise NotFound(f"no escalation policy {name!r}; known: {', '.join(known) or 'none'}", {"allowed": known})


def policy_for_incident(org: OrgConfig, severity: str, services: list[str]) -> EscalationPolicyConfig | None:
    """The severity's mapped policy, else the first affected service's, else its owner team's."""
    mapped = org.severity_policies.get(severity)
    if mapped:
        return get_policy(org, mapped)
    for name in services:
        service = org.service(name)
        if service is not None and service.escalation_policy:
            return get_policy(org, service.escalation_policy)
    for name in services:
        service = org.service(name)
        if service is None or service.owner_team is None:
            continue
        team = next((t for t in org.teams if t.name == service.owner_team), None)
        if team is None:
            continue
        if team.escalation_policy:
            return get_policy(org, team.escalation_policy)
        generated = _team_policy(org, team)
        if generated is not None:
            return generated
    return None


def why_no_policy(org: OrgConfig, severity: str, services: list[str]) -> str:
    """What the org file lacks where ``policy_for_incident`` looked, when it found no policy: for the
    timeline, so that the one thing to add is named (a team with nobody to page, not "give it a team")."""
    gaps: list[str] = []
    for name in services:
        service = org.service(name)
        if service is None:
            gaps.append(f"{name} is not a service of the org file")
        elif service.owner_team is None:
            gaps.append(f"{name} has no escalation_policy and no owner_team")
        elif not any(team.name == service.owner_team for team in org.teams):
            gaps.append(f"{name}'s owner team {service.owner_team} is not in teams")
        else:
            gaps.append(
                f"{name}'s owner team {service.owner_team} has no escalation_policy, schedule, members or "
                "manager to page"
            )
    found = ", ".join(gaps) if gaps else "the incident names no service"
    return f"{found}, and severity_policies maps no policy to {severity}"


def policies_paged(org: OrgConfig, severity: str, services: list[str], requested: list[str]) -> list[str]:
    """The escalation policies a new incident pages: its own (``policy_for_incident``) unless its severity
    pages nobody, and those a rule asks for (``requested``; asked for, they page whatever the severity)."""
    names = list(dict.fromkeys(requested))
    if paging_mode(org, severity) != "none":
        try:
            own = policy_for_incident(org, severity, services)
        except NotFound:
            own = None  # a mapping to a policy that is gone: paging says so on the timeline
        if own is not None and own.name not in names:
            names.append(own.name)
    return names


def paging_mode(org: OrgConfig, severity: str) -> PagingMode:
    mode = org.paging_modes.get(severity)
    if mode is not None:
        return mode
    level = org.severity(severity)
    return "escalate" if level is None or level.page else "none"


def _policy_read(policy: EscalationPolicyConfig, generated: bool) -> EscalationPolicyRead:
    return EscalationPolicyRead(
        name=policy.name,
        description=policy.description,
        repeat=policy.repeat,
        steps=[
            StepRead(targets=[t.describe() for t in s.targets], delay_seconds=int(s.delay.total_seconds()))
            for s in policy.steps
        ],
        generated=generated,
    )


def list_policies(org: OrgConfig) -> list[EscalationPolicyRead]:
    result = [_policy_read(p, False) for p in org.escalation_policies]
    for team in org.teams:
        generated = _team_policy(org, team)
        if generated is not None and not team.escalation_policy:
            result.append(_policy_read(generated, True))
    return result


@dataclass(frozen=True)
class Recipient:
    person: PersonConfig
    via: str  # how the step reached them, e.g. "on call for platform-primary"


def resolve_step(session: Session, org: OrgConfig, step: StepConfig, at: datetime) -> list[Recipient]:
    """The people a step reaches at ``at``, each once, in target order."""
    recipients: dict[str, Recipient] = {}

    def add(name: str | None, via: str) -> None:
        if name is None or name in recipients:
            return
        person = next((p for p in org.people if p.name == name), None)
        if person is not None:
            recipients[name] = Recipient(person, via)

    for target in step.targets:
        if target.person is not None:
            add(target.person, "named in the policy")
        elif target.schedule is not None:
            add(on_call_person(session, org, target.schedule, at), f"on call for {target.schedule}")
        elif target.team is not None:
            for member in get_team(org, target.team).members:
                add(member, f"member of {target.team}")
        elif target.manager_of is not None:
            add(get_team(org, target.manager_of).manager, f"manager of {target.manager_of}")
    return list(recipients.values())
