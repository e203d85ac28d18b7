"""The ``automation`` section of the org file: how alerts are grouped and what rules do with them."""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import idna
import orjson
from dateutil.rrule import rrule, rrulestr
from jinja2 import ChainableUndefined, Template, TemplateSyntaxError, meta, nodes
from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from warroom.durations import Duration, duration_between, off_or_between
from warroom.fields import not_in_file, safe_link
from warroom.incidents.schemas import Assessment
from warroom.severity.matrix import BUILT_IN_LEVELS, matrix_level
from warroom.templating import FalsyStrictUndefined, LimitedSandbox, time_limit
from warroom.timezones import check_zone
from warroom.userregex import RegexError, UserRegex, user_regex

if TYPE_CHECKING:
    from warroom.orgconfig import OrgConfig

log = logging.getLogger(__name__)

AlertSeverity = Literal["critical", "error", "warning", "info"]
ALERT_SEVERITIES: list[str] = ["critical", "error", "warning", "info"]
ALERT_SOURCES = [
    "alertmanager",
    "grafana",
    "pagerduty",
    "generic",
    "customer-report",
    "internal-discovery",
    "heartbeat",
    "third-party",
    "email",
    "opsgenie",
    "webhook",
]

# Read-only, as the enrichment templates are: a rule's title or message is given the alert's labels and
# annotations, and one calling labels.update() or labels.pop() must not change what the alert records.
# Strict: a label the alert lacks fails the template (the summary stands in, and the failure is kept), where
# it would render empty and title an incident "API : ..." with nobody told; ``default``, ``is defined``,
# ``labels.get`` and ``or`` say what a template wants when a label may be missing.
template_environment = LimitedSandbox(autoescape=False, undefined=FalsyStrictUndefined)

# The variables each kind of rule template is given (``automation.render``): an incident's title is rendered
# before the incident exists, so only its notify messages know it.
TITLE_VARIABLES: tuple[str, ...] = ("alert", "labels")
NOTIFY_VARIABLES: tuple[str, ...] = (*TITLE_VARIABLES, "incident")
# What ``alert`` and ``incident`` hold in a rule template (``automation.template_alert``,
# ``automation.template_incident``): a field a template reads that is not one of these fails on every alert.
ALERT_TEMPLATE_FIELDS: tuple[str, ...] = (
    "id",
    "ref",
    "source",
    "type",
    "summary",
    "severity",
    "service",
    "labels",
    "annotations",
    "dedup_key",
)
INCIDENT_TEMPLATE_FIELDS: tuple[str, ...] = ("ref", "title", "severity")
_TEMPLATE_FIELDS = {"alert": ALERT_TEMPLATE_FIELDS, "incident": INCIDENT_TEMPLATE_FIELDS}
_MAPPING_METHODS = frozenset({"get", "items", "keys", "values"})  # what the sandbox lets a template call


def unknown_template_fields(
    parsed: nodes.Template, given: set[str], fields: Mapping[str, tuple[str, ...]] | None = None
) -> list[str]:
    """``alert.status``, ``incident.url``: fields of a template's ``alert`` or ``incident`` (those it is
    ``given``, not names it sets itself) that they never have, as ``name.field``, in the order written.
    ``fields``: what each name has, where not a rule's (a channel's message templates)."""
    fields = _TEMPLATE_FIELDS if fields is None else fields
    unknown: list[str] = []
    reads: list[tuple[nodes.Expr, str, bool]] = [
        (node.node, node.attr, True) for node in parsed.find_all(nodes.Getattr)
    ]
    reads += [
        (node.node, node.arg.value, False)
        for node in parsed.find_all(nodes.Getitem)
        if isinstance(node.arg, nodes.Const) and isinstance(node.arg.value, str)
    ]
    for target, field, as_attribute in sorted(reads, key=lambda read: read[0].lineno):
        if not isinstance(target, nodes.Name) or target.name not in given or target.name not in fields:
            continue
        known = {*fields[target.name], *(_MAPPING_METHODS if as_attribute else ())}
        if field not in known and f"{target.name}.{field}" not in unknown:
            unknown.append(f"{target.name}.{field}")
    return unknown


def undeclared_variables(parsed: nodes.Template) -> set[str]:
    """``meta.find_undeclared_variables``, also for a template with a filter or test its environment does not
    have (which that refuses, as compiling does): stand-ins take their place, so that the names and fields
    it reads are checked too, each mistake said on its own (``{{ incident.nosuch | nofilter }}``)."""
    environment = parsed.environment
    if environment is None:  # not parsed by an environment: nothing to stand in for
        return meta.find_undeclared_variables(parsed)
    filters = {node.name for node in parsed.find_all(nodes.Filter)} - set(environment.filters)
    tests = {node.name for node in parsed.find_all(nodes.Test)} - set(environment.tests)
    if not filters and not tests:
        return meta.find_undeclared_variables(parsed)
    stand_in = environment.overlay()
    stand_in.filters = {**environment.filters, **dict.fromkeys(filters, _stand_in)}
    stand_in.tests = {**environment.tests, **dict.fromkeys(tests, _stand_in)}
    parsed.set_environment(stand_in)
    try:
        return meta.find_undeclared_variables(parsed)
    finally:
        parsed.set_environment(environment)


def _stand_in(value: Any, *args: Any, **kwargs: Any) -> Any:
    return value


def regex_search(value: Any, pattern: str, group: int | str = 0) -> str:
    """A template filter: the first match of ``pattern`` in ``value`` (its ``group``, by number or name),
    or "" when there is none: ``alert.summary | regex_search('host=(\\S+)', 1)``."""
    found = compiled_regex(pattern).search("" if value is None else str(value))
    return (found.group(group) or "") if found is not None else ""


def regex_replace(value: Any, pattern: str, replacement: str) -> str:
    """A template filter: ``value`` with every match of ``pattern`` replaced (``\\1`` names a group)."""
    return compiled_regex(pattern).sub(replacement, "" if value is None else str(value))


# Text in summaries and payloads often holds what a label needs (a host in a message): both template
# environments can cut it out.
REGEX_FILTERS = {"regex_search": regex_search, "regex_replace": regex_replace}
template_environment.filters.update(REGEX_FILTERS)


def not_negative(what: str) -> Callable[[timedelta | None], timedelta | None]:
    """A field validator: a duration of 0s or more (None, one left out, passes)."""

    def check(value: timedelta | None) -> timedelta | None:
        if value is not None and value < timedelta(0):
            raise ValueError(f"{what} must be 0s or longer")
        return value

    return check


class Problems(ValueError):
    """Every problem of one value, where a ValueError would stop a validator at the first: ``config check``
    reports each on its own (``orgconfig.parse_org_config``); elsewhere they read as one, joined by '; '."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


class ItemProblem(str):
    """A problem of one item of a value (a label of ``labels_regex``): reads as ``text`` anywhere, while
    ``config check`` names the item's own place, ``at`` below the value (``("namespace",)``), with its own
    line, and says ``short`` there (the words without the item's name, which the place gives)."""

    at: tuple[int | str, ...]
    short: str

    def __new__(cls, text: str, at: tuple[int | str, ...], short: str) -> ItemProblem:
        made = super().__new__(cls, text)
        made.at, made.short = at, short
        return made


def raise_problems(problems: list[str]) -> None:
    """A validator's end: ValueError (``Problems``) when there are any."""
    if len(problems) == 1 and not isinstance(problems[0], ItemProblem):
        raise ValueError(problems[0])
    if problems:
        raise Problems(problems)


class NameTaken(str):
    """A reference problem (``where: message``): an entry named as an earlier one of its list. ``first`` is
    the earlier one's location, which ``orgconfig`` turns into its line for ``config check``."""

    name: str
    kind: str
    first: str

    def __new__(cls, where: str, name: str, kind: str, first: str) -> NameTaken:
        made = super().__new__(cls, f"{where}: {name!r} is already the name of the {kind} at {first}")
        made.name, made.kind, made.first = name, kind, first
        return made


def names_taken(section: str, names: Sequence[str], kind: str, field: str = "name") -> list[str]:
    """Each entry of ``section`` (a list) whose ``field`` an earlier entry has, naming both."""
    first: dict[str, int] = {}
    problems: list[str] = []
    for index, name in enumerate(names):
        if name in first:
            problems.append(
                NameTaken(f"{section}[{index}].{field}", name, kind, f"{section}[{first[name]}].{field}")
            )
        else:
            first[name] = index
    return problems


class StrictModel(BaseModel):
    # Same as orgconfig.StrictModel; defined here because orgconfig imports this module.
    model_config = ConfigDict(extra="forbid", defer_build=True)


def matrix_severity_map(severity_ids: list[str]) -> dict[AlertSeverity, str]:
    """Without a configured map, the four alert severities spread over the matrix in order, critical the most
    severe. In a matrix of four levels or more the most severe is left to people (a critical alert is urgent,
    not yet all-hands): P1, P2, P2, P3 in the built-in matrix. In a smaller one a critical alert takes the
    first level and pages when it does: SEV1, SEV1, SEV2, SEV2 in a matrix of two."""
    levels = severity_ids[1:] if len(severity_ids) >= len(BUILT_IN_LEVELS) else severity_ids
    return {
        "critical": matrix_level(levels, 0),
        "error": matrix_level(levels, 1),
        "warning": matrix_level(levels, 2),
        "info": matrix_level(levels, 3),
    }


def alert_name(labels: Mapping[str, str], alert_type: str) -> str:
    """An alert's ``alertname``: its label, else its type (a plain JSON ``type``, a PagerDuty ``class``; the
    source's fallback type when the payload names none). Grouping and every condition read it so, so that a
    rule matching ``alertname`` sees the name the alert is grouped by."""
    return labels.get("alertname", alert_type)


@dataclass(frozen=True)
class AlertFacts:
    """What conditions look at in an alert: a stored one, one about to be inserted, or one being tried."""

    source: str
    severity: str
    alert_type: str
    service: str | None
    labels: Mapping[str, str]
    # The name of the integration it came in through (None: none, or nobody asked; see
    # ``AutomationConfig.matches_integrations``).
    integration: str | None = None

    @classmethod
    def of(cls, alert: Any, integration: str | None = None) -> AlertFacts:
        """From an ``Alert``, or anything else with these attributes."""
        return cls(alert.source, alert.severity, alert.alert_type, alert.service, alert.labels, integration)

    def label(self, name: str) -> str | None:
        """A label as conditions read it (None: the alert has none): ``alertname`` is ``alert_name``'s."""
        return alert_name(self.labels, self.alert_type) if name == "alertname" else self.labels.get(name)


@lru_cache(maxsize=64)
def _refused_regex(pattern: str, reason: str) -> None:
    log.warning("regex %r is refused (%s): the condition matches no alert", pattern, reason)


def compiled_regex(pattern: str) -> UserRegex:
    """Every pattern a user writes is compiled here: on RE2, linear-time (``warroom.userregex``)."""
    return user_regex(pattern)


class AlertConditions(StrictModel):
    """Conditions on an alert beyond label equality, shared by automation rules and maintenance windows.
    Every condition given must hold; labels are compared as strings."""

    source: list[str] = Field(default_factory=list, description=f"Any of {ALERT_SOURCES}.")
    severity: list[AlertSeverity] = Field(default_factory=list)
    type: list[str] = Field(default_factory=list, description="Alert type, e.g. the alertname.")
    labels_regex: dict[str, str] = Field(default_factory=dict, description="Label fully matches the regex.")
    labels_missing: list[str] = Field(default_factory=list, description="Label is absent.")
    integrations: list[str] = Field(
        default_factory=list,
        description="Came in through one of these integrations, by name (as in 'integration list'; a renamed "
        "integration no longer matches its old name): a staging Prometheus, one vendor's mail.",
    )

    @field_validator("source")
    @classmethod
    def _known_sources(cls, values: list[str]) -> list[str]:
        unknown = [v for v in values if v not in ALERT_SOURCES]
        if unknown:
            raise ValueError(f"unknown source(s) {unknown}; allowed: {ALERT_SOURCES}")
        return values

    @field_validator("labels_regex")
    @classmethod
    def _regexes_compile(cls, values: dict[str, str], info: ValidationInfo) -> dict[str, str]:
        if info.context and info.context.get("stored"):
            return values  # checked when it was stored; one refused since matches nothing (``failure``)
        problems: list[str] = []
        for label, pattern in values.items():
            try:
                compiled_regex(pattern)
            except RegexError as exc:
                said = f"bad regex {pattern!r}: {exc}"
                problems.append(ItemProblem(f"label {label!r}: {said}", (label,), said))
        raise_problems(problems)
        return values

    def is_empty(self) -> bool:
        return not self.model_dump(exclude_defaults=True)

    def accepts(self, alert: AlertFacts) -> bool:
        # Checked for every alert of a storm against each rule and enrichment entry: the failure is found
        # without being put into words.
        return self.failure(alert) is None

    def mismatch(self, alert: AlertFacts) -> str | None:
        """The first condition the alert fails, in words (None: it meets them all)."""
        failed = self.failure(alert)
        if failed is None:
            return None
        text = _FAILURE_TEXT[failed[0]](*failed[1:])
        if (
            failed[0] in ("label", "regex", "present")
            and failed[1] == "alertname"
            and "alertname" not in alert.labels
        ):
            text += " (the alert's type: it has no alertname label, and is grouped by its type too)"
        return text

    def failure(self, alert: AlertFacts) -> tuple[Any, ...] | None:
        """The first condition the alert fails, as a kind (a key of ``_FAILURE_TEXT``) and its facts."""
        if self.integrations and alert.integration not in self.integrations:
            return ("integration", alert.integration, self.integrations)
        if self.source and alert.source not in self.source:
            return ("one_of", "source", alert.source, self.source)
        if self.severity and alert.severity not in self.severity:
            return ("one_of", "severity", alert.severity, self.severity)
        if self.type and alert.alert_type not in self.type:
            return ("one_of", "type", alert.alert_type, self.type)
        for name, pattern in self.labels_regex.items():
            value = alert.label(name)
            if value is None:
                return ("regex_missing", name, pattern)
            try:
                matched = compiled_regex(pattern).fullmatch(value) is not None
            except RegexError as exc:
                # Only a window stored before patterns ran on RE2 can hold one it refuses (validation says
                # so now): it matches nothing, rather than failing every alert's intake.
                _refused_regex(pattern, str(exc))
                matched = False
            if not matched:
                return ("regex", name, value, pattern)
        for name in self.labels_missing:
            if alert.label(name) is not None:
                return ("present", name)
        return None


class RuleMatch(AlertConditions):
    """Every condition given must hold. Labels are compared as strings."""

    service: list[str] = Field(
        default_factory=list,
        description="The alert's service is one of these services of the file (named by the payload, or the "
        "integration's default service).",
    )
    labels: dict[str, str] = Field(default_factory=dict, description="Label equals this value.")

    def failure(self, alert: AlertFacts) -> tuple[Any, ...] | None:
        if self.service and alert.service not in self.service:
            return ("service", alert.service, self.service)
        for name, value in self.labels.items():
            if (found := alert.label(name)) != value:
                return ("label", name, found, value)
        return super().failure(alert)


# How each kind of failed condition (``AlertConditions.failure``) is said.
_FAILURE_TEXT: dict[str, Callable[..., str]] = {
    "integration": lambda came, allowed: (
        f"came in through {repr(came) if came is not None else 'no integration'}, not one of {allowed}"
    ),
    "one_of": lambda what, value, allowed: f"{what} is {value!r}, not one of {allowed}",
    "regex_missing": lambda name, pattern: f"no label {name!r} (to match {pattern!r})",
    "regex": lambda name, value, pattern: f"label {name}={value!r} does not fully match {pattern!r}",
    "present": lambda name: f"label {name!r} is present",
    "service": lambda found, allowed: f"service is {repr(found) if found else 'none'}, not one of {allowed}",
    "label": lambda name, found, value: (
        f"label {name} is {repr(found) if found is not None else 'missing'}, not {value!r}"
    ),
}


STORED_CONDITIONS = {"stored": True}  # validation context: conditions read back from the database


def window_match(services: list[str], labels: dict[str, str], conditions: dict[str, Any]) -> RuleMatch:
    """What a maintenance window covers, as one match: its services (if it names any), its labels, and its
    further conditions (sources, severities, types...)."""
    # A stored window's conditions were checked when it was made: one stored before a check that refuses it
    # now (a lookahead, before patterns ran on RE2) must not fail the intake of every alert.
    return RuleMatch.model_validate(
        {"service": services, "labels": labels, **conditions}, context=STORED_CONDITIONS
    )


def rule_template_problems(text: str, given: tuple[str, ...]) -> list[str]:
    """Every mistake of a rule's template (a title, a notify message: ``given`` its variables) that fails it
    on every alert, each on its own: a name it is never given, and fields its alert or incident never has."""
    try:
        parsed = template_environment.parse(text)
    except TemplateSyntaxError as exc:
        return [f"bad template: {exc.message}"]
    problems: list[str] = []
    try:
        # Compiled, not only parsed: an unknown filter is refused here, not at the first alert. The names and
        # fields below are checked all the same (the parse is whole): one mistake does not hide another.
        template_environment.from_string(parsed)
    except TemplateSyntaxError as exc:  # TemplateAssertionError (an unknown filter)
        problems.append(f"bad template: {exc.message}")
    # A name this kind of template is never given fails on every alert: said now, not at 3 a.m.
    undeclared = undeclared_variables(parsed)
    unknown = undeclared - {*given, *template_environment.globals}
    if unknown:
        names = ", ".join(repr(name) for name in sorted(unknown))
        verb = "is" if len(unknown) == 1 else "are"
        why = " (its incident does not exist yet when a title is rendered)" if "incident" in unknown else ""
        problems.append(f"bad template: {names} {verb} never given to it{why}; it has {', '.join(given)}")
    # A field of a name it is never given is said above already.
    fields = [
        field for field in unknown_template_fields(parsed, undeclared) if field.split(".")[0] not in unknown
    ]
    for name, known in _TEMPLATE_FIELDS.items():
        named = [field for field in fields if field.split(".")[0] == name]
        if named:
            problems.append(
                f"bad template: {', '.join(named)}: {name} has no such field; it has {', '.join(known)}"
            )
    return problems


class Notify(StrictModel):
    audience: str
    message: str = Field(
        default="{{ incident.ref }} opened from alert: {{ alert.summary }}",
        description="Jinja2 template (sandboxed, strict) given alert, labels and incident.",
    )

    @field_validator("message")
    @classmethod
    def _message_renders(cls, value: str) -> str:
        raise_problems(rule_template_problems(value, NOTIFY_VARIABLES))
        return value


class IncidentAction(StrictModel):
    """Open an incident, or attach the alert to the open incident of its group."""

    title: str = Field(
        default="{{ alert.summary }}",
        description="Jinja2 template (sandboxed, strict) given alert and labels (no incident yet).",
    )
    severity: str | None = Field(default=None, description="A fixed level; else mapped from the alert.")
    severity_map: dict[AlertSeverity, str] | None = Field(
        default=None, description="Alert severity → incident level; defaults to automation.severity_map."
    )
    services: list[str] = Field(
        default_factory=list, description="Affected services; the alert's own service is added if known."
    )
    assessment: Assessment | None = None
    group_by: list[str] | None = Field(default=None, description="Overrides automation.group_by.")
    group_window: Duration | None = Field(
        default=None,
        description="Overrides automation.group_window; 0s: no grouping, each alert opens its own incident.",
    )
    private: bool = False
    delay: Duration = Field(
        default=timedelta(0),
        description="Wait this long after the alert fires before opening the incident: an alert that "
        "resolves within it opens none, so a blip pages nobody (what Alertmanager's 'for' does, for sources "
        "without one). An alert whose group has an open incident joins it at once.",
    )

    wait_for_business_hours: bool = Field(
        default=False,
        description="Outside business hours (the org file's, or those of the team that owns the alert's "
        "service; weekends and public holidays included), the "
        "incident opens when they next begin, if the alert is still open then: a low-urgency problem at "
        "night wakes nobody. Within them, it opens at once (after the delay, if any).",
    )

    _delay = field_validator("delay")(duration_between(timedelta(0), timedelta(days=1), "delay"))
    _group_window = field_validator("group_window")(not_negative("group_window"))

    @field_validator("title")
    @classmethod
    def _title_renders(cls, value: str) -> str:
        raise_problems(rule_template_problems(value, TITLE_VARIABLES))
        return value

    def opens_at(self, org: OrgConfig, fired: datetime, service: str | None = None) -> datetime:
        """When the incident of an alert of ``service`` that fired at ``fired`` may open: after the delay and,
        if the rule waits for them, within business hours (the service's owner team's, when it has its own;
        never, within a year, reads as the delay's end)."""
        moment = fired + self.delay
        if self.wait_for_business_hours:
            hours, _ = org.business_hours_for([service])
            moment = hours.next_open(moment) or moment
        return moment


# How long an incident stays in monitoring, all its alerts resolved, before automation resolves it.
RESOLVE_AFTER_MIN = timedelta(minutes=1)
RESOLVE_AFTER_MAX = timedelta(days=7)


class AutomationRule(StrictModel):
    name: str = Field(min_length=1)
    match: RuleMatch = Field(default_factory=RuleMatch)
    during: Literal["always", "business_hours", "outside_business_hours"] = Field(
        default="always",
        description="When the rule applies, by business hours (the org's, or the alert's service's owner "
        "team's) at the moment automation first "
        "sees the alert: route warnings to the team by day and to nobody at night, or page differently.",
    )
    incident: IncidentAction | None = None
    runbooks: list[str] = Field(default_factory=list, description="Attached by name to a new incident.")
    page: str | None = Field(default=None, description="Escalation policy to page when an incident opens.")
    notify: list[Notify] = Field(default_factory=list)
    resolve_to_monitoring: bool | None = Field(
        default=None, description="Overrides automation.resolve_to_monitoring for this rule's incidents."
    )
    acknowledge_incident_with_alerts: bool | None = Field(
        default=None,
        description="Overrides automation.acknowledge_incident_with_alerts for this rule's incidents.",
    )
    resolve_after: Duration | None = Field(
        default=None, description="Overrides automation.resolve_after for this rule's incidents."
    )

    _resolve_after = field_validator("resolve_after")(
        off_or_between(RESOLVE_AFTER_MIN, RESOLVE_AFTER_MAX, "resolve_after")
    )

    @model_validator(mode="after")
    def _can_open(self) -> AutomationRule:
        # The rule is matched again when its incident is due to open: waiting for business hours, it would
        # only ever be due when it no longer applies, and every alert it took would end up unrouted.
        if (
            self.during == "outside_business_hours"
            and self.incident
            and self.incident.wait_for_business_hours
        ):
            raise ValueError(
                "during: outside_business_hours with incident.wait_for_business_hours never opens an "
                "incident: it would open when business hours begin, and the rule no longer applies then "
                "(drop one of them)"
            )
        return self

    @model_validator(mode="before")
    @classmethod
    def _integrations_in_match(cls, data: Any) -> Any:
        """``integrations`` beside ``match`` (as earlier files have it) is read as ``match.integrations``."""
        if not isinstance(data, dict) or "integrations" not in data:
            return data
        data = dict(data)
        integrations = data.pop("integrations")
        match = data.get("match")
        if isinstance(match, RuleMatch):
            match = match.model_dump(exclude_defaults=True)
        match = dict(match) if isinstance(match, dict) else {}
        if match.get("integrations"):
            raise ValueError("give integrations in match or beside it, not both")
        data["match"] = {**match, "integrations": integrations}
        return data


class AutoResolveConfig(StrictModel):
    """Alerts whose source never sends a resolve (a script, a cron job, an email-to-webhook bridge) resolve
    when they have not been seen for ``after``, the way PagerDuty's auto-resolve timeout works."""

    match: RuleMatch = Field(default_factory=RuleMatch, description="Which alerts, as in a rule's match.")
    after: Duration = Field(description="Not seen for this long: resolved, e.g. 4h (1m to 30d).")

    _after = field_validator("after")(duration_between(timedelta(minutes=1), timedelta(days=30), "after"))


# What a browser sends as Origin: a scheme, a host and a port only when it is not the scheme's default.
_DEFAULT_PORTS = {"http": 80, "https": 443}


def _ascii_host(host: str, origin: str) -> str:
    """``host`` lowercased, in the IDNA (punycode) form browsers send in Origin when it has other letters:
    ``münchen.example`` is ``xn--mnchen-3ya.example``, or it could never match. UTS #46 processing, as
    browsers do (``straße`` is ``xn--strae-oqa``, not ``strasse``)."""
    if host.isascii():
        return host.lower()
    try:
        return idna.encode(host, uts46=True).decode("ascii")
    except idna.IDNAError as exc:
        raise ValueError(
            f"{origin!r} is not an origin: its host {host!r} has no IDNA (punycode) form ({exc}); "
            "write the host as browsers send it, e.g. https://xn--mnchen-3ya.example"
        ) from None


def web_origin(value: str) -> str:
    """A web origin as browsers write it in Origin (``https://www.acme.example``, ``http://localhost:8000``):
    scheme and host lowercased, a host with other letters than ASCII in its IDNA (punycode) form, the
    scheme's default port dropped. ValueError for anything else (a path, a query, a user name, a wildcard)."""
    try:
        split = urlsplit(value.strip())
        port = split.port
    except ValueError as exc:
        raise ValueError(f"{value!r} is not an origin: {exc}") from None
    if (
        split.scheme.lower() not in _DEFAULT_PORTS
        or not split.hostname
        or "*" in value
        or any(c.isspace() for c in split.netloc)
    ):
        raise ValueError(
            f"{value!r} is not an origin: write it as scheme://host[:port], e.g. https://www.acme.example"
        )
    if (
        split.path
        or split.query
        or split.fragment
        or split.username is not None
        or value.strip()[-1:] in ("?", "#")
    ):
        raise ValueError(
            f"{value!r} is not an origin: scheme://host[:port] only, no path (not even a trailing /), "
            "query or user name"
        )
    scheme = split.scheme.lower()
    host = _ascii_host(split.hostname, value)
    if ":" in host:  # an IPv6 literal keeps its brackets
        host = f"[{host}]"
    return f"{scheme}://{host}" + (f":{port}" if port is not None and port != _DEFAULT_PORTS[scheme] else "")


class ReportsConfig(StrictModel):
    rate_limit: int = Field(default=5, ge=1, description="Public reports allowed per client address ...")
    rate_period: Duration = Field(
        default=timedelta(minutes=1), description="... in this period (more than 0s)."
    )
    severity: AlertSeverity = "warning"
    allowed_origins: list[str] = Field(
        default_factory=list,
        description="Web origins (scheme://host[:port]) whose pages may send the public report form from a "
        "browser (CORS, on POST /api/v1/reports only); none: no CORS headers, so pages of other sites "
        "cannot.",
    )

    @field_validator("rate_period")
    @classmethod
    def _period_counts(cls, value: timedelta) -> timedelta:
        # A window of nothing holds no report: the limit would be off while the file says otherwise.
        if value <= timedelta(0):
            raise ValueError(
                "rate_period must be more than 0s (a period of 0s would turn the rate limit off); e.g. 1m"
            )
        return value

    @field_validator("allowed_origins")
    @classmethod
    def _origins(cls, value: list[str]) -> list[str]:
        return list(dict.fromkeys(web_origin(origin) for origin in value))


class RetentionConfig(StrictModel):
    """How long the alerts domain keeps what would otherwise pile up for ever (``alerts.retention``)."""

    alerts: Duration = Field(
        default=timedelta(days=90),
        description="Resolved alerts on no incident are deleted this long after they resolved (0s: kept). "
        "Alerts on an incident are its evidence and stay.",
    )
    changes: Duration = Field(
        default=timedelta(days=90),
        description="Change events are deleted this long after they happened (0s: kept).",
    )
    recurring_job_runs: Duration = Field(
        default=timedelta(days=7),
        description="Finished runs of status page polls, auto-resolve sweeps, heartbeat checks, maintenance "
        "schedules, rules' delays and this pruning.",
    )

    _kept = field_validator("alerts", "changes")(
        duration_between(timedelta(0), timedelta(days=3660), "a retention period")
    )
    _runs = field_validator("recurring_job_runs")(
        duration_between(timedelta(hours=1), timedelta(days=366), "recurring_job_runs")
    )

    @model_validator(mode="after")
    def _at_least_a_day(self) -> RetentionConfig:
        # A shorter period would delete what the noise report and a responder's first look still need.
        problems = []
        for name in ("alerts", "changes"):
            kept: timedelta = getattr(self, name)
            if timedelta(0) < kept < timedelta(days=1):
                problems.append(f"retention {name} must be 0s (kept) or at least 1d")
        raise_problems(problems)
        return self


class HeartbeatConfig(StrictModel):
    """A dead man's switch: a sender (Alertmanager's always-firing Watchdog alert, a cron job, a backup
    script) pings ``POST /api/v1/heartbeats/<name>`` at least every ``interval``. When a ping is more than
    ``grace`` late, a ``heartbeat`` alert fires, routed by the rules like any other; the next ping resolves
    it."""

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_.-]{0,99}$", description="Used in the ping URL.")
    interval: Duration = Field(description="How often the sender pings, e.g. 1m.")
    grace: Duration = Field(default=timedelta(minutes=1), description="Lateness allowed before it fires.")
    severity: AlertSeverity = "critical"
    service: str | None = Field(default=None, description="A service of this file, for routing and windows.")
    summary: str = Field(default="", max_length=500, description="Default: 'No heartbeat from <name> ...'.")
    first_ping_within: Duration | None = Field(
        default=None,
        description="Watch it before its first ping: the alert fires when none has come this long after "
        "Warroom started with it in the file (e.g. 1h). Default: watched from its first ping.",
    )

    _interval = field_validator("interval")(
        duration_between(timedelta(seconds=10), timedelta(days=7), "interval")
    )
    _grace = field_validator("grace")(duration_between(timedelta(0), timedelta(days=7), "grace"))
    max_runtime: Duration | None = Field(
        default=None,
        description="A run that signalled /start and has not ended (a ping, or a failure) this long after "
        "fires the missed alert (e.g. 2h). Default: only the deadline counts.",
    )
    _first_ping_within = field_validator("first_ping_within")(
        duration_between(timedelta(minutes=1), timedelta(days=30), "first_ping_within")
    )
    _max_runtime = field_validator("max_runtime")(
        duration_between(timedelta(minutes=1), timedelta(days=7), "max_runtime")
    )


VendorImpact = Literal["critical", "major", "minor", "none"]
IMPACT_SEVERITY: dict[VendorImpact, AlertSeverity] = {
    "critical": "critical",
    "major": "error",
    "minor": "warning",
    "none": "info",
}


class StatusPageConfig(StrictModel):
    """A vendor's Atlassian Statuspage (GitHub, Stripe, Atlassian, ...): Warroom polls its unresolved
    incidents and turns each into a ``third-party`` alert, resolved when the vendor resolves it."""

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_.-]{0,59}$", description="e.g. github")
    url: str = Field(pattern=r"^https?://", description="The page, e.g. https://www.githubstatus.com")
    interval: Duration = Field(default=timedelta(minutes=2), description="How often to poll (30s to 1h).")
    components: list[str] = Field(
        default_factory=list,
        description="Only incidents affecting one of these components (names); all if empty.",
    )
    service: str | None = Field(default=None, description="Our service that depends on it, for routing.")
    severity_map: dict[VendorImpact, AlertSeverity] = Field(
        default_factory=lambda: dict(IMPACT_SEVERITY), description="The vendor's impact -> alert severity."
    )
    maintenance_severity: AlertSeverity | None = Field(
        default="info",
        description="A vendor maintenance in progress (on the listed components) is an alert of this "
        "severity; null: maintenances are not read.",
    )

    _interval = field_validator("interval")(
        duration_between(timedelta(seconds=30), timedelta(hours=1), "interval")
    )


SCHEDULE_FREQUENCIES = ("DAILY", "WEEKLY", "MONTHLY")
# Occurrences count from here, so a rule's INTERVAL keeps its phase (every other Sunday stays those Sundays),
# and so does COUNT: COUNT=3 is the first three from this Monday, not the next three.
SCHEDULE_ANCHOR = datetime(2026, 1, 5)  # a Monday, midnight local time
# How far a clock change can move an occurrence's UTC start from where its wall-clock time suggests: an hour
# for summer time, two at most anywhere today. Occurrences are looked for this far either side.
_CLOCK_CHANGE = timedelta(hours=3)
# How many occurrences ``starts`` reads at most: those within a few hours of each other, of a rule with times
# to the second (BYSECOND) at most 60 x 60 x 6 apart; more means the rule repeats itself.
_MOST_CLOSE_OCCURRENCES = 25_000
_UNTIL = re.compile(r"(?i)\bUNTIL=([^;]*)")
_UNTIL_FORMS = "UNTIL=20270101T000000Z (UTC), UNTIL=20270101T000000 (the rule's wall clock) or UNTIL=20270101"


def occurrence_start(local: datetime, zone: ZoneInfo) -> datetime:
    """The UTC start of an occurrence a rule gives at ``local`` (naive) on the zone's wall clock. A time the
    clock skips (02:30 the night it goes forward) runs as much later as the clock jumped: 03:30 summer time,
    as 02:00 runs at 03:00. A time the clock passes twice (falling back) runs the first time."""
    # fold=0 does both (PEP 495): in a gap the time is read with the offset before the change, so it lands
    # after the gap by as much as it is into it; in an overlap it is the earlier of the two.
    return local.replace(tzinfo=zone, fold=0).astimezone(UTC)


def _local_until(text: str, zone: ZoneInfo) -> str:
    """The rule with its UNTIL on the zone's wall clock, as its other times are: RFC 5545 writes UNTIL in UTC
    (``Z``), which dateutil refuses beside a wall-clock start. ValueError if UNTIL cannot be read."""
    found = _UNTIL.search(text)
    if found is None:
        return text
    value = found.group(1).strip().upper()
    if re.fullmatch(r"\d{8}(T\d{6})?", value):
        return text  # a date, or a time on the rule's wall clock: dateutil reads those as they are
    try:
        if not re.fullmatch(r"\d{8}T\d{6}Z", value):
            raise ValueError(value)  # strptime would take 0000 for hours, minutes and seconds
        local = datetime.strptime(value, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC).astimezone(zone)
    except (ValueError, OverflowError):
        raise ValueError(f"cannot read UNTIL={found.group(1)}: write {_UNTIL_FORMS}") from None
    return f"{text[: found.start(1)]}{local:%Y%m%dT%H%M%S}{text[found.end(1) :]}"


# How far ahead of today occurrences are looked for. dateutil looks for a rule's next occurrence until it
# finds one or reaches the year 9999: minutes for a rule that cannot occur (FREQ=DAILY;BYSETPOS=5, the 31st of
# February). Such rules are refused, as is one with no occurrence within the horizon; a valid rule's gaps are
# far shorter (the rarest, a 29th of February on a Monday, recurs within 40 years).
SCHEDULE_HORIZON_YEARS = 100
_searching = threading.local()


class _PastHorizon(Exception):
    """A search for occurrences went past ``SCHEDULE_HORIZON_YEARS``."""


class _BoundedRule(rrule):
    """dateutil's rrule, whose iteration ends at the horizon instead of the year 9999.

    dateutil's iteration reads ``_byweekno`` once for each year it enters (``_iterinfo.rebuild``), whether or
    not the rule gives occurrences in it: that read counts the years the running iteration has gone through.
    """

    @property
    def _byweekno(self) -> Any:
        years = getattr(_searching, "years", None)
        if years is not None:
            years[0] += 1
            if years[0] > years[1]:
                raise _PastHorizon
        return self.__dict__["_bounded_byweekno"]

    @_byweekno.setter
    def _byweekno(self, value: Any) -> None:
        self.__dict__["_bounded_byweekno"] = value

    def _iter(self) -> Iterator[datetime]:
        # Years from the rule's start (each search starts there) to the horizon past today.
        budget = [0, datetime.now(UTC).year - self._dtstart.year + SCHEDULE_HORIZON_YEARS]  # type: ignore[attr-defined]
        inner = super()._iter()  # type: ignore[misc]
        while True:
            outer = getattr(_searching, "years", None)
            _searching.years = budget  # generators interleave: the budget is the running one's
            try:
                occurrence = next(inner)
            except (StopIteration, _PastHorizon):
                return
            finally:
                _searching.years = outer
            yield occurrence


@lru_cache(maxsize=256)
def schedule_rule(text: str, time_zone: str) -> rrule:
    """A schedule's rule, its times naive on the ``time_zone`` wall clock, from ``SCHEDULE_ANCHOR``; searches
    for its occurrences end ``SCHEDULE_HORIZON_YEARS`` after today. ValueError if it is not one RRULE."""
    parsed = rrulestr(_local_until(text, ZoneInfo(time_zone)), dtstart=SCHEDULE_ANCHOR)
    if not isinstance(parsed, rrule):
        raise ValueError("one RRULE only")
    if parsed._interval < 1:  # type: ignore[attr-defined]
        raise ValueError("INTERVAL must be 1 or more")  # 0 never moves on, below 0 goes back in time
    # As rrule.replace() rebuilds a rule, as a _BoundedRule.
    arguments: dict[str, Any] = {
        "freq": parsed._freq,  # type: ignore[attr-defined]
        "dtstart": parsed._dtstart,  # type: ignore[attr-defined]
        "interval": parsed._interval,  # type: ignore[attr-defined]
        "wkst": parsed._wkst,  # type: ignore[attr-defined]
        "count": parsed._count,  # type: ignore[attr-defined]
        "until": parsed._until,  # type: ignore[attr-defined]
        **parsed._original_rule,  # type: ignore[attr-defined]
    }
    return _BoundedRule(**arguments)


class MaintenanceSchedule(StrictModel):
    """Planned work that recurs (a weekly vacuum, a monthly patch night): a maintenance window is created for
    each occurrence a day ahead, so ``warroom maintenance list`` shows it and ``end`` can cancel it."""

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_.-]{0,59}$")
    rrule: str = Field(
        description="An iCalendar RRULE, daily, weekly or monthly, in local time, e.g. "
        "FREQ=WEEKLY;BYDAY=SU;BYHOUR=2 (times default to midnight)."
    )
    time_zone: str = Field(default="UTC", description="The rule's wall clock, e.g. Europe/Berlin.")
    duration: Duration
    reason: str = Field(min_length=1, max_length=2000)
    services: list[str] = Field(default_factory=list)
    labels: dict[str, str] = Field(default_factory=dict)
    match: AlertConditions = Field(
        default_factory=AlertConditions,
        description="Further conditions, as in a rule's match: source, severity, type, labels_regex, "
        "labels_missing.",
    )

    _zone = field_validator("time_zone")(check_zone)
    _duration = field_validator("duration")(
        duration_between(timedelta(minutes=1), timedelta(days=7), "duration")
    )

    @field_validator("rrule")
    @classmethod
    def _rule_parses(cls, value: str) -> str:
        text = value.strip().removeprefix("RRULE:")
        frequency = re.search(r"FREQ=([A-Z]+)", text.upper())
        if frequency is None or frequency.group(1) not in SCHEDULE_FREQUENCIES:
            raise ValueError(
                f"FREQ must be one of {', '.join(SCHEDULE_FREQUENCIES)}, e.g. FREQ=WEEKLY;BYDAY=SU;BYHOUR=2"
            )
        interval = re.search(r"(?i)\bINTERVAL=([^;]*)", text)
        if interval is not None and not re.fullmatch(r"0*[1-9]\d{0,5}", interval.group(1).strip()):
            raise ValueError(f"INTERVAL={interval.group(1)}: INTERVAL must be a whole number, 1 or more")
        _local_until(text, ZoneInfo("UTC"))  # an UNTIL it cannot read is said as such, not as dateutil's
        try:
            rule = schedule_rule(text, "UTC")
        except (ValueError, TypeError) as exc:
            raise ValueError(f"not an RRULE ({exc}); e.g. FREQ=WEEKLY;BYDAY=SU;BYHOUR=2") from None
        try:
            # Each search for occurrences ends at the horizon; run both kinds ``starts`` does, so a rule
            # dateutil cannot expand is refused here rather than failing each time a window is due.
            first = rule.after(SCHEDULE_ANCHOR, inc=True)
            for _ in zip(
                range(3), rule.xafter(datetime.now(UTC).replace(tzinfo=None), inc=True), strict=False
            ):
                pass
        except Exception as exc:  # whatever dateutil raises, the rule is what is wrong
            raise ValueError(f"cannot expand the rule ({exc}); e.g. FREQ=WEEKLY;BYDAY=SU;BYHOUR=2") from None
        if first is None:
            counted = ", where COUNT counts from" if re.search(r"(?i)\bCOUNT=", text) else ""
            raise ValueError(
                f"the rule has no occurrences within {SCHEDULE_HORIZON_YEARS} years (it starts on Monday "
                f"{SCHEDULE_ANCHOR:%Y-%m-%d}{counted})"
            )
        return text

    @model_validator(mode="after")
    def _window_fits(self) -> MaintenanceSchedule:
        if not self.services and not self.labels and self.match.is_empty():
            raise ValueError("say what the windows cover: services, labels or match conditions")
        return self

    def covers(self, alert: AlertFacts) -> bool:
        """Whether this schedule's windows cover such an alert."""
        return window_match(self.services, self.labels, self.match.model_dump()).accepts(alert)

    def starts(self, after: datetime, *, inc: bool = False) -> datetime | None:
        """The first start (UTC) after ``after`` (or at it, with ``inc``); None if no occurrence is left."""
        zone = ZoneInfo(self.time_zone)
        local = after.astimezone(zone).replace(tzinfo=None)
        # Wall-clock order is not UTC order around a clock change (02:30 the night 02:00 jumps to 03:00
        # starts after 03:00), so occurrences are read from a little before ``after``'s wall-clock time, and
        # the earliest start after it is taken among those close to the first found.
        first: datetime | None = None
        found: datetime | None = None
        occurrences = schedule_rule(self.rrule, self.time_zone).xafter(local - _CLOCK_CHANGE, inc=True)
        # Bounded, as a rule's occurrences are distinct and at least a second apart; the rule is validated so
        # (INTERVAL 1 or more), but a search must end whatever it is given.
        for _, occurrence in zip(range(_MOST_CLOSE_OCCURRENCES), occurrences, strict=False):
            if first is not None and occurrence > first + 2 * _CLOCK_CHANGE:
                break
            start = occurrence_start(occurrence, zone)
            if start > after or (inc and start == after):
                first = first or occurrence
                found = start if found is None else min(found, start)
        return found

    def is_start(self, starts_at: datetime) -> bool:
        """Whether the rule has an occurrence starting at ``starts_at`` (UTC), as ``starts`` gives them."""
        zone = ZoneInfo(self.time_zone)
        local = starts_at.astimezone(zone).replace(tzinfo=None)
        near = schedule_rule(self.rrule, self.time_zone).between(
            local - _CLOCK_CHANGE, local + _CLOCK_CHANGE, inc=True
        )
        return any(occurrence_start(occurrence, zone) == starts_at for occurrence in near)

    def warning(self, now: datetime) -> str | None:
        """What ``config check`` says of a valid rule that does not do what it reads as: one with no
        occurrence left creates no window, and COUNT counts from ``SCHEDULE_ANCHOR``, not from now."""
        rule = schedule_rule(self.rrule, self.time_zone)
        counted = re.search(r"(?i)\bCOUNT=(\d+)", self.rrule)
        since = (
            f"COUNT={counted.group(1)} counts from Monday {SCHEDULE_ANCHOR:%Y-%m-%d}, where schedules' rules "
            "start, not from now"
            if counted
            else ""
        )
        if self.current_or_next(now) is None:
            last = rule.before(now.astimezone(ZoneInfo(self.time_zone)).replace(tzinfo=None), inc=True)
            ended = f", the last at {last:%Y-%m-%d %H:%M} {self.time_zone}" if last is not None else ""
            why = f" ({since})" if since else ""
            return f"its rule has no occurrence left{ended}: it creates no window{why}"
        if counted:
            last = rule.before(datetime.max)
            return f"{since}: its last occurrence is {last:%Y-%m-%d %H:%M} {self.time_zone}" if last else None
        return None

    def current_or_next(self, now: datetime) -> datetime | None:
        """The start of the occurrence running at ``now``, else of the next one."""
        started = self.starts(now - self.duration)
        return started if started is not None and started <= now else self.starts(now, inc=True)


def _compiled(pattern: str, what: str) -> UserRegex:
    try:
        return user_regex(pattern, ignore_case=True)
    except RegexError as exc:
        raise ValueError(f"{what}: bad regex {pattern!r}: {exc}") from None


class EmailRule(StrictModel):
    """How to read the mail of a sender whose subjects the built-in state words do not cover ("Backup job
    'nightly' completed with errors" / "... completed successfully"). The first rule whose ``sender`` and
    ``subject`` match a message reads it; the regex's named groups say what is what:

    - ``state``: the part that changes between the problem and its recovery. It is left out of the alert's
      identity; ``resolve`` (fully matched against it) says which values resolve the alert, and ``severity``
      maps values to severities.
    - ``alert``: the alert's name (its ``alertname`` label). Default: the rule's name, as a Prometheus
      alert is named by its rule.
    - any other group: a label of the alert, and part of its identity (``host``, ``job``). So the rest of the
      subject (a count of errors, a time) can change without making another alert.

    All matching ignores case. ``X-Warroom-*`` headers still override what a rule says."""

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_.-]{0,99}$", description="Shown as the email_rule label.")
    sender: str | None = Field(
        default=None, description="Regex the sender's address must fully match (default: any sender)."
    )
    subject: str = Field(min_length=1, description="Regex searched in the subject, with named groups.")
    resolve: str | None = Field(default=None, description="Regex: a state that fully matches resolves.")
    severity: dict[str, AlertSeverity] = Field(
        default_factory=dict, description="State (any case) → severity; other states: the subject's words."
    )

    @model_validator(mode="after")
    def _regexes(self) -> EmailRule:
        problems: list[str] = []
        groups: Mapping[str, int] | None = None
        for what, pattern in (("sender", self.sender), ("subject", self.subject), ("resolve", self.resolve)):
            if pattern is None:
                continue
            try:
                compiled = _compiled(pattern, what)
            except ValueError as exc:
                problems.append(str(exc))
                continue
            if what == "subject":
                groups = compiled.groupindex
        if groups is not None and (self.resolve is not None or self.severity) and "state" not in groups:
            problems.append("resolve and severity read the subject's state: name it with (?P<state>...)")
        raise_problems(problems)
        return self

    def read(self, sender: str, subject: str) -> tuple[dict[str, str], str | None] | None:
        """The subject's named groups but ``state`` (unset ones left out), and the state, when the rule
        matches this message; None when it does not."""
        if self.sender is not None and not _compiled(self.sender, "sender").fullmatch(sender):
            return None
        found = _compiled(self.subject, "subject").search(subject)
        if found is None:
            return None
        groups = {name: value.strip() for name, value in found.groupdict().items() if value and value.strip()}
        return groups, groups.pop("state", None)

    def resolves(self, state: str | None) -> bool:
        if self.resolve is None or state is None:
            return False
        return _compiled(self.resolve, "resolve").fullmatch(state) is not None

    def severity_of(self, state: str | None) -> AlertSeverity | None:
        lowered = {key.lower(): value for key, value in self.severity.items()}
        return lowered.get(state.lower()) if state is not None else None


class InhibitRule(StrictModel):
    """While an open alert matches ``source``, a new alert matching ``target`` that has the same values of
    the ``equal`` labels is recorded but not acted on (no incident, no page, no handler), as in
    Alertmanager's inhibit rules: a node that is down makes the alerts of the services on it noise. When the
    inhibiting alert resolves, the alerts it held that are still open are routed as if they had just fired.
    A label missing from both alerts counts as equal (both empty), as Alertmanager has it."""

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_.-]{0,99}$")
    source: RuleMatch = Field(description="The inhibiting alert, as in a rule's match.")
    target: RuleMatch = Field(description="The alerts it inhibits, as in a rule's match.")
    equal: list[str] = Field(
        default_factory=list, description="Labels that must have the same value in both (e.g. instance)."
    )
    merge_late: bool = Field(
        default=False,
        description="When the source alert fires after alerts it would have muted, and has an incident: "
        "each open incident whose every alert is such a symptom is merged into it (else it is only told).",
    )

    # Per side, not of the rule: an empty source is said beside a bad target regex, not after it is fixed.
    @field_validator("source", "target")
    @classmethod
    def _not_everything(cls, value: RuleMatch, info: ValidationInfo) -> RuleMatch:
        if value.is_empty():
            raise ValueError(
                f"{info.field_name} is empty: source and target each need a condition: an empty one matches "
                "every alert"
            )
        return value

    def pairs(self, source: AlertFacts, target: AlertFacts) -> bool:
        """Whether ``source`` inhibits ``target`` by this rule."""
        return (
            all((source.label(name) or "") == (target.label(name) or "") for name in self.equal)
            and self.target.accepts(target)
            and self.source.accepts(source)
        )


# Webhook formats read what a tool sent: a field the payload lacks, or holds null, is empty (so
# ``payload.monitor.name`` is "" when there is no monitor, not an error), and nothing in the payload can be
# changed from a template.
payload_environment = LimitedSandbox(
    autoescape=False, undefined=ChainableUndefined, finalize=lambda value: "" if value is None else value
)
# Tools that post a form often put JSON in one of its fields: ``(payload.data | from_json).monitor.name``.
payload_environment.filters["from_json"] = orjson.loads
payload_environment.filters.update(REGEX_FILTERS)


@lru_cache(maxsize=2048)
def payload_template(source: str) -> Template:
    return payload_environment.from_string(source)


@lru_cache(maxsize=512)
def payload_expression(source: str) -> Callable[..., Any]:
    return payload_environment.compile_expression(source, undefined_to_none=True)


class TemplateRenderer:
    """Renders the org file's payload templates and expressions over ``variables``, collecting what fails by
    field (``where`` + the field's name) rather than stopping: the caller refuses the delivery (a webhook
    format) or keeps the alert with the failures (enrichment)."""

    def __init__(self, variables: dict[str, Any], where: str = "") -> None:
        self.variables = variables
        self.where = where
        self.errors: list[dict[str, Any]] = []

    def _failed(self, field_name: str, exc: Exception) -> None:
        self.errors.append({"field": f"{self.where}{field_name}", "message": f"{type(exc).__name__}: {exc}"})

    def text(self, field_name: str, source: str | None) -> str:
        if source is None:
            return ""
        try:
            return payload_template(source).render(self.variables).strip()
        except Exception as exc:  # a template meets data it cannot read (a sandbox refusal, a type error)
            self._failed(field_name, exc)
            return ""

    def value(self, field_name: str, source: str | None) -> Any:
        if source is None:
            return None
        try:
            with time_limit():
                return payload_expression(source)(**self.variables)
        except Exception as exc:
            self._failed(field_name, exc)
            return None


class WebhookLink(StrictModel):
    href: str = Field(
        min_length=1,
        description="Template; a link that renders empty, or to no web or mail address, is left out.",
    )
    text: str | None = Field(default=None, description="Template.")

    @field_validator("href")
    @classmethod
    def _web_or_mail(cls, href: str) -> str:
        # Written out whole, or with its scheme written before the template (javascript:{{ … }}): it can be
        # checked now.
        literal = href.split("{", 1)[0]
        known = "{" not in href or ":" in literal
        if known and not (safe_link(href) or literal.lower().startswith(("http://", "https://", "mailto:"))):
            raise ValueError("must be an http://, https:// or mailto: address")
        return href


class WebhookFormat(StrictModel):
    """How to read one tool's own webhook as alerts, for tools that speak none of the built-in shapes (Uptime
    Kuma, Datadog, Zabbix, a CI system): the tool posts what it always posts to
    ``/api/v1/alerts/webhook/<name>`` with the key of a ``webhook`` integration.

    Text fields are Jinja2 templates and ``each``, ``skip``, ``resolve`` and ``acknowledge`` are Jinja2
    expressions, all sandboxed and read-only, over ``payload`` (the JSON body) and ``item`` (the element of
    ``each`` being read, else the payload). A field the payload lacks reads as empty.

    The alert's identity is the rendered ``dedup_key``; without one, its name, service and labels, so a
    problem and its recovery must render the same labels (a summary may change between them)."""

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_.-]{0,59}$", description="Used in the URL and as a label.")
    each: str | None = Field(
        default=None, description="Expression giving a list of the payload: one alert per element (as item)."
    )
    skip: str | None = Field(
        default=None,
        description="Expression: when true, the item is answered but stores nothing (test pings).",
    )
    summary: str = Field(min_length=1, description="Template. Empty for a payload: the alert's name.")
    alert: str | None = Field(
        default=None,
        description="Template: the alert's name (its alertname label). Default: the format's name.",
    )
    dedup_key: str | None = Field(default=None, description="Template: the tool's own id of the alert.")
    service: str | None = Field(default=None, description="Template: the service (else the integration's).")
    severity: str | None = Field(
        default=None,
        description="Template giving a severity word (critical, high, P1, error, warning, low, info, ...).",
    )
    severity_map: dict[str, AlertSeverity] = Field(
        default_factory=dict,
        description="The tool's own words (any case) → severity, read before the usual words.",
    )
    default_severity: AlertSeverity = Field(
        default="warning", description="When the severity is empty or a word neither map knows."
    )
    resolve: str | None = Field(default=None, description="Expression: true when the item says it is over.")
    acknowledge: str | None = Field(
        default=None, description="Expression: true when the item says a person acknowledged it."
    )
    labels: dict[str, str] = Field(
        default_factory=dict, description="Name → template; part of the identity. Empty values are left out."
    )
    annotations: dict[str, str] = Field(default_factory=dict, description="Name → template (not identity).")
    links: list[WebhookLink] = Field(default_factory=list)

    @model_validator(mode="after")
    def _templates_compile(self) -> WebhookFormat:
        problems = []
        for where, source, is_expression in self.sources():
            try:
                if is_expression:
                    payload_expression(source)
                else:
                    payload_template(source)
            except TemplateSyntaxError as exc:
                problems.append(f"{where}: {exc.message} (line {exc.lineno})")
        raise_problems(problems)
        return self

    def sources(self) -> list[tuple[str, str, bool]]:
        """Each template and expression of the format: (field, source, whether it is an expression)."""
        found: list[tuple[str, str, bool]] = [
            (name, source, name in ("each", "skip", "resolve", "acknowledge"))
            for name in (
                "each",
                "skip",
                "summary",
                "alert",
                "dedup_key",
                "service",
                "severity",
                "resolve",
                "acknowledge",
            )
            if (source := getattr(self, name)) is not None
        ]
        found += [(f"labels.{name}", source, False) for name, source in self.labels.items()]
        found += [(f"annotations.{name}", source, False) for name, source in self.annotations.items()]
        for index, link in enumerate(self.links):
            found.append((f"links[{index}].href", link.href, False))
            if link.text is not None:
                found.append((f"links[{index}].text", link.text, False))
        return found


def _payload_template_problems(sources: list[tuple[str, tuple[int | str, ...], str]]) -> list[str]:
    """Each (field, place, template) that does not compile, as "field: error (line n)". One of an item of the
    value validated (``place`` below it: a label of ``labels``, ``(0, "href")`` of ``links``) is an
    ``ItemProblem``, so that ``config check`` names the item's own path and line, not the map's."""
    problems: list[str] = []
    for where, at, source in sources:
        try:
            payload_template(source)
        except TemplateSyntaxError as exc:
            said = f"{exc.message} (line {exc.lineno})"
            short = f"bad template: {exc.message} (line {exc.lineno} of the template)"
            problems.append(ItemProblem(f"{where}: {said}", at, short) if at else f"{where}: {said}")
    return problems


class EnrichRule(StrictModel):
    """Fill in or correct alerts as they arrive, before anything acts on them (PagerDuty's event
    orchestration): the service a source does not name, a severity it gets wrong, the team as a label, a link
    to the dashboard of the instance. Every entry whose ``match`` accepts the alert applies, in order.

    Text fields are Jinja2 templates (sandboxed, read-only) over ``alert``: ``source``, ``integration`` (its
    name), ``type``, ``summary``, ``severity``, ``service`` and ``labels`` as the source sent them (and as
    earlier entries changed them); a label the alert lacks reads as empty. The alert's identity (its dedup
    key) is never changed."""

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_.-]{0,99}$")
    match: RuleMatch = Field(default_factory=RuleMatch)
    service: str | None = Field(default=None, description="Template: the alert's service.")
    severity: AlertSeverity | None = Field(default=None, description="The alert's severity instead.")
    labels: dict[str, str] = Field(
        default_factory=dict,
        description="Name → template; added, or replacing the source's. Empty: left out.",
    )
    annotations: dict[str, str] = Field(default_factory=dict, description="Name → template.")
    links: list[WebhookLink] = Field(default_factory=list, description="Added to the alert's links.")

    # Field by field, so that a bad severity does not hide a broken template (nor one template another); each
    # item of a map or list at its own place.
    @field_validator("service")
    @classmethod
    def _service_compiles(cls, value: str | None) -> str | None:
        if value is not None:
            raise_problems(_payload_template_problems([("service", (), value)]))
        return value

    @field_validator("labels", "annotations")
    @classmethod
    def _values_compile(cls, values: dict[str, str], info: ValidationInfo) -> dict[str, str]:
        raise_problems(
            _payload_template_problems([(f"{info.field_name}.{k}", (k,), v) for k, v in values.items()])
        )
        return values

    @field_validator("links")
    @classmethod
    def _links_compile(cls, links: list[WebhookLink]) -> list[WebhookLink]:
        sources: list[tuple[str, tuple[int | str, ...], str]] = []
        for index, link in enumerate(links):
            sources.append((f"links[{index}].href", (index, "href"), link.href))
            if link.text is not None:
                sources.append((f"links[{index}].text", (index, "text"), link.text))
        raise_problems(_payload_template_problems(sources))
        return links


class UnroutedDigest(StrictModel):
    """A message to an audience when business hours begin, about the alerts that arrived since the last one
    and that no rule routed: they are stored, but nobody was paged and nobody may have looked."""

    audience: str = Field(description="An audience of this file; its notification channels get the digest.")


# The storm guard's longest window: what it counts is kept this long (alerts.retention).
STORM_GUARD_MAX_WITHIN = timedelta(days=1)


class StormGuard(StrictModel):
    """A cap on new incidents per escalation policy: in a storm that spans many alert groups (a network
    partition fires alerts of twenty services at once), the people on call are paged a few times, not twenty.
    Past the cap, an alert that would open an incident paging a policy joins the newest open incident that
    policy was paged for instead, which says so on its timeline."""

    incidents: int = Field(
        ge=1, le=1000, description="At most this many incidents opened by automation paging one policy ..."
    )
    within: Duration = Field(description="... within this long (1m to 1d); then new ones open again.")

    _within = field_validator("within")(
        duration_between(timedelta(minutes=1), STORM_GUARD_MAX_WITHIN, "within")
    )


class AutomationConfig(StrictModel):
    mode: Literal["first", "all"] = Field(
        default="first", description="Apply the first matching rule, or all."
    )
    group_by: list[str] = Field(
        default_factory=lambda: ["service", "alertname"],
        description="Labels (or source, type, service, severity) that put alerts in one group.",
    )
    group_window: Duration = Field(
        default=timedelta(hours=1),
        description="An alert joins its group's open incident seen this recently (0s: no grouping, each "
        "alert opens its own incident).",
    )
    severity_map: dict[AlertSeverity, str] = Field(
        default_factory=dict, description="Alert severity → incident level; empty maps by matrix position."
    )
    resolve_to_monitoring: bool = Field(
        default=True,
        description="Move an incident to monitoring when all its alerts resolve, and back to investigating "
        "when an alert of its group fires again while it is monitored.",
    )
    acknowledge_incident_with_alerts: bool = Field(
        default=True,
        description="Acknowledge an incident (as automation, which stops escalation) when every alert of it "
        "still open has been acknowledged at its source.",
    )
    resolve_after: Duration = Field(
        default=timedelta(0),
        description="Resolve an incident that automation moved to monitoring (all its alerts resolved) once "
        "it has stayed there this long with none of them firing again (0s: never; people resolve it).",
    )
    recurrence_window: Duration = Field(
        default=timedelta(days=30),
        description="An incident that alerts open is marked recurring, with the earlier ones named on its "
        "timeline, when the same alert group opened another this recently (0s: never).",
    )
    flap_count: int = Field(
        default=3,
        ge=0,
        le=100,
        description="An incident whose alerts fired again while it was monitored this many times within "
        "flap_window is flapping: automation stops moving it to monitoring until it calms down (0: never).",
    )
    flap_window: Duration = Field(
        default=timedelta(hours=1),
        description="Also how long a flapping incident needs with no return to investigating and none of its "
        "alerts firing again to calm down (counted from the last of each).",
    )
    recent_changes_window: Duration = Field(
        default=timedelta(hours=2),
        description="A new incident's timeline lists the change events of its services (and those naming "
        "no service) from this long before it opened (0s: never).",
    )
    dependency_window: Duration = Field(
        default=timedelta(0),
        description="An alert that would open an incident joins instead an open incident opened this "
        "recently that affects a service its own service depends on (services[].dependencies, directly or "
        "through others): the database's outage, not twenty incidents for the services on it (0s: never).",
    )
    storm_guard: StormGuard | None = Field(
        default=None,
        description="Cap the incidents automation opens per escalation policy: past it, their alerts join "
        "the newest open incident of the policy (none: no cap).",
    )
    auto_resolve: list[AutoResolveConfig] = Field(
        default_factory=list, description="The first entry that matches an open alert says when it expires."
    )
    reports: ReportsConfig = Field(default_factory=ReportsConfig)
    retention: RetentionConfig = Field(default_factory=RetentionConfig)
    rules: list[AutomationRule] = Field(default_factory=list)
    heartbeats: list[HeartbeatConfig] = Field(default_factory=list)
    status_pages: list[StatusPageConfig] = Field(default_factory=list)
    maintenance_schedules: list[MaintenanceSchedule] = Field(default_factory=list)
    email_rules: list[EmailRule] = Field(
        default_factory=list, description="How to read the subjects of particular senders' alert mail."
    )
    enrich: list[EnrichRule] = Field(
        default_factory=list,
        description="Fill in or correct arriving alerts (service, severity, labels, links) before any rule.",
    )
    inhibit_rules: list[InhibitRule] = Field(
        default_factory=list,
        description="While an alert matching a source fires, new alerts matching its target (with the same "
        "equal labels) are recorded but not acted on.",
    )
    unrouted_digest: UnroutedDigest | None = Field(
        default=None, description="Tell an audience, each morning, which alerts no rule routed."
    )
    webhook_formats: list[WebhookFormat] = Field(
        default_factory=list,
        description="How to read tools' own webhooks (POST /api/v1/alerts/webhook/<name>).",
    )

    _resolve_after = field_validator("resolve_after")(
        off_or_between(RESOLVE_AFTER_MIN, RESOLVE_AFTER_MAX, "resolve_after")
    )
    _group_window = field_validator("group_window")(not_negative("group_window"))
    _flap_window = field_validator("flap_window")(
        duration_between(timedelta(minutes=1), timedelta(days=7), "flap_window")
    )
    _recent_changes_window = field_validator("recent_changes_window")(
        duration_between(timedelta(0), timedelta(days=7), "recent_changes_window")
    )
    _dependency_window = field_validator("dependency_window")(
        duration_between(timedelta(0), timedelta(days=1), "dependency_window")
    )

    def heartbeat(self, name: str) -> HeartbeatConfig | None:
        return next((h for h in self.heartbeats if h.name == name), None)

    def webhook_format(self, name: str) -> WebhookFormat | None:
        return next((f for f in self.webhook_formats if f.name == name), None)

    @property
    def matches_integrations(self) -> bool:
        """Whether any condition of this block names integrations: only then is an alert's integration name
        looked up for stored alerts."""
        conditions: list[AlertConditions] = [rule.match for rule in self.rules]
        conditions += [entry.match for entry in self.auto_resolve]
        conditions += [part for rule in self.inhibit_rules for part in (rule.source, rule.target)]
        conditions += [entry.match for entry in self.enrich]
        return any(condition.integrations for condition in conditions)

    def auto_resolve_for(self, alert: AlertFacts) -> AutoResolveConfig | None:
        """The first auto_resolve entry matching an alert, if any."""
        return next((entry for entry in self.auto_resolve if entry.match.accepts(alert)), None)


def _policy_names(org: OrgConfig) -> list[str] | None:
    """Names of escalation policies, when the org file has that section (another domain owns it)."""
    policies: Any = getattr(org, "escalation_policies", None)
    if policies is None:
        policies = (org.model_extra or {}).get("escalation_policies")
    if not isinstance(policies, list):
        return None
    names = []
    for policy in policies:
        name = policy.get("name") if isinstance(policy, dict) else getattr(policy, "name", None)
        if name:
            names.append(str(name))
    return names


def _check_named_entries(
    where: str, kind: str, entries: Sequence[HeartbeatConfig | StatusPageConfig], service_names: list[str]
) -> list[str]:
    """Heartbeats and status pages: unique names, and a service (if given) that the file declares."""
    problems = names_taken(where, [entry.name for entry in entries], kind)
    for index, entry in enumerate(entries):
        if entry.service is not None and entry.service not in service_names:
            problems.append(
                f"{where}[{index}].service: {not_in_file(entry.service, 'service', service_names)}"
            )
    return problems


def _unknown_match_services(where: str, match: RuleMatch, service_names: list[str]) -> list[str]:
    return [
        f"{where}.service[{item}]: {not_in_file(service, 'service', service_names)}"
        for item, service in enumerate(match.service)
        if service not in service_names
    ]


def _severity_map_references(org: OrgConfig) -> list[str]:
    severity_ids = org.severity_ids
    return [
        f"automation.severity_map.{alert_severity}: {level!r} is not one of {', '.join(severity_ids)}"
        for alert_severity, level in org.automation.severity_map.items()
        if level not in severity_ids
    ]


def file_warnings(org: OrgConfig, now: datetime) -> list[str]:
    """What in a valid org file may not do what it reads as (``config check`` and a reload say so; the file is
    taken): a maintenance schedule with no occurrence left, or a COUNT counted from the rules' start, not
    from now; a rule's runbook that no service lists (``services[].runbooks``), a typo or a runbook kept
    elsewhere, which is still attached by its name; an audience's recipient on a name no channel has."""
    from warroom.notify.config import unheard_recipients  # notify's config is read after this module's

    warnings = unheard_recipients(org)
    for index, schedule in enumerate(org.automation.maintenance_schedules):
        said = schedule.warning(now)
        if said is not None:
            warnings.append(f"automation.maintenance_schedules[{index}] ({schedule.name}): {said}")
    runbooks = list(dict.fromkeys(name for service in org.services for name in service.runbooks))
    for index, rule in enumerate(org.automation.rules):
        warnings.extend(
            f"automation.rules[{index}] ({rule.name}).runbooks: "
            + not_in_file(runbook, "runbook of a service", runbooks)
            for runbook in rule.runbooks
            if runbook not in runbooks
        )
    return warnings


def _entry_references(org: OrgConfig) -> list[str]:
    """Heartbeats, status pages, maintenance schedules, auto-resolve, enrich, inhibit rules, the digest."""
    automation: AutomationConfig = org.automation
    problems: list[str] = []
    service_names = [s.name for s in org.services]
    for section, kind, entries in (
        ("heartbeats", "heartbeat", automation.heartbeats),
        ("status_pages", "status page", automation.status_pages),
    ):
        problems.extend(_check_named_entries(f"automation.{section}", kind, entries, service_names))
    for section, kind, names in (
        (
            "maintenance_schedules",
            "schedule",
            [schedule.name for schedule in automation.maintenance_schedules],
        ),
        ("email_rules", "email rule", [rule.name for rule in automation.email_rules]),
        (
            "webhook_formats",
            "webhook format",
            [webhook_format.name for webhook_format in automation.webhook_formats],
        ),
        ("inhibit_rules", "inhibit rule", [rule.name for rule in automation.inhibit_rules]),
        ("enrich", "enrichment entry", [entry.name for entry in automation.enrich]),
    ):
        problems.extend(names_taken(f"automation.{section}", names, kind))
    for index, schedule in enumerate(automation.maintenance_schedules):
        problems.extend(
            f"automation.maintenance_schedules[{index}].services[{item}]: "
            + not_in_file(name, "service", service_names)
            for item, name in enumerate(schedule.services)
            if name not in service_names
        )
    for index, entry in enumerate(automation.auto_resolve):
        where = f"automation.auto_resolve[{index}].match"
        problems.extend(_unknown_match_services(where, entry.match, service_names))
    digest = automation.unrouted_digest
    audience_ids = [a.id for a in org.audiences]
    if digest is not None and digest.audience not in audience_ids:
        problems.append(
            f"automation.unrouted_digest.audience: {digest.audience!r} is not one of "
            f"{', '.join(audience_ids)}"
        )
    for index, enrich_rule in enumerate(automation.enrich):
        where = f"automation.enrich[{index}]"
        problems.extend(_unknown_match_services(f"{where}.match", enrich_rule.match, service_names))
        fixed = (
            enrich_rule.service
            if enrich_rule.service is not None and "{" not in enrich_rule.service
            else None
        )
        if fixed is not None and fixed not in service_names:
            problems.append(f"{where}.service: {not_in_file(fixed, 'service', service_names)}")
    for index, inhibit_rule in enumerate(automation.inhibit_rules):
        for side in ("source", "target"):
            where = f"automation.inhibit_rules[{index}].{side}"
            problems.extend(_unknown_match_services(where, getattr(inhibit_rule, side), service_names))
    return problems


def _rule_references(org: OrgConfig) -> list[str]:
    automation: AutomationConfig = org.automation
    problems: list[str] = []
    severity_ids = org.severity_ids
    service_names = [s.name for s in org.services]
    audience_ids = [a.id for a in org.audiences]
    policies = _policy_names(org)
    problems.extend(names_taken("automation.rules", [r.name for r in automation.rules], "rule"))
    for index, rule in enumerate(automation.rules):
        where = f"automation.rules[{index}]"
        if rule.incident is not None:
            if rule.incident.severity is not None and rule.incident.severity not in severity_ids:
                problems.append(
                    f"{where}.incident.severity: {rule.incident.severity!r} is not one of "
                    f"{', '.join(severity_ids)}"
                )
            for alert_severity, level in (rule.incident.severity_map or {}).items():
                if level not in severity_ids:
                    problems.append(
                        f"{where}.incident.severity_map.{alert_severity}: "
                        f"{level!r} is not one of {', '.join(severity_ids)}"
                    )
            for item, service in enumerate(rule.incident.services):
                if service not in service_names:
                    problems.append(
                        f"{where}.incident.services[{item}]: {not_in_file(service, 'service', service_names)}"
                    )
        elif rule.runbooks or rule.page or rule.notify:
            problems.append(f"{where}.incident: runbooks, page and notify need an incident action")
        problems.extend(_unknown_match_services(f"{where}.match", rule.match, service_names))
        for n_index, notify in enumerate(rule.notify):
            audience = org.audience(notify.audience)
            if audience is None:
                problems.append(
                    f"{where}.notify[{n_index}].audience: {notify.audience!r} is not one of "
                    f"{', '.join(audience_ids)}"
                )
            elif rule.incident is not None and rule.incident.private and audience.reaches_outside:
                problems.append(
                    f"{where}.notify[{n_index}].audience: {notify.audience!r} reaches people outside the "
                    "org, and this rule's incidents are private"
                )
        if rule.page is not None and policies is not None and rule.page not in policies:
            problems.append(f"{where}.page: {not_in_file(rule.page, 'escalation policy', list(policies))}")
    return problems


# Apart, so that a section that did not parse stops only the checks that read it (orgconfig's salvage).
REFERENCE_CHECKS: tuple[Callable[[OrgConfig], list[str]], ...] = (
    _severity_map_references,
    _entry_references,
    _rule_references,
)
