from __future__ import annotations

import math
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

from warroom.fields import VISIBLE_LINE, Instant, NonBlank, VisibleLine
from warroom.incidents.enums import IncidentStatus
from warroom.paging import Page

ImpactLevel = Literal["none", "low", "medium", "high"]
AlertSource = Literal["monitoring-alert", "customer-report", "internal-discovery", "third-party", "manual"]


# The longest summary or update Warroom keeps (a stack trace fits; a runaway template does not).
LONG_TEXT = 20_000


def cut_long_text(text: str) -> str:
    """``text`` within ``LONG_TEXT``, its end replaced by an ellipsis when longer: what automation writes
    from an alert's data must fit, or the whole delivery would be refused after the fact."""
    return text if len(text) <= LONG_TEXT else text[: LONG_TEXT - 1] + "…"


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class UserImpact(Strict):
    estimated: int | None = Field(default=None, ge=0, description="Users thought to be affected.")
    confirmed: int | None = Field(default=None, ge=0, description="Users known to be affected.")
    regions: list[str] = Field(default_factory=list, description="Geographic regions, e.g. us-east.")


class BusinessImpact(Strict):
    revenue: ImpactLevel = "none"
    reputation: ImpactLevel = "none"
    compliance: ImpactLevel = "none"


class Assessment(Strict):
    """The initial assessment: what the first responder knows and the answers to the first questions."""

    source: AlertSource = "manual"
    affected_systems: list[str] = Field(default_factory=list)
    symptoms: list[str] = Field(
        default_factory=list,
        description="Observed symptoms, e.g. complete_outage, data_loss, high_error_rate, slow_responses.",
    )
    user_impact: UserImpact = Field(default_factory=UserImpact)
    business_impact: BusinessImpact | None = Field(
        default_factory=BusinessImpact,
        description="Revenue, reputation and compliance impact; null when nobody has judged it yet (an "
        "incident an alert opened, unless its rule gives it).",
    )
    scope: str | None = Field(default=None, description="What is the scope of the impact?")
    users_affected: str | None = Field(default=None, description="How many users are affected, in words.")
    systems_involved: str | None = Field(default=None, description="Which systems or services are involved?")
    recurring: bool | None = Field(
        default=None, description="A recurring problem (true) or a new one (false)."
    )
    safety_concerns: str | bool | None = Field(
        default=None,
        description="Any immediate safety concern: what it is, e.g. 'smoke in the server room'. Leave it out "
        "(or false) when there is none; 'no', 'none', 'n/a', 'false', 'nothing', 'no safety concerns' and "
        "the like are read as none too.",
    )
    assessed_at: Instant | None = None

    @field_validator("safety_concerns", mode="before")
    @classmethod
    def _concern_or_none(cls, value: object) -> object:
        # One message for both forms, rather than pydantic's one per member of the union.
        if value is None or isinstance(value, str | bool):
            return value
        raise ValueError("should be a text saying what the concern is, or false when there is none")


class IncidentCreate(Strict):
    title: VisibleLine = Field(min_length=1, max_length=300)
    summary: str = Field(default="", max_length=LONG_TEXT)
    severity: str | None = Field(
        default=None, description="A level id from the severity matrix; suggested if absent."
    )
    services: list[str] = Field(default_factory=list)
    is_private: bool = False
    commander: Annotated[str, StringConstraints(max_length=200), VISIBLE_LINE] | None = None
    assessment: Assessment | None = None


class IncidentUpdate(Strict):
    title: Annotated[str, StringConstraints(min_length=1, max_length=300), VISIBLE_LINE] | None = None
    summary: str | None = Field(default=None, max_length=LONG_TEXT)
    severity: str | None = None
    status: IncidentStatus | None = None
    services: list[str] | None = None
    is_private: bool | None = None
    commander: Annotated[str, StringConstraints(min_length=1, max_length=200), VISIBLE_LINE] | None = None
    assessment: Assessment | None = None
    note: str | None = Field(default=None, max_length=5000, description="Why the change was made.")


class ResponderRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    name: str
    role: str
    contact: str
    joined_at: datetime
    left_at: datetime | None


class ResponderLeft(ResponderRead):
    unchanged: bool = Field(
        default=False,
        description="True when the responder had left already: this request changed nothing "
        "(left_at is when they did).",
    )


class ResponderCreate(Strict):
    name: VisibleLine = Field(min_length=1, max_length=200)
    role: str = Field(min_length=1, max_length=50)
    contact: str = Field(default="", max_length=300)


class IncidentRead(BaseModel):
    id: str = Field(description="Human id, e.g. INC-7.")
    number: int
    title: str
    summary: str
    severity: str
    status: IncidentStatus
    is_private: bool
    commander: str | None
    services: list[str]
    created_by: str
    created_at: datetime
    updated_at: datetime
    acknowledged_at: datetime | None
    acknowledged_by: str | None
    identified_at: datetime | None
    monitoring_at: datetime | None
    resolved_at: datetime | None
    closed_at: datetime | None
    response_due_at: datetime | None = Field(
        description="When acknowledgement is due by the severity target."
    )
    assessment: Assessment | None
    responders: list[ResponderRead] = Field(default_factory=list)
    merged_into: str | None = Field(
        default=None,
        description="The incident this one was merged into (its alerts and pages went there; resolved_at is "
        "when), e.g. INC-5; null when it is not merged (or was reopened since).",
    )
    update_due_at: datetime | None = Field(
        default=None,
        description="When the next war-room update is due (the severity's update_every after the last "
        "update, the commander's start, a severity change or a reopen); in the past when it is overdue (the "
        "commander was reminded, and is again every update_every). Null when no cadence runs (no commander, "
        "a severity without one, or the incident is not open).",
    )


class IncidentChanged(IncidentRead):
    """The answer to a change (``PATCH``, ``…/ack``): the incident as it is now."""

    unchanged: bool = Field(
        default=False,
        description="True when the request asked for nothing the incident did not have already (a second "
        "resolve or acknowledgement, the status it has): it changed nothing (a note still reaches the "
        "timeline).",
    )


class IncidentPage(Page[IncidentRead]): ...


class TimelineEntryCreate(Strict):
    action: NonBlank = Field(min_length=1, max_length=5000)
    impact: str | None = Field(default=None, max_length=5000)
    kind: Literal["action", "note"] = "action"
    system_state: dict[str, Any] | None = None

    @field_validator("system_state")
    @classmethod
    def _storable(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        """Entries are hash-chained: what is stored must read back exactly as it was hashed. A non-finite
        number would be stored as null (a false tamper alarm) and deep nesting could not be read back."""
        pending: list[tuple[Any, int]] = [(value, 1)]
        while pending:
            item, depth = pending.pop()
            if isinstance(item, float) and not math.isfinite(item):
                raise ValueError("numbers must be finite (no NaN or Infinity)")
            if isinstance(item, dict | list):
                if depth > SYSTEM_STATE_MAX_DEPTH:
                    raise ValueError(f"nested deeper than {SYSTEM_STATE_MAX_DEPTH} levels")
                pending.extend(
                    (child, depth + 1) for child in (item.values() if isinstance(item, dict) else item)
                )
        return value


SYSTEM_STATE_MAX_DEPTH = 32


class TimelineEntryRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    seq: int
    occurred_at: datetime
    performer: str
    kind: str
    action: str
    impact: str | None
    system_state: dict[str, Any] | None
    data: dict[str, Any] | None
    prev_hash: str
    hash: str


# A timeline is paged as the other lists are (capped at 500), but from its newest entry: a storm of alerts
# writes thousands of entries, and what a reader wants is the latest, or what came after the last one seen.
TIMELINE_PAGE = 100
TIMELINE_PAGE_MAX = 500


class TimelineQuery(Strict):
    """A page of a timeline: the newest ``limit`` entries (before ``before_seq``, skipping the ``offset``
    newest), or with ``after_seq`` the oldest ``limit`` after that entry (skipping ``offset`` of them)."""

    limit: int = Field(default=TIMELINE_PAGE, ge=1, le=TIMELINE_PAGE_MAX)
    offset: int = Field(default=0, ge=0, le=2_147_483_647)
    before_seq: int | None = Field(default=None, ge=1, le=2_147_483_647)
    after_seq: int | None = Field(default=None, ge=0, le=2_147_483_647)


class TimelinePage(Page[TimelineEntryRead]):
    """Entries oldest first. ``total``: the entries the cursors (``before_seq``, ``after_seq``) select; those
    not in this page or skipped by ``offset`` (``total - offset - len(items)``) are earlier ones (without
    ``after_seq``) or later ones (with it)."""


class CommunicationCreate(Strict):
    message: NonBlank = Field(min_length=1, max_length=LONG_TEXT)
    audience: str = Field(min_length=1, max_length=100)


class ChannelOutcome(BaseModel):
    """What became of an update on one of its audience's channels."""

    channel: str = Field(
        description="The audience's channel as the org file names it (email:exec@acme.example)."
    )
    outcome: Literal["queued", "not_sent", "logged"] = Field(
        description="queued: the worker sends it (follow `notification`); not_sent: it could not be made "
        "or could never arrive (`error`), a dead letter at once; logged: not a notification channel "
        "(status-page, in-app), the update is in the communications log only."
    )
    notification: int | None = Field(default=None, description="The notification (delivery) id, if any.")
    error: str | None = None


class CommunicationRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    sent_at: datetime
    sender: str
    audience: str
    channels: list[str]
    message: str
    outcomes: list[ChannelOutcome] | None = Field(
        default=None,
        description="What became of the update on each channel when it was sent (queued: given to the "
        "worker; `notify list` says whether it arrived).",
    )


class IncidentFilter(Strict):
    status: list[IncidentStatus] = Field(default_factory=list)
    severity: list[str] = Field(default_factory=list)
    service: str | None = None
    state: Literal["open", "closed", "all"] = "all"
    limit: int = Field(default=50, ge=1, le=500)
    offset: int = Field(default=0, ge=0, le=2_147_483_647)
    before_id: int | None = Field(default=None, ge=1, le=2_147_483_647)  # incidents numbered below it
