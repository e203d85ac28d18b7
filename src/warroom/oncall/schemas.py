from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, computed_field, model_validator

from warroom.fields import NOT_BLANK, VISIBLE_LINE
from warroom.timezones import OffsetDatetime


class ContactMethodRead(BaseModel):
    name: str
    channel: str
    to: str | None = Field(
        description="The address; null for a viewer; a URL by its host only for a responder, whole for an "
        "admin (a webhook URL may hold a secret)."
    )


class NotificationRuleRead(BaseModel):
    channel: str
    to: str | None = Field(
        description="The address; null for a viewer; a URL by its host only for a responder, whole for an "
        "admin."
    )
    delay_seconds: int
    contact: str | None = None


class PersonRead(BaseModel):
    name: str
    display_name: str
    email: str | None
    phone: str | None = Field(description="Null for a viewer.")
    chat_handle: str | None
    time_zone: str
    teams: list[str]
    contact_methods: list[ContactMethodRead]
    notification_rules: list[NotificationRuleRead] = Field(description="As they apply (defaults filled in).")


class TeamRead(BaseModel):
    name: str
    display_name: str
    members: list[str]
    manager: str | None
    schedule: str | None
    escalation_policy: str | None


class LayerRead(BaseModel):
    name: str
    shift_length_seconds: int
    handoff_time: str
    time_zone: str
    start: str
    participants: list[str]
    restricted: bool


class ScheduleRead(BaseModel):
    name: str
    description: str
    time_zone: str
    layers: list[LayerRead]


class ShiftRead(BaseModel):
    schedule: str
    person: str | None = Field(description="Null in a gap where nobody is on call.")
    display_name: str | None
    start: datetime
    end: datetime
    source: str = Field(description="layer:<name>, override, or none.")
    override_id: int | None = None


class OnCallRead(BaseModel):
    schedule: str
    at: datetime
    person: str | None
    display_name: str | None
    shift: ShiftRead


class OverrideCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    person: str = Field(min_length=1, max_length=200)
    start: OffsetDatetime
    end: OffsetDatetime
    reason: str = Field(default="", max_length=2000)

    @model_validator(mode="after")
    def _ordered(self) -> OverrideCreate:
        if self.end <= self.start:
            raise ValueError("end must be after start")
        return self


class OverrideRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    schedule: str
    person: str
    starts_at: datetime
    ends_at: datetime
    reason: str
    created_by: str
    created_at: datetime


class StepRead(BaseModel):
    targets: list[str]
    delay_seconds: int


class EscalationPolicyRead(BaseModel):
    name: str
    description: str
    repeat: int
    steps: list[StepRead]
    generated: bool = Field(default=False, description="Derived from a team, not written in the org file.")


class EscalationRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    policy: str
    mode: str
    severity: str
    state: str
    cycle: int = Field(
        description="Counts every pass through the steps; never repeats (pages are keyed by it)."
    )
    first_cycle: int = Field(description="The cycle this run started at: a severity raise starts a new run.")
    step: int
    started_at: datetime
    next_check_at: datetime | None
    requested_by: str | None = Field(
        description="The person who asked for this run of the policy, if one did."
    )
    request_note: str | None = Field(description="Their reason, which the run's pages carry.")
    origin: str | None = Field(
        default=None,
        description="What started this run: incident (its own policy), rule (a rule's page), person, or "
        "merge (another incident's run, which its merge into this one brought here); a severity raise "
        "supersedes only the incident's own run.",
    )
    merged_from: str | None = Field(
        default=None, description="For origin merge: the incident whose run this was (INC-6)."
    )

    @computed_field(description="The pass through the steps of this run, as the timeline numbers it.")
    def pass_number(self) -> int:
        return self.cycle - self.first_cycle + 1


class PageRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    policy: str
    escalation_id: int | None = Field(
        default=None, description="The escalation whose run sent it; null for a person paged by hand."
    )
    cycle: int
    pass_number: int | None = Field(
        default=None,
        description="The pass through the steps it was sent on, as the timeline and its escalation's "
        "pass_number number it; null for a page by hand, and for one of an earlier run of its escalation "
        "(before a severity raise or a resume started the run anew).",
    )
    step: int
    person: str
    rule: int
    channel: str
    to: str
    via: str
    status: str
    send_at: datetime
    sent_at: datetime | None
    delivery_id: int | None
    delivery_status: str | None = Field(
        default=None, description="What became of the notification: pending, sent, failed or dead."
    )
    error: str | None = None


class IncidentPaging(BaseModel):
    incident: str
    escalations: list[EscalationRead]
    pages: list[PageRead]

    @model_validator(mode="after")
    def _pass_numbers(self) -> IncidentPaging:
        # A page keeps its cycle, which never repeats; people read passes, numbered from its run's start.
        first_cycles = {escalation.id: escalation.first_cycle for escalation in self.escalations}
        for page in self.pages:
            first = first_cycles.get(page.escalation_id) if page.escalation_id is not None else None
            # A cycle before the run's first is an earlier run's, whose start the escalation no longer keeps.
            page.pass_number = page.cycle - first + 1 if first is not None and page.cycle >= first else None
        return self


class PageRequest(BaseModel):
    """A person asks for a page: another team's policy (a database expert for replication lag), the incident's
    own again after it was acknowledged or its escalation ran out, or one person by name."""

    model_config = ConfigDict(extra="forbid")
    policy: Annotated[str, StringConstraints(max_length=200), NOT_BLANK] | None = Field(
        default=None,
        description="The escalation policy to page; default: the incident's own (severity and services).",
    )
    person: Annotated[str, StringConstraints(max_length=200), NOT_BLANK] | None = Field(
        default=None,
        description="Page this person of the org file by their notification rules, instead of a policy.",
    )
    note: Annotated[str, StringConstraints(max_length=300), VISIBLE_LINE] | None = Field(
        default=None, description="Why, in one line; the page and the timeline show it."
    )

    @model_validator(mode="after")
    def _one_target(self) -> PageRequest:
        if self.policy is not None and self.person is not None:
            raise ValueError("give a policy or a person to page, not both")
        return self


class PageRequested(BaseModel):
    incident: str
    policy: str | None = Field(description="The policy paged; null for a person paged by name.")
    person: str | None = Field(default=None, description="The person paged by name, if one was.")
    requested_by: str
    note: str | None
