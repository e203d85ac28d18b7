"""Wire formats the intake endpoints accept, and the alert shapes the API returns."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

import orjson
from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

from warroom.alerts.config import AlertConditions, AlertSeverity
from warroom.alerts.enums import AlertStatus
from warroom.clock import clock
from warroom.durations import Duration, RequestDuration, format_duration
from warroom.errors import InvalidInput
from warroom.fields import NOT_BLANK, VISIBLE_LINE, NonBlank, one_line
from warroom.fields import safe_link as safe_link
from warroom.notify.config import check_email_address
from warroom.paging import Page
from warroom.timezones import OffsetDatetime

# --- Prometheus Alertmanager webhook (version 4) and Grafana unified alerting (its superset) ---------
# Unknown keys are allowed: newer senders add fields (notification_reason, routeLabels, values, ...).


class Lenient(BaseModel):
    model_config = ConfigDict(extra="allow")


class Unread(BaseModel):
    """A sender's shape of which only the declared fields are read (the raw payload is kept whole as
    evidence): other fields are let through and not copied, which costs less on a storm's every alert."""

    model_config = ConfigDict(extra="ignore")


class WebhookAlert(Unread):
    status: Literal["firing", "resolved"]
    labels: dict[str, str]
    annotations: dict[str, str] = Field(default_factory=dict)
    startsAt: str | None = None
    endsAt: str | None = None
    generatorURL: str | None = None
    fingerprint: str | None = Field(default=None, max_length=255)
    # Grafana extras
    silenceURL: str | None = None
    dashboardURL: str | None = None
    panelURL: str | None = None
    imageURL: str | None = None  # a screenshot of the panel, when Grafana takes them
    values: dict[str, Any] | None = None  # the query results by refID, e.g. {"B": 44.2}; kept as sent


class AlertmanagerWebhook(Unread):
    version: str | None = None
    status: Literal["firing", "resolved"] | None = None
    receiver: str | None = None
    alerts: list[WebhookAlert] = Field(min_length=1)
    groupKey: str | None = None
    externalURL: str | None = None
    # How many alerts of the group Alertmanager left out of this notification (the receiver's max_alerts).
    # At most a 32-bit count: larger ones are stored, but a PostgreSQL integer reads them back, and an answer
    # echoing one past 64 bits could not be written after the alerts were (a 500 the sender retries).
    truncatedAlerts: int | None = Field(None, ge=0, le=2_147_483_647, strict=True)
    # Grafana extras
    title: str | None = None
    orgId: int | None = None


# --- PagerDuty Events API v2 ---------------------------------------------------------------------------


class PagerDutyLink(Lenient):
    href: str
    text: str | None = None


class PagerDutyImage(Lenient):
    src: str
    href: str | None = None
    alt: str | None = None


class PagerDutyPayload(Lenient):
    summary: str = Field(min_length=1, max_length=1024)
    source: str = Field(min_length=1, max_length=255)
    severity: AlertSeverity
    timestamp: str | None = None
    component: str | None = None
    group: str | None = None
    class_: str | None = Field(default=None, alias="class")
    custom_details: Any = None


class PagerDutyEvent(Lenient):
    routing_key: str = Field(min_length=1)
    event_action: Literal["trigger", "acknowledge", "resolve"]
    dedup_key: str | None = Field(default=None, min_length=1, max_length=255)
    payload: PagerDutyPayload | None = None
    client: str | None = None
    client_url: str | None = None
    links: list[PagerDutyLink] = Field(default_factory=list)
    images: list[PagerDutyImage] = Field(default_factory=list)


class PagerDutyV1Context(Lenient):
    type: Literal["link", "image"]
    href: str | None = None
    src: str | None = None
    text: str | None = None
    alt: str | None = None


class PagerDutyV1Event(Lenient):
    """PagerDuty's Events API v1 (``POST /generic/2010-04-15/create_event.json``), which older tools still
    send, and Alertmanager too when its ``pagerduty_configs`` entry has a ``service_key``. Other fields
    (Alertmanager sends an empty ``event_action`` and a null ``payload``) are ignored, as PagerDuty does."""

    service_key: str = Field(min_length=1)
    event_type: Literal["trigger", "acknowledge", "resolve"]
    incident_key: str | None = Field(default=None, min_length=1, max_length=255)
    description: str | None = Field(default=None, max_length=1024)
    details: Any = None
    client: str | None = None
    client_url: str | None = None
    contexts: list[PagerDutyV1Context] = Field(default_factory=list)


class PagerDutyAccepted(BaseModel):
    """PagerDuty's answer to an event it took (Events API v2), sent once the event is stored."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"status": "success", "message": "Event processed", "dedup_key": "disk-db-1"}]
        }
    )

    status: Literal["success"]
    message: str
    dedup_key: str = Field(description="The alert's dedup key: the event's own, else the one made for it.")


class PagerDutyV1Accepted(BaseModel):
    """PagerDuty's answer to an event it took (Events API v1), sent once the event is stored."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"status": "success", "message": "Event processed", "incident_key": "disk-db-1"}]
        }
    )

    status: Literal["success"]
    message: str
    incident_key: str = Field(
        description="The alert's incident key: the event's own, else the one made for it."
    )


def _tags(value: list[str]) -> list[str]:
    """Tags as Opsgenie keeps them: at most 50 characters (longer ones are shortened, as Grafana's label tags
    can be), blank ones dropped, each once. A sender is not refused for them: its alert would be lost."""
    return list(dict.fromkeys(tag.strip()[:50] for tag in value if tag.strip()))


OpsgenieTagList = Annotated[list[str], AfterValidator(_tags)]

# Who a sender says did something (Opsgenie's user, source): it becomes a note's author and the timeline's
# actor, so it is one visible line as other names are. Its line breaks and hidden characters (escapes,
# direction marks) become spaces rather than refusing the request (the sender's tool made the text); at most
# 100 characters as sent. Blank after that, it names nobody (the integration stands in).
OpsgenieName = Annotated[str, StringConstraints(max_length=100), AfterValidator(one_line)]


class OpsgenieAlert(Lenient):
    """Opsgenie's Alert API (``POST /v2/alerts``, ``Authorization: GenieKey <key>``), as Alertmanager's
    ``opsgenie_configs``, Grafana's Opsgenie contact point and Opsgenie client libraries send it. Responders,
    visibility and actions are Opsgenie's routing; Warroom routes by its own rules and ignores them."""

    message: str = Field(min_length=1, max_length=1024)
    alias: str | None = Field(default=None, min_length=1, max_length=512)
    description: str | None = Field(default=None, max_length=15000)
    tags: OpsgenieTagList = Field(default_factory=list, max_length=100)
    details: dict[str, str] = Field(default_factory=dict)
    entity: str | None = Field(default=None, max_length=512)
    source: OpsgenieName | None = None
    priority: Literal["P1", "P2", "P3", "P4", "P5"] = "P3"
    user: OpsgenieName | None = None
    note: str | None = Field(default=None, max_length=25000)


class OpsgenieAction(Lenient):
    """The optional body of ``POST /v2/alerts/{alias}/close`` and ``.../acknowledge``."""

    user: OpsgenieName | None = None
    source: OpsgenieName | None = None
    note: str | None = Field(default=None, max_length=25000)


class OpsgenieSnooze(OpsgenieAction):
    """``POST /v2/alerts/{alias}/snooze``: acknowledged until ``endTime``."""

    endTime: AwareDatetime


class OpsgenieMessage(Lenient):
    """``PUT /v2/alerts/{alias}/message``: Alertmanager's ``update_alerts`` sends it after each create."""

    message: str = Field(min_length=1, max_length=1024)


class OpsgenieDescription(Lenient):
    """``PUT /v2/alerts/{alias}/description``."""

    description: str = Field(max_length=15000)


class OpsgeniePriority(Lenient):
    """``PUT /v2/alerts/{alias}/priority``."""

    priority: Literal["P1", "P2", "P3", "P4", "P5"]


class OpsgenieTags(OpsgenieAction):
    """``POST /v2/alerts/{alias}/tags``: tags added to the alert."""

    tags: OpsgenieTagList = Field(min_length=1, max_length=100)

    @field_validator("tags")
    @classmethod
    def _some(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("give at least one tag that is not blank")
        return value


class OpsgenieDetails(OpsgenieAction):
    """``POST /v2/alerts/{alias}/details``: custom properties added (or changed), as its labels."""

    details: dict[str, str] = Field(min_length=1, max_length=100)


class OpsgenieNote(Lenient):
    """``POST /v2/alerts/{alias}/notes``."""

    note: str = Field(min_length=1, max_length=25000, pattern=r"\S")
    user: OpsgenieName | None = None
    source: OpsgenieName | None = None


class OpsgenieAccepted(BaseModel):
    """Opsgenie's answer to a request it took (202). Opsgenie processes it later; Warroom has done so when it
    answers."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "result": "Request will be processed",
                    "took": 0.0,
                    "requestId": "43a29c5c-3dbf-4fa4-9c26-f4f71023e120",
                }
            ]
        }
    )

    result: str
    took: float = Field(description="Seconds taken (always 0 here).")
    requestId: str = Field(description="An id made for the request (a UUID); Warroom keeps no record of it.")


class PagerDutyChangePayload(Lenient):
    summary: str = Field(min_length=1, max_length=1024)
    source: str | None = Field(default=None, max_length=255)
    timestamp: datetime | None = None
    custom_details: dict[str, Any] | None = None


# A change's links, however it is recorded: what a timeline shows, not a place to store a build log.
CHANGE_LINKS_LIMIT = 20
LINK_HREF_LIMIT = 2000
LINK_TEXT_LIMIT = 500


class PagerDutyChangeLink(Lenient):
    href: str = Field(max_length=LINK_HREF_LIMIT)
    text: str | None = Field(default=None, max_length=LINK_TEXT_LIMIT)


class PagerDutyChange(Lenient):
    """PagerDuty's Change Events API (``POST /v2/change/enqueue``): a deploy or a config push, no alert."""

    routing_key: str = Field(min_length=1)
    payload: PagerDutyChangePayload
    links: list[PagerDutyChangeLink] = Field(default_factory=list, max_length=CHANGE_LINKS_LIMIT)


# --- plain JSON ----------------------------------------------------------------------------------------


class Link(BaseModel):
    model_config = ConfigDict(extra="forbid")
    href: str = Field(min_length=1, max_length=LINK_HREF_LIMIT)
    text: str | None = Field(default=None, max_length=LINK_TEXT_LIMIT)

    @field_validator("href")
    @classmethod
    def _web_or_mail(cls, value: str) -> str:
        if not safe_link(value):
            raise ValueError("must be an http://, https:// or mailto: address")
        return value


class GenericAlert(BaseModel):
    """Our own alert shape; one object or a list of them."""

    model_config = ConfigDict(extra="forbid")
    summary: NonBlank = Field(min_length=1, max_length=1024)
    status: Literal["firing", "acknowledged", "resolved"] = "firing"
    severity: AlertSeverity = "warning"
    dedup_key: Annotated[str, StringConstraints(min_length=1, max_length=255), NOT_BLANK] | None = Field(
        default=None,
        description="Defaults to a hash of the labels and the type (of the summary and the type when there "
        "are no labels).",
    )
    # Trimmed, on one line: " payments " from a script is the payments service (it went to another rule and
    # paged the wrong team), and a blank one names nothing.
    type: Annotated[str, StringConstraints(max_length=200), VISIBLE_LINE] | None = Field(
        default=None, description="Alert type for handlers."
    )
    service: Annotated[str, StringConstraints(max_length=200), VISIBLE_LINE] | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, Any] = Field(default_factory=dict)
    links: list[Link] = Field(default_factory=list)
    details: dict[str, Any] | None = None
    timestamp: datetime | None = None


# --- reports from people ----------------------------------------------------------------------------


# What anyone may type into the public form for a one-line field: its line breaks and hidden characters
# become spaces, so that it cannot lay out lines of its own in what responders read.
OneLine = Annotated[str, AfterValidator(one_line), NOT_BLANK]


# A phone number as people write one: digits, an optional leading +, and spaces, dashes, dots or parentheses.
_PHONE = re.compile(r"\+?[0-9 ().-]+")
_PHONE_MIN_DIGITS = 6
CONTACT_TAKES = (
    "an email address (name@example.com) or a phone number (digits, an optional leading +, spaces, dashes, "
    f"dots or parentheses; at least {_PHONE_MIN_DIGITS} digits)"
)


def check_contact(value: str) -> str:
    """A report's contact: an email address (syntax only, as notification channels check one) or a phone
    number. Anything else (a name, markup) could not reach the reporter, and is shown to responders."""
    if _PHONE.fullmatch(value) and sum(c.isdigit() for c in value) >= _PHONE_MIN_DIGITS:
        return value
    if "@" in value:
        try:
            return check_email_address(value)
        except ValueError:
            pass
    raise ValueError(f"give {CONTACT_TAKES}")


class CustomerReport(BaseModel):
    model_config = ConfigDict(extra="forbid")
    contact: Annotated[OneLine, AfterValidator(check_contact)] = Field(
        min_length=1, max_length=300, description=f"How to reach the reporter: {CONTACT_TAKES}."
    )
    description: NonBlank = Field(min_length=1, max_length=5000)
    affected_feature: OneLine = Field(min_length=1, max_length=200)


class ReportReceived(BaseModel):
    """What a customer's report is answered with: nothing about how it was routed."""

    status: Literal["received"] = "received"
    message: str = "Thank you: your report has reached the team."


class InternalReport(BaseModel):
    model_config = ConfigDict(extra="forbid")
    # At least one non-blank character: the first line becomes the alert's summary.
    description: str = Field(min_length=1, max_length=5000, pattern=r"\S")
    service: str | None = Field(default=None, max_length=200)
    severity: AlertSeverity = "warning"
    labels: dict[str, str] = Field(default_factory=dict)


# --- reads ---------------------------------------------------------------------------------------------


class IngestOutcome(BaseModel):
    id: int | None = Field(description="The alert, or null when the event applied to no open alert.")
    dedup_key: str
    status: AlertStatus | None
    outcome: Literal["created", "updated", "unchanged", "acknowledged", "resolved", "ignored"]
    incident: str | None = None


class IngestResult(BaseModel):
    status: Literal["ok"] = "ok"
    accepted: int
    alerts: list[IngestOutcome]
    # Written by ``Ingested.to_json``, only when the sender left alerts out.
    truncated_alerts: int | None = Field(
        default=None,
        ge=1,
        description="Only when the sender left alerts of the group out of the delivery (Alertmanager's "
        "truncatedAlerts): how many. Warroom never saw them.",
    )
    warning: str | None = Field(
        default=None, description="Only with truncated_alerts: what was left out, for the sender's log."
    )


# The intake hot path builds these plain dataclasses (orjson writes them as they are); the two models above
# document the same JSON in the OpenAPI schema. Building pydantic models per alert cost more than storing it.


@dataclass(slots=True)
class IngestedAlert:
    id: int | None
    dedup_key: str
    status: AlertStatus | None
    outcome: Literal["created", "updated", "unchanged", "acknowledged", "resolved", "ignored"]
    incident: str | None


@dataclass(slots=True)
class Ingested:
    accepted: int
    alerts: list[IngestedAlert]
    status: Literal["ok"] = "ok"
    # Alerts the sender left out of the delivery (Alertmanager's truncatedAlerts): Warroom never saw them.
    truncated: int = 0

    def to_json(self) -> bytes:
        body: dict[str, object] = {"status": self.status, "accepted": self.accepted, "alerts": self.alerts}
        if self.truncated:
            body["truncated_alerts"] = self.truncated
            body["warning"] = truncation_warning(self.truncated, self.accepted)
        return orjson.dumps(body)


def truncation_warning(truncated: int, delivered: int) -> str:
    return (
        f"the sender left {truncated} alert(s) of this group out of the notification (its max_alerts); "
        f"only the {delivered} delivered are recorded"
    )


class AlertRead(BaseModel):
    id: int
    ref: str
    source: str
    integration_id: int | None
    dedup_key: str
    alert_type: str
    status: AlertStatus
    summary: str
    severity: str
    service: str | None
    labels: dict[str, str]
    annotations: dict[str, Any]
    links: list[dict[str, Any]]
    first_seen_at: datetime = Field(description="When it reached Warroom.")
    started_at: datetime | None = Field(
        None,
        description="When its source says it began (Alertmanager's and Grafana's startsAt, a PagerDuty "
        "payload's timestamp, a plain alert's timestamp); null when the source did not say.",
    )
    last_seen_at: datetime
    acknowledged_at: datetime | None
    acknowledged_by: str | None = Field(
        None,
        description="Who acknowledged it by hand (or its incident, which acknowledges its firing alerts); "
        "null when its source did, or nobody has.",
    )
    snoozed_until: datetime | None = Field(
        None,
        description="While snoozed: when it fires again if still open (its incident's first responders are "
        "then reminded).",
    )
    snoozed_by: str | None = None
    resolved_at: datetime | None
    resolved_by: str | None = Field(
        None, description="Who resolved it: a person, or automation (auto_resolve); null when its source did."
    )
    resolution_note: str | None = None
    occurrences: int
    incident: str | None
    rules: list[str]
    unrouted: bool = Field(
        description="On no incident, no rule routed it, and nothing holds it now (held_by): nobody was paged."
    )
    maintenance: str | None = Field(
        None,
        description="The maintenance window it arrived in (MW-n): automation held it until the window ended. "
        "Kept afterwards: held_by says whether it still does.",
    )
    inhibited_by: str | None = Field(
        None,
        description="The open alert (ALR-n) that inhibited it when it fired (automation.inhibit_rules): "
        "automation held it until that alert resolved. Kept afterwards: held_by says whether it still does.",
    )
    held_by: str | None = Field(
        None,
        description="What holds it now: its maintenance window (MW-n) until the window ends, or the open "
        "alert (ALR-n) that inhibits it until that one resolves; automation leaves it alone meanwhile. Null "
        "when nothing does: never held, on an incident, or released (routed as if it had just fired; "
        "unrouted if no rule took it).",
    )


class AlertNoteRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    author: str
    body: str
    created_at: datetime
    edited_at: datetime | None = None


class AlertDetail(AlertRead):
    raw: dict[str, Any]
    last_raw: dict[str, Any] | None
    handler_errors: list[dict[str, Any]]
    notes: list[AlertNoteRead] = Field(
        default_factory=list, description="What responders wrote, oldest first."
    )


class AlertPage(Page[AlertRead]): ...


class RuleVerdict(BaseModel):
    rule: str
    matched: bool
    applied: bool = Field(description="Matched and acted on (mode first: only the first match acts).")
    why_not: str | None = Field(None, description="The first condition the alert fails.")


class IncidentPreview(BaseModel):
    rule: str
    title: str
    severity: str
    services: list[str]
    group: dict[str, str] = Field(
        description="The group-by values: alerts with the same ones share an incident."
    )
    group_window: Duration
    runbooks: list[str]
    page: list[str] = Field(description="Escalation policies paged when the incident opens.")
    notify: list[str] = Field(description="Audiences told when the incident opens.")
    open_incident: str | None = Field(
        None,
        description="Asked of the server only: the group's open incident the alert would join instead of "
        "opening one.",
    )
    pages_on_join: list[str] = Field(
        default_factory=list,
        description="Asked of the server only: of ``page``, the policies that have not paged "
        "``open_incident``, which joining it asks for (none when it is acknowledged).",
    )
    delay: Duration | None = Field(
        None,
        description="The rule's delay: the incident opens this long after the alert fires, if still open.",
    )
    waits_for_business_hours: datetime | None = Field(
        None,
        description="The rule waits for business hours and they are over now: the incident opens at this "
        "time (UTC), if the alert is still open then.",
    )
    not_opened_then: str | None = Field(
        None,
        description="The rule's incident would open later (its delay, business hours) and the rule no "
        "longer applies then (its ``during``), in words: no incident opens, and the alert is unrouted unless "
        "another rule takes it then.",
    )
    template_errors: list[str] = Field(
        default_factory=list,
        description="Rule templates (title, notify messages) that fail on this alert: the alert's summary "
        "stands in for them, and the failure is recorded with the alert.",
    )
    depends_on: list[str] | None = Field(
        None,
        description="When the open incident is one of a service the alert's service depends on (and not the "
        "group's): the chain of dependencies, from the alert's service to the incident's.",
    )
    storm_guard: bool = Field(
        False,
        description="The open incident is the newest of the rule's escalation policy, joined because the "
        "storm guard's cap of new incidents for that policy is reached.",
    )
    back_to_investigating: bool = Field(
        False,
        description="Asked of the server only: the open incident is in monitoring, and the alert firing on "
        "it moves it back to investigating (``resolve_to_monitoring``: the fix did not hold).",
    )
    resumes: list[str] = Field(
        default_factory=list,
        description="Asked of the server only, with ``back_to_investigating``: the escalations held while it "
        "was in monitoring, which go on, each paging the step it was at again (``policy at step N``).",
    )
    resumes_not_paged: list[str] = Field(
        default_factory=list,
        description="Asked of the server only, with ``back_to_investigating``: the held escalations that go "
        "on without paging, their step having been paged less than its delay ago "
        "(``policy at step N, paged 18s ago``).",
    )


class RuleReplay(BaseModel):
    rule: str
    alerts: int = Field(description="Alerts the rule matched and acted on.")
    incidents: int = Field(description="Incidents it would have opened (grouped alerts join them).")
    pages: int = Field(
        description="Escalation policies paged by the incidents it opened: each incident's own (its "
        "severity's or services') and the rules' `page`."
    )
    pages_outside_hours: int = Field(description="Of those, outside business hours (nights, weekends).")


class Replay(BaseModel):
    """What an org file's automation would have done with the alerts stored over a time span."""

    since: datetime
    until: datetime
    alerts: int = Field(description="Alerts that first fired in the span, replayed in that order.")
    unrouted: int = Field(description="Matched by no rule: stored, nobody paged.")
    incidents: int
    pages: int
    pages_outside_hours: int
    held_back: int = Field(
        description="Incidents not opened: the alert resolved before its rule's delay or business-hours wait."
    )
    storm_guarded: int = Field(
        description="Alerts that joined an incident of their policy past the storm guard."
    )
    rules: list[RuleReplay]
    pages_by_day: dict[str, int] = Field(
        default_factory=dict,
        description="Pages by day (ISO date in the org's time zone); days with none left out.",
    )


class RoutingPreview(BaseModel):
    """What automation would do with one alert (a dry run: nothing is stored). From the org file alone, or,
    asked of the server, also from what is open now."""

    summary: str
    source: str
    action: Literal["trigger", "acknowledge", "resolve"] = Field(
        "trigger",
        description="What the delivery says of the alert: it fires, or its source acknowledges or "
        "resolves it (rules run only when an alert first fires).",
    )
    severity: str
    type: str
    service: str | None
    dedup_key: str
    labels: dict[str, str]
    rules: list[RuleVerdict]
    incident: IncidentPreview | None = Field(
        None, description="The incident it would open, or join if its group has one open."
    )
    unrouted: bool
    auto_resolve_after: Duration | None = None
    maintenance_schedules: dict[str, datetime | None] = Field(
        default_factory=dict,
        description="Recurring maintenance windows that would hold it: name -> the start of the occurrence "
        "running now, else of the next one.",
    )
    live: bool = Field(
        False, description="Whether the server's open alerts, incidents and windows were read."
    )
    open_alert: str | None = Field(
        None,
        description="Live only: the open alert with this dedup key, of the integration asked about (else of "
        "the source). The delivery would update it; rules ran when it first fired and run again only if it "
        "comes more severe while on no incident.",
    )
    open_alert_unchanged: bool = Field(
        False,
        description="Live only: the delivery is the one last applied to the open alert. It would mark the "
        "alert seen (a minute or more later) without counting an occurrence, and change nothing else.",
    )
    open_alert_severity: str | None = Field(
        None, description="Live only: the severity the open alert (``open_alert``) has now."
    )
    rules_run_again: bool = Field(
        False,
        description="Live only: the delivery makes the open alert more severe while it fires on no incident, "
        "held by nothing: the rules see it again as a new alert of its severity, so ``incident`` is the "
        "incident it would open or join, and the policies it would page.",
    )
    maintenance_window: str | None = Field(
        None, description="Live only: the maintenance window running now that would hold the new alert."
    )
    inhibited_by: str | None = Field(
        None,
        description="Live only: the open alert that would inhibit the new alert (automation.inhibit_rules).",
    )
    inhibit_rule: str | None = Field(None, description="Live only: the inhibit rule that would hold it.")


class NoiseGroup(BaseModel):
    key: str | None = Field(
        description="The group's value (alert type, service, ...); null when alerts lack it."
    )
    alerts: int = Field(description="Alerts of the group seen in the period.")
    occurrences: int = Field(description="Their notifications, repeats included.")
    incidents: int = Field(description="Distinct incidents they are on.")
    unrouted: int = Field(description="Alerts no rule routed, on no incident and held by nothing now.")
    open: int = Field(description="Alerts not resolved yet.")


class NoiseReport(BaseModel):
    """Which alerts make the most noise: the start of tuning rules, thresholds and maintenance windows."""

    since: datetime
    by: str
    groups: list[NoiseGroup]


class SeverityCounts(BaseModel):
    severity: str
    firing: int = Field(description="Open and nobody on them (not acknowledged, here or at their source).")
    acknowledged: int = Field(description="Acknowledged (snoozed ones included), not resolved.")


class OpenIncident(BaseModel):
    ref: str
    severity: str
    status: str
    title: str
    acknowledged: bool
    alerts_open: int = Field(description="Its alerts not yet resolved.")
    created_at: datetime


class ArrivalBucket(BaseModel):
    start: datetime
    alerts: int = Field(description="New alerts first seen in this bucket.")


class LoudType(BaseModel):
    type: str
    alerts: int = Field(description="Its open alerts.")
    occurrences: int = Field(description="Their notifications, repeats included.")


class AlertOverview(BaseModel):
    """What is going on now, at a glance: open alerts, open incidents, and how fast new alerts arrive."""

    at: datetime
    since: datetime
    severities: list[SeverityCounts] = Field(description="Open alerts by severity, most severe first.")
    unrouted: int = Field(
        description="Open alerts no rule routed, on no incident and held by nothing now: nobody was paged."
    )
    snoozed: int
    held: int = Field(
        description="Open alerts on no incident that a maintenance window or an open inhibitor holds now "
        "(released ones are routed, or unrouted, like any other)."
    )
    incidents: list[OpenIncident] = Field(description="Open incidents, most severe first (at most 20).")
    incidents_open: int
    arrivals: list[ArrivalBucket] = Field(description="New alerts over the period, in 12 buckets.")
    loudest: list[LoudType] = Field(description="Alert types with the most open alerts (at most 5).")


class ResolveRequest(BaseModel):
    """A person resolves an alert whose source will not (it stopped sending, or never sends a resolve)."""

    model_config = ConfigDict(extra="forbid")
    # A blank note says nothing: refused, as a blank alert note is.
    note: Annotated[str, StringConstraints(min_length=1, max_length=2000), NOT_BLANK] | None = Field(
        default=None, description="Why, for the record."
    )


# A note on an alert: a paragraph or two, not a log dump (that belongs in the evidence).
NOTE_MAX_LENGTH = 4000


# A snooze is a promise to look again, within a week; longer is a maintenance window or a resolve.
SNOOZE_MIN = timedelta(minutes=1)
SNOOZE_MAX = timedelta(days=7)


class SnoozeRequest(BaseModel):
    """Acknowledge an alert until a moment: give ``duration`` (e.g. 2h) or ``until``."""

    model_config = ConfigDict(extra="forbid")
    duration: RequestDuration | None = Field(
        None, description="How long, e.g. 30m or 4h; 1 minute to 7 days."
    )
    until: OffsetDatetime | None = Field(None, description="Instead of duration: when, within 7 days.")

    @model_validator(mode="after")
    def _one_end(self) -> SnoozeRequest:
        if (self.until is None) == (self.duration is None):
            raise ValueError("give either duration or until")
        return self


def snooze_end(now: datetime, *, duration: timedelta | None, until: datetime | None) -> datetime:
    """When a snooze asked for now ends: ``duration`` from now, or ``until``; within 1 minute to 7 days.
    The server decides; the CLI asks first, before it chooses alerts by filter."""
    # In UTC, as every stored time is: the answer and the timeline show it so, whatever offset was given.
    end = now + duration if duration is not None else until.astimezone(UTC) if until is not None else None
    if end is None:
        raise InvalidInput("give either duration or until", {"field": "duration"})
    field = "duration" if duration is not None else "until"
    if until is not None and end <= now:
        raise InvalidInput("until is in the past: give a time to come", {"field": field})
    if end - now < SNOOZE_MIN - timedelta(seconds=1):
        raise InvalidInput(f"a snooze lasts at least {format_duration(SNOOZE_MIN)}", {"field": field})
    if end - now > SNOOZE_MAX:
        raise InvalidInput(
            f"a snooze lasts at most {format_duration(SNOOZE_MAX)}: for longer, use a maintenance window "
            "or resolve the alert",
            {"field": field},
        )
    return end


class NoteRequest(BaseModel):
    """A responder's note on an alert: what they found, why it can wait, the ticket that tracks it."""

    model_config = ConfigDict(extra="forbid")
    body: str = Field(min_length=1, max_length=NOTE_MAX_LENGTH)


class AttachRequest(BaseModel):
    """Put an alert on an open incident by hand (grouping missed a shared cause), or move it there."""

    model_config = ConfigDict(extra="forbid")
    incident: str = Field(min_length=1, max_length=30, description="e.g. INC-3")


class MergeRequest(BaseModel):
    """Fold an incident into another: one cause opened two (the grouping did not see it)."""

    model_config = ConfigDict(extra="forbid")
    into: str = Field(min_length=1, max_length=30, description="The open incident that goes on, e.g. INC-3")
    note: Annotated[str, StringConstraints(min_length=1, max_length=2000), NOT_BLANK] | None = Field(
        default=None, description="Why, for the record"
    )


class IncidentMerged(BaseModel):
    incident: str = Field(description="The incident merged (now resolved), e.g. INC-4")
    into: str = Field(description="The incident that goes on, e.g. INC-3")
    alerts: list[str] = Field(description="The alerts that moved, e.g. ALR-12")


class PromoteRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    title: str | None = Field(default=None, min_length=1, max_length=300)
    severity: str | None = None
    move: bool = Field(
        default=False,
        description="Take an alert that is on an incident out into an incident of its own (the grouping "
        "put it with alerts of another cause); without it, such an alert is refused (409).",
    )
    force: bool = Field(
        default=False,
        description="Promote an alert that has resolved: the incident is opened for the record and resolved "
        "at once (it pages nobody). Without it, such an alert is refused (409), saying when it resolved.",
    )


# --- maintenance windows ---------------------------------------------------------------------------------


class MaintenanceCreate(BaseModel):
    """Planned work: give what it covers (services, labels, further conditions) and either ``ends_at`` or
    ``duration``."""

    model_config = ConfigDict(extra="forbid")
    reason: str = Field(min_length=1, max_length=2000, pattern=r"\S", description="What is being done.")
    services: list[str] = Field(default_factory=list, max_length=100, description="Services of the org file.")
    labels: dict[str, str] = Field(
        default_factory=dict, max_length=50, description="An alert must carry every one of these labels."
    )
    match: AlertConditions = Field(
        default_factory=AlertConditions,
        description="Further conditions, as in an automation rule's match: source, severity, type, "
        "labels_regex (full match), labels_missing.",
    )
    starts_at: OffsetDatetime | None = Field(None, description="Default: now. Up to 90 days ahead.")
    ends_at: OffsetDatetime | None = None
    duration: RequestDuration | None = Field(
        None, description="Instead of ends_at, e.g. 2h or 90m; up to 7 days."
    )

    @field_validator("labels")
    @classmethod
    def _label_names(cls, value: dict[str, str]) -> dict[str, str]:
        if any(not name.strip() or len(name) > 200 or len(text) > 500 for name, text in value.items()):
            raise ValueError("label names must not be blank (up to 200 characters), values up to 500")
        return value

    @model_validator(mode="after")
    def _one_end(self) -> MaintenanceCreate:
        if (self.ends_at is None) == (self.duration is None):
            raise ValueError("give either ends_at or duration")
        if not self.services and not self.labels and self.match.is_empty():
            raise ValueError("say what the window covers: services, labels or match conditions")
        return self


class MaintenanceExtend(BaseModel):
    """The work takes longer: move the end of a window that has not ended."""

    model_config = ConfigDict(extra="forbid")
    by: RequestDuration = Field(
        description="How much later it ends, e.g. 30m; the window stays within 7 days."
    )


class MaintenanceRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    ref: str
    reason: str
    services: list[str]
    labels: dict[str, str]
    match: AlertConditions
    starts_at: datetime
    ends_at: datetime = Field(
        description="When it ends or ended; for a cancelled one, when it was cancelled."
    )
    state: Literal["scheduled", "active", "ended", "cancelled"] = Field(
        description="cancelled: ended before it started (it held nothing); starts_at and ends_at are then "
        "both the moment it was cancelled, and planned_starts_at and planned_ends_at what it was planned for."
    )
    created_by: str
    created_at: datetime
    ended_by: str | None = Field(
        None, description="Who ended (or cancelled) it early; null when it ran its course."
    )
    released_at: datetime | None = Field(
        None, description="When the alerts it held still open were handed to automation."
    )
    planned_starts_at: datetime | None = Field(
        None,
        description="A cancelled window: when it was to start (null if cancelled before this was kept).",
    )
    planned_ends_at: datetime | None = Field(None, description="A cancelled window: when it was to end.")


class MaintenanceEnded(MaintenanceRead):
    unchanged: bool = Field(
        default=False,
        description="True when the window was over already (ended, ran its course, or cancelled): this "
        "request changed nothing.",
    )


class MaintenanceDetail(MaintenanceRead):
    alerts: list[AlertRead] = Field(
        description="Alerts that arrived during the window (newest first, up to 500)."
    )


# --- heartbeats --------------------------------------------------------------------------------------------


class HeartbeatRead(BaseModel):
    name: str
    interval: Duration
    grace: Duration
    service: str | None
    state: Literal["never pinged", "ok", "running", "late", "watching", "missed", "failed"] = Field(
        description="running: a run signalled its start and has not ended; late: past its deadline, the "
        "check about to fire; watching: watched again with no ping since (its alert was resolved by a "
        "person, with its incident or by auto-resolve, or it was put back in the org file), due by due_at; "
        "missed: its alert is firing; failed: the sender reported a failed run, none has succeeded since, "
        "and its failure alert fires."
    )
    pings: int
    first_ping_at: datetime | None
    last_ping_at: datetime | None
    due_at: datetime | None = Field(
        description="The missed alert fires then unless a ping comes first (a run's max_runtime, if sooner); "
        "null while nothing is watched: never pinged and no first_ping_within, or missed already."
    )
    missed_at: datetime | None
    failed_at: datetime | None = Field(
        default=None,
        description="The first failed run the sender reported since its last good one, while its failure "
        "alert fires (a person resolving that alert clears it).",
    )
    watched_again_at: datetime | None = Field(
        default=None,
        description="When it was last watched again with no ping (see watching); null once it pings.",
    )
    last_exit_status: int | None = None
    started_at: datetime | None = Field(
        default=None,
        description="The run going on now began then (state running; a heartbeat that is failed or missed "
        "stays so while a new run goes on, until a run succeeds or a ping comes).",
    )
    last_run: Duration | None = Field(
        default=None, description="How long the last run that signalled its start took."
    )


class HeartbeatPinged(BaseModel):
    status: Literal["ok", "failed", "started"] = "ok"
    name: str
    pings: int
    next_due_at: datetime | None = Field(
        description="The next ping is due by then (a /start: its max_runtime, if sooner); null when nothing "
        "is watched (a /start before the first ping, without max_runtime)."
    )


# --- change events -------------------------------------------------------------------------------------


CHANGE_CLOCK_SKEW = timedelta(minutes=10)


class ChangeCreate(BaseModel):
    """A change a person or a pipeline records with an API token."""

    model_config = ConfigDict(extra="forbid")
    summary: str = Field(min_length=1, max_length=1024, description="e.g. 'Deployed checkout-api 2.14.0'.")
    service: str | None = Field(default=None, max_length=200, description="A service of the org file.")
    source: str | None = Field(
        default=None, max_length=255, description="What made it: a pipeline, a tool, a host."
    )
    happened_at: OffsetDatetime | None = Field(
        default=None, description="Default: now. From 1970 to 10 minutes ahead of the server's clock."
    )
    details: dict[str, Any] = Field(default_factory=dict)
    links: list[Link] = Field(default_factory=list, max_length=CHANGE_LINKS_LIMIT)

    @field_validator("happened_at")
    @classmethod
    def _not_ahead(cls, value: datetime | None) -> datetime | None:
        # A change from the future would be noted on every open incident as happening during it.
        if value is not None and value > clock.now() + CHANGE_CLOCK_SKEW:
            ahead = format_duration(CHANGE_CLOCK_SKEW)
            raise ValueError(f"is in the future (more than {ahead} ahead of the server's clock)")
        if value is not None and value.year < 1970:
            raise ValueError("is before 1970")
        return value

    @field_validator("summary")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be blank")
        return value.strip()


class ChangeRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    ref: str
    summary: str
    service: str | None
    source: str | None
    happened_at: datetime
    recorded_at: datetime
    recorded_by: str
    details: dict[str, Any]
    links: list[dict[str, Any]]


class ChangePage(Page[ChangeRead]):
    """Changes newest first, by when they happened."""


class ChangeRecorded(ChangeRead):
    noted_on: list[str] = Field(description="The open incidents whose timelines now name this change.")


class ChangeAccepted(BaseModel):
    """PagerDuty's answer to a change event."""

    status: Literal["success"] = "success"
    message: str = "Change event processed"
    id: str
