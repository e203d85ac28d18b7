"""The YAML org file: services, the severity matrix, audiences, roles, and suggestion rules.

Everything a team tunes lives here; the code ships the seed's matrix as defaults.
"""

from __future__ import annotations

import contextlib
import difflib
import re
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import UnionType
from typing import Annotated, Any, Literal, TypeVar, Union, get_args, get_origin

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import ErrorDetails

from warroom.alerts.config import REFERENCE_CHECKS as AUTOMATION_REFERENCE_CHECKS
from warroom.alerts.config import AutomationConfig, ItemProblem, NameTaken, Problems, names_taken
from warroom.business_hours import BusinessHours
from warroom.durations import Duration
from warroom.errors import InvalidInput
from warroom.fields import not_in_file, validation_message
from warroom.notify.config import (
    NotificationChannel,
    check_audience_channels,
    check_notification_channels,
    default_channels,
)
from warroom.oncall.config import (
    ONCALL_REFERENCE_CHECKS,
    EscalationPolicyConfig,
    PagingMode,
    PersonConfig,
    ScheduleConfig,
    TeamConfig,
    default_paging_modes,
)
from warroom.severity.matrix import built_in_level

ImpactLevel = Literal["none", "low", "medium", "high"]
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", defer_build=True)


class ServiceConfig(StrictModel):
    name: str
    description: str = ""
    owner_team: str | None = Field(
        default=None,
        description="The team of `teams` that owns it: pages its incidents when it has no escalation_policy "
        "(the team's policy, or one made from its on-call), and its business hours apply.",
    )
    tier: int = Field(default=2, ge=1, le=4, description="1 is the most critical.")
    customer_facing: bool = False
    dependencies: list[str] = Field(default_factory=list)
    runbooks: list[str] = Field(default_factory=list)
    escalation_policy: str | None = Field(default=None, description="Who is paged for this service.")

    @field_validator("name")
    @classmethod
    def _name_is_an_id(cls, value: str) -> str:
        if not _ID.match(value):
            raise ValueError("must be letters, digits, '-', '_' or '.'")
        return value


class SeverityLevel(StrictModel):
    id: str
    name: str
    definition: str
    examples: list[str] = Field(default_factory=list)
    response_target: Duration | None = Field(
        default=None, description="Time to acknowledge; null with next_business_day for P3-like levels."
    )
    response_next_business_day: bool = False
    escalation: str = ""
    communication: str = ""
    page: bool = True
    status_page: bool = False
    customer_notification: bool = False
    update_every: Duration | None = None

    @model_validator(mode="after")
    def _has_target(self) -> SeverityLevel:
        if self.response_target is None and not self.response_next_business_day:
            raise ValueError("set response_target or response_next_business_day")
        return self

    @property
    def response_target_text(self) -> str:
        if self.response_target is None:
            return "next business day"
        from warroom.durations import format_duration

        return format_duration(self.response_target)


class AudienceConfig(StrictModel):
    id: str
    description: str = ""
    channels: list[str] = Field(min_length=1, description="Where messages to this audience go.")
    external: bool = Field(
        default=False,
        description="Its messages reach people outside the org (customers): a private incident's are "
        "refused. An audience of the status page always is.",
    )

    @property
    def reaches_outside(self) -> bool:
        return self.external or any(channel.split(":", 1)[0] == "status-page" for channel in self.channels)


class SuggestionCondition(StrictModel):
    symptoms_any: list[str] = Field(default_factory=list)
    min_users_affected: int | None = None
    revenue_impact_at_least: ImpactLevel | None = None
    reputation_impact_at_least: ImpactLevel | None = None
    compliance_impact_at_least: ImpactLevel | None = None
    customer_facing: bool | None = None
    max_service_tier: int | None = Field(
        default=None, description="Any affected service of this tier or better."
    )
    safety_concern: bool | None = None


class SuggestionRule(StrictModel):
    severity: str
    reason: str
    when: SuggestionCondition


def default_severities() -> list[SeverityLevel]:
    return [
        SeverityLevel(
            id="P0",
            name="Critical",
            definition="The service is down for everyone, or data is lost or exposed.",
            examples=["Site unreachable", "Database corruption", "Breach exposing data", "Payments failing"],
            response_target="5m",
            escalation="All hands: page everyone in the policy at once.",
            communication="Public status page and direct customer notifications.",
            status_page=True,
            customer_notification=True,
            update_every="15m",
        ),
        SeverityLevel(
            id="P1",
            name="High",
            definition="A major function is badly impaired for many users.",
            examples=["Login broken", "Core feature unavailable", "Severe slowdown", "API error rate high"],
            response_target="15m",
            escalation="On-call engineer, then the engineering manager.",
            communication="Status page update and internal alerts.",
            status_page=True,
            update_every="30m",
        ),
        SeverityLevel(
            id="P2",
            name="Medium",
            definition="A minor function is broken or performance is degraded.",
            examples=[
                "Non-critical feature broken",
                "Slow responses",
                "Small UI glitch",
                "Third-party hiccup",
            ],
            response_target="2h",
            escalation="The assigned engineer.",
            communication="Internal tracking with scheduled updates.",
            update_every="2h",
        ),
        SeverityLevel(
            id="P3",
            name="Low",
            definition="Cosmetic problems and small inconveniences.",
            examples=["Typo", "Layout nit", "Minor feature request"],
            response_next_business_day=True,
            escalation="Normal workflow; nobody is paged.",
            communication="Internal ticket.",
            page=False,
        ),
    ]


def default_rules() -> list[SuggestionRule]:
    def rule(severity: str, reason: str, **when: Any) -> SuggestionRule:
        return SuggestionRule(severity=severity, reason=reason, when=SuggestionCondition(**when))

    return [
        rule(
            "P0",
            "complete outage, data loss, exposed data or failing payments",
            symptoms_any=["complete_outage", "data_loss", "data_exposure", "payment_failure"],
        ),
        rule("P0", "immediate safety concern", safety_concern=True),
        rule("P0", "high compliance impact", compliance_impact_at_least="high"),
        rule(
            "P1",
            "login down, a core feature unavailable, severe slowdown or high error rate",
            symptoms_any=["login_down", "core_feature_down", "severe_degradation", "high_error_rate"],
        ),
        rule("P1", "high revenue impact", revenue_impact_at_least="high"),
        rule("P1", "10,000 or more users affected", min_users_affected=10000),
        rule(
            "P2",
            "a minor feature broken, slow responses or a third-party problem",
            symptoms_any=[
                "minor_feature_broken",
                "slow_responses",
                "degraded_performance",
                "third_party_issue",
            ],
        ),
        rule("P2", "medium revenue or reputation impact", revenue_impact_at_least="medium"),
        rule("P2", "medium reputation impact", reputation_impact_at_least="medium"),
        rule("P2", "a customer-facing service is affected", customer_facing=True),
        rule("P3", "cosmetic issue", symptoms_any=["cosmetic", "typo", "layout"]),
    ]


DEFAULT_ROLES = ["commander", "technical", "communications", "scribe", "manager", "product", "support"]


def default_audiences() -> list[AudienceConfig]:
    return [
        AudienceConfig(id="internal", channels=["console"]),
        AudienceConfig(id="status-page", channels=["status-page"]),
        AudienceConfig(id="customers", channels=["email"], external=True),
        AudienceConfig(id="executives", channels=["email"]),
    ]


class ReferenceProblems(Problems):
    """Problems across sections, each "location: message"; kept as a list, as a message may hold '; '."""


class OrgConfig(StrictModel):
    """The validated org file. Unknown sections are errors, so a typo never passes silently."""

    organization: str = "Example Org"
    services: list[ServiceConfig] = Field(default_factory=list)
    severities: list[SeverityLevel] = Field(default_factory=default_severities)
    default_severity: str = "P2"
    severity_rules: list[SuggestionRule] = Field(default_factory=default_rules)
    audiences: list[AudienceConfig] = Field(default_factory=default_audiences)
    roles: list[str] = Field(default_factory=lambda: list(DEFAULT_ROLES))
    business_hours: BusinessHours = Field(default_factory=BusinessHours)
    # on-call (warroom.oncall.config)
    people: list[PersonConfig] = Field(default_factory=list)
    teams: list[TeamConfig] = Field(default_factory=list)
    schedules: list[ScheduleConfig] = Field(default_factory=list)
    escalation_policies: list[EscalationPolicyConfig] = Field(default_factory=list)
    severity_policies: dict[str, str] = Field(
        default_factory=dict, description="Severity id -> escalation policy; wins over service/team."
    )
    paging_modes: dict[str, PagingMode] = Field(
        default_factory=default_paging_modes, description="How each severity pages its policy."
    )
    notification_channels: list[NotificationChannel] = Field(default_factory=default_channels)
    automation: AutomationConfig = Field(default_factory=AutomationConfig)

    @model_validator(mode="after")
    def _defaults_follow_the_matrix(self) -> OrgConfig:
        # Before the references are checked: a default is never a problem of the file.
        defaults_follow_the_matrix(self)
        return self

    @model_validator(mode="after")
    def _check_references(self) -> OrgConfig:
        problems = [problem for check in REFERENCE_CHECKS for problem in check(self)]
        if problems:
            raise ReferenceProblems(problems)
        return self

    def severity(self, severity_id: str) -> SeverityLevel | None:
        return next((s for s in self.severities if s.id == severity_id), None)

    @property
    def severity_ids(self) -> list[str]:
        return [s.id for s in self.severities]

    def severity_rank(self, severity_id: str) -> int:
        """0 is the most severe level (the first in the file)."""
        return self.severity_ids.index(severity_id)

    def service(self, name: str) -> ServiceConfig | None:
        return next((s for s in self.services if s.name == name), None)

    def check_services(self, names: list[str], field: str = "services") -> None:
        """InvalidInput (422) naming ``field`` unless every name is a service of this file."""
        known = [service.name for service in self.services]
        unknown = sorted({name for name in names if name not in known})
        if unknown:
            listed = ", ".join(repr(name) for name in unknown)
            raise InvalidInput(
                f"{field}: unknown service{'s' if len(unknown) > 1 else ''} {listed}; "
                + (f"the org file has {', '.join(known)}" if known else "the org file names no services"),
                {"field": field, "allowed": known},
            )

    def business_hours_for(self, services: Iterable[str | None]) -> tuple[BusinessHours, str | None]:
        """The working hours that apply to these services: those of the first one's owner team that has its
        own (and that team's name), else the org's (and None)."""
        for name in services:
            service = self.service(name) if name else None
            if service is None or service.owner_team is None:
                continue
            team = next((t for t in self.teams if t.name == service.owner_team), None)
            if team is not None and team.business_hours is not None:
                return team.business_hours, team.name
        return self.business_hours, None

    def audience(self, audience_id: str) -> AudienceConfig | None:
        return next((a for a in self.audiences if a.id == audience_id), None)


def defaults_follow_the_matrix(org: OrgConfig) -> None:
    """The built-in default level and suggestion rules name P0-P3. In a file with a matrix of its own that
    leaves them out, each level the file lacks is the matrix's level at its place (``built_in_level``): a
    two-level matrix gets its first level for the P0 and P1 rules and its last for the P2 and P3 ones, not
    eleven problems about rules nobody wrote. What the file gives is kept, and checked as written."""
    severity_ids = org.severity_ids
    if not severity_ids:
        return  # a problem of its own (_matrix_references)
    given = org.model_fields_set
    if "default_severity" not in given:
        org.default_severity = built_in_level(severity_ids, org.default_severity)
    if "severity_rules" not in given:
        org.severity_rules = [
            rule.model_copy(update={"severity": built_in_level(severity_ids, rule.severity)})
            for rule in org.severity_rules
        ]


def _matrix_references(org: OrgConfig) -> list[str]:
    problems: list[str] = []
    severity_ids = [s.id for s in org.severities]
    if not severity_ids:
        problems.append("severities: at least one level is needed")
    problems.extend(names_taken("severities", severity_ids, "level", "id"))
    if org.severities and org.default_severity not in severity_ids:
        problems.append(f"default_severity: {org.default_severity!r} is not one of {', '.join(severity_ids)}")
    for index, rule in enumerate(org.severity_rules):
        if rule.severity not in severity_ids:
            problems.append(
                f"severity_rules[{index}].severity: {rule.severity!r} is not one of {', '.join(severity_ids)}"
            )
    return problems


def _service_references(org: OrgConfig) -> list[str]:
    problems: list[str] = []
    names = [s.name for s in org.services]
    problems.extend(names_taken("services", names, "service"))
    for index, service in enumerate(org.services):
        for item, dependency in enumerate(service.dependencies):
            if dependency not in names:
                problems.append(
                    f"services[{index}].dependencies[{item}]: {not_in_file(dependency, 'service', names)}"
                )
    return problems


def _dependency_cycles(org: OrgConfig) -> list[str]:
    """A service that depends on itself, directly or through others: always a mistake, and not a harmless one,
    as an alert joins the ongoing incident of a service its own depends on (``dependency_window``), so in a
    cycle each side's alert folds into the other's incident, whichever opened first. Each cycle is named once,
    at the dependency of its first service in the file that starts it; services in several cycles with one
    another (one knot) once, by the shortest cycle through the first of them."""
    index_of: dict[str, int] = {}
    for index, service in enumerate(org.services):
        index_of.setdefault(service.name, index)
    graph = {
        index: [index_of[name] for name in service.dependencies if name in index_of]
        for index, service in enumerate(org.services)
        if index_of[service.name] == index  # a name given twice is a problem of its own
    }
    problems: list[tuple[int, str]] = []  # by service, in file order
    for index in graph:
        for item, name in enumerate(org.services[index].dependencies):
            if name == org.services[index].name:
                problems.append(
                    (
                        index,
                        f"services[{index}].dependencies[{item}]: a dependency cycle: {name} -> {name} "
                        "(a service cannot depend on itself; remove it from its own dependencies)",
                    )
                )
                break
    for knot in _knots(graph):
        start = min(knot)
        chain = _shortest_cycle(graph, start, set(knot))
        names = [org.services[index].name for index in chain]
        item = org.services[start].dependencies.index(names[1])
        others = [org.services[index].name for index in sorted(set(knot) - set(chain))]
        shown = ", ".join(others[:10]) + (f" and {len(others) - 10} more" if len(others) > 10 else "")
        more = f"; {shown} {'is' if len(others) == 1 else 'are'} in cycles with these too" if others else ""
        problems.append(
            (
                start,
                f"services[{start}].dependencies[{item}]: a dependency cycle: {' -> '.join(names)}{more} "
                "(a service cannot depend on itself through others; remove one of these dependencies)",
            )
        )
    return [problem for _, problem in sorted(problems, key=lambda found: found[0])]


def _knots(graph: dict[int, list[int]]) -> list[list[int]]:
    """The strongly connected components of more than one service (Tarjan's, without recursion: a file of
    thousands of services in one chain is no deeper a stack)."""
    order: dict[int, int] = {}
    low: dict[int, int] = {}
    stack: list[int] = []
    on_stack: set[int] = set()
    knots: list[list[int]] = []
    for root in graph:
        if root in order:
            continue
        work = [(root, iter(graph[root]))]
        order[root] = low[root] = len(order)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, edges = work[-1]
            advanced = False
            for upstream in edges:
                if upstream not in order:
                    order[upstream] = low[upstream] = len(order)
                    stack.append(upstream)
                    on_stack.add(upstream)
                    work.append((upstream, iter(graph[upstream])))
                    advanced = True
                    break
                if upstream in on_stack:
                    low[node] = min(low[node], order[upstream])
            if advanced:
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == order[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    knots.append(sorted(component))
    return sorted(knots)


def _shortest_cycle(graph: dict[int, list[int]], start: int, within: set[int]) -> list[int]:
    """The shortest way from ``start`` back to it inside one knot, both ends given (breadth first)."""
    came_from: dict[int, int] = {}
    frontier = deque([start])
    while frontier:
        node = frontier.popleft()
        for upstream in graph[node]:
            if upstream == start and node != start:
                chain = [node]
                while chain[-1] != start:
                    chain.append(came_from[chain[-1]])
                return [*reversed(chain), start]
            if upstream in within and upstream != start and upstream not in came_from:
                came_from[upstream] = node
                frontier.append(upstream)
    raise AssertionError("a knot has a cycle through each of its services")


def _owner_teams(org: OrgConfig) -> list[str]:
    """A service's owner team must be one of ``teams``: its incidents are paged (and timed by business hours)
    through that team, so a name of none, a typo, paged nobody while the file passed. A check of its own, so
    that teams that did not parse skip it rather than the service checks."""
    teams = [team.name for team in org.teams]
    return [
        f"services[{index}].owner_team: {not_in_file(service.owner_team, 'team', teams)}"
        for index, service in enumerate(org.services)
        if service.owner_team is not None and service.owner_team not in teams
    ]


def _audiences_and_roles(org: OrgConfig) -> list[str]:
    problems: list[str] = []
    audience_ids = [a.id for a in org.audiences]
    problems.extend(names_taken("audiences", audience_ids, "audience", "id"))
    if "commander" not in org.roles:
        problems.append("roles: 'commander' must be one of the roles")
    return problems


# The checks across sections, each giving "location: message" strings. Separate, so that when some fields
# did not parse, the checks that do not read them still run (``_salvaged_reference_problems``).
REFERENCE_CHECKS: tuple[Callable[[OrgConfig], list[str]], ...] = (
    _matrix_references,
    _service_references,
    _dependency_cycles,
    _owner_teams,
    _audiences_and_roles,
    *ONCALL_REFERENCE_CHECKS,
    check_notification_channels,
    check_audience_channels,
    *AUTOMATION_REFERENCE_CHECKS,
)


@dataclass(frozen=True)
class ConfigProblem:
    location: str
    line: int | None
    message: str

    def __str__(self) -> str:
        where = f"{self.location} (line {self.line})" if self.line else self.location
        return f"{where}: {self.message}"


class ConfigStatus(BaseModel):
    """The org file a running process uses (``GET /api/v1/config``)."""

    file: str | None = Field(description="Its path; null when the process runs on the defaults.")
    loaded_at: datetime = Field(description="When it was read: at start, or at the last reload.")
    summary: str
    warnings: list[str] = Field(
        default_factory=list,
        description="What a reload took but is worth a look: sections it emptied, escalations running on a "
        "policy it no longer has.",
    )


class ConfigError(Exception):
    def __init__(self, path: str, problems: list[ConfigProblem]) -> None:
        self.path = path
        self.problems = problems
        super().__init__(f"{path}: " + "; ".join(str(p) for p in problems))


def _line_of(node: yaml.Node | None, loc: tuple[int | str, ...]) -> int | None:
    """Walk the composed YAML node tree along a pydantic error location to find its line."""
    line = node.start_mark.line + 1 if node is not None else None
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            match = next((v for k, v in node.value if getattr(k, "value", None) == part), None)
            if match is None:
                break
            node = match
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
        else:
            break
        line = node.start_mark.line + 1
    return line


def _format_loc(loc: tuple[int | str, ...]) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "(top level)"


def _walk(root: yaml.Node | None) -> Iterator[tuple[yaml.Node, tuple[int | str, ...]]]:
    """Every node of the tree with its location, each once, breadth first. Aliases can make the tree a graph
    (or a cycle): first come, first named, so an alias's target is named where it is written, not where it
    is used."""
    seen: set[int] = set()
    pending: deque[tuple[yaml.Node | None, tuple[int | str, ...]]] = deque([(root, ())])
    while pending:
        node, loc = pending.popleft()
        if node is None or id(node) in seen:
            continue
        seen.add(id(node))
        yield node, loc
        if isinstance(node, yaml.MappingNode):
            pending.extend((value, (*loc, str(getattr(key, "value", "?")))) for key, value in node.value)
        elif isinstance(node, yaml.SequenceNode):
            pending.extend((item, (*loc, index)) for index, item in enumerate(node.value))


def _impossible_dates(root: yaml.Node | None) -> list[ConfigProblem]:
    """The timestamps in the tree that cannot be built, each once, with its location and line."""
    problems: list[ConfigProblem] = []
    for node, loc in _walk(root):
        if isinstance(node, yaml.ScalarNode) and node.tag == "tag:yaml.org,2002:timestamp":
            try:
                yaml.SafeLoader("").construct_yaml_timestamp(node)
            except ValueError as exc:
                message = f"{node.value!r} is not a date or time that exists ({exc})"
                problems.append(ConfigProblem(_format_loc(loc), node.start_mark.line + 1, message))
    return sorted(problems, key=lambda problem: problem.line or 0)


_MERGE_TAG = "tag:yaml.org,2002:merge"
_STR_TAG = "tag:yaml.org,2002:str"


def _duplicate_keys(root: yaml.Node | None) -> list[ConfigProblem]:
    """Every key given again in a mapping that has it already, at the later one: PyYAML keeps the last
    silently, so a second ``automation:`` appended to a file replaced every rule, and a rule's second
    ``match:`` its first. Keys are compared as the values YAML builds (``1`` and ``true`` are one dict key
    in Python, as ``a`` and ``"a"`` are); merge keys (``<<``) are not keys of their own."""
    problems: list[ConfigProblem] = []
    builder = yaml.SafeLoader("")
    for node, loc in _walk(root):
        if not isinstance(node, yaml.MappingNode):
            continue
        first: dict[Any, yaml.Node] = {}
        for key, _value in node.value:
            if not isinstance(key, yaml.ScalarNode) or key.tag == _MERGE_TAG:
                continue  # a list or mapping as a key is refused when built (unhashable)
            try:
                identity = key.value if key.tag == _STR_TAG else builder.construct_object(key)
                earlier = first.setdefault(identity, key)
            except (yaml.YAMLError, ValueError, TypeError):
                continue  # a key that cannot be built (an impossible date) is reported as such
            if earlier is not key:
                mark, was = key.start_mark, earlier.start_mark
                problems.append(
                    ConfigProblem(
                        _format_loc((*loc, str(key.value))),
                        mark.line + 1,
                        f"duplicate key {key.value!r} (column {mark.column + 1}): already given at line "
                        f"{was.line + 1}, column {was.column + 1}, and YAML would silently keep only the "
                        "last; merge the two or remove one",
                    )
                )
    return sorted(problems, key=lambda problem: problem.line or 0)


class DuplicateKeys(yaml.MarkedYAMLError):
    """Keys given twice in one mapping (``OrgFileLoader``), each a problem at the later one."""

    def __init__(self, problems: list[ConfigProblem]) -> None:
        super().__init__(problem="; ".join(str(p) for p in problems))
        self.problems = problems


def _refuse_duplicate_keys(node: yaml.Node | None) -> None:
    problems = _duplicate_keys(node)
    if problems:
        raise DuplicateKeys(problems)


# libyaml (PyYAML's C loader) reads a big org file five times faster than PyYAML's own Python one; PyYAML
# ships without it on some platforms.
_YAML_BASE: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class OrgFileLoader(_YAML_BASE):  # type: ignore[valid-type,misc]
    """PyYAML's safe loader — its C one (libyaml) when PyYAML has it — refusing a document that gives a key
    twice in one mapping (``DuplicateKeys``, with every such key), where PyYAML would keep the last silently.
    Checked on the composed tree, before anything is built: each mapping is seen once, as written, not after
    merge keys (``<<``) are expanded into it. Every reading of the org file goes through it
    (``parse_org_config``); what the file's YAML means (implicit resolvers, constructors) is set on this
    class, and the pure-Python loader that reports a document libyaml refuses (``_PyOrgFileLoader``) uses
    the same."""

    def get_single_node(self) -> yaml.Node | None:
        # libyaml composes the whole tree in C, never calling compose_document: check the tree it gives.
        node: yaml.Node | None = super().get_single_node()
        _refuse_duplicate_keys(node)
        return node


class _PyOrgFileLoader(yaml.SafeLoader):
    """``OrgFileLoader`` in pure Python, for a document it refused: PyYAML's own errors (their messages, marks
    and snippets) are what the org file's problem reports are made of, and a document libyaml refuses where
    PyYAML takes it is still read. OrgFileLoader's resolvers and constructors, whatever is added there."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.yaml_implicit_resolvers = OrgFileLoader.yaml_implicit_resolvers
        vars(self).update(
            yaml_constructors=OrgFileLoader.yaml_constructors,
            yaml_multi_constructors=OrgFileLoader.yaml_multi_constructors,
        )

    def compose_document(self) -> yaml.Node | None:
        node = super().compose_document()
        _refuse_duplicate_keys(node)
        return node


# YAML 1.1 reads 10:00 to 23:59 unquoted as base-60 numbers (600) while 09:00 stays text, so a hand-off, a
# business day or a restriction written as a clock was refused from ten o'clock on. YAML 1.2 dropped base 60,
# and so does the org file: its ints and floats are YAML 1.1's without the ``:`` forms, and ``10:00`` is the
# text "10:00" (nothing in the file is a base-60 number; durations are 5m, 1h30m or HH:MM:SS text).
_INT_TAG = "tag:yaml.org,2002:int"
_FLOAT_TAG = "tag:yaml.org,2002:float"
_NO_BASE_60 = {
    _INT_TAG: re.compile(
        r"""^(?:[-+]?0b[0-1_]+
        |[-+]?0[0-7_]+
        |[-+]?(?:0|[1-9][0-9_]*)
        |[-+]?0x[0-9a-fA-F_]+)$""",
        re.X,
    ),
    _FLOAT_TAG: re.compile(
        r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+][0-9]+)?
        |\.[0-9][0-9_]*(?:[eE][-+][0-9]+)?
        |[-+]?\.(?:inf|Inf|INF)
        |\.(?:nan|NaN|NAN))$""",
        re.X,
    ),
}
# Each first character keeps its resolvers in their order (a float is tried before an int), with the two
# replaced: the class's own table, PyYAML's left as it is.
OrgFileLoader.yaml_implicit_resolvers = {
    first: [(tag, _NO_BASE_60.get(tag, regexp)) for tag, regexp in resolvers]
    for first, resolvers in OrgFileLoader.yaml_implicit_resolvers.items()
}


# libyaml's problem for lists and mappings nested past its limit (1,000 levels), and the problem said for it.
_NESTED_TOO_DEEP = "exceeded maximum nesting depth"
NESTED_TOO_DEEP = (
    "lists and mappings are nested too deeply to read{at}: an org file is never this deep; check the brackets"
)


def _compose(text: str) -> tuple[OrgFileLoader | _PyOrgFileLoader, yaml.Node | None]:
    """The file's YAML tree and the loader that composed it (to build the tree with). libyaml composes it,
    unless the text has a tab: libyaml takes a tab inside or after a plain value (``name: a\tb``) where PyYAML
    refuses it, and such a file is read by PyYAML as it always was. A document libyaml refuses (or cannot
    encode: a lone surrogate) is read again by PyYAML, whose errors the problem reports are made of; a file
    with errors is the rare case, and the slow one."""
    fast: OrgFileLoader | None = None
    if "\t" not in text:
        with contextlib.suppress(UnicodeError):
            fast = OrgFileLoader(text)
    if fast is not None:
        try:
            return fast, fast.get_single_node()
        except DuplicateKeys:
            fast.dispose()
            raise
        except yaml.YAMLError as exc:
            fast.dispose()
            if _NESTED_TOO_DEEP in (getattr(exc, "problem", None) or ""):
                raise  # PyYAML would recurse until Python's own limit (a RecursionError), not refuse it
    python = _PyOrgFileLoader(text)
    try:
        return python, python.get_single_node()
    except BaseException:
        python.dispose()
        raise


EMPTY_FILE = (
    "the file is empty (nothing but blanks, comments or '---'): it would run with no services, escalation "
    "policies or automation rules, so every alert would go unrouted and nobody would be paged; to run on the "
    "built-in defaults, give no org file at all"
)


def parse_org_config(text: str, source: str = "<string>") -> OrgConfig:
    try:
        return _parse_org_config(text, source)
    except RecursionError as exc:
        # Nesting libyaml takes or PyYAML reads (a file with a tab), recursing past Python's limit in PyYAML
        # or in reporting a value (its repr): one problem, not a traceback.
        raise ConfigError(source, [ConfigProblem(source, None, NESTED_TOO_DEEP.format(at=""))]) from exc


def _parse_org_config(text: str, source: str) -> OrgConfig:
    # One pass: the tree composed (a key given twice is refused there), then built from that tree.
    loader: OrgFileLoader | _PyOrgFileLoader | None = None
    root: yaml.Node | None = None
    try:
        loader, root = _compose(text)
        data = loader.construct_document(root) if root is not None else None
    except DuplicateKeys as exc:
        raise ConfigError(source, exc.problems) from exc
    except yaml.YAMLError as exc:
        raise ConfigError(source, [_syntax_problem(source, text, exc)]) from exc
    except ValueError as exc:
        # A date YAML reads as one but the calendar has not (2026-02-30, hour 25): name where it is.
        problems = _impossible_dates(root) or [ConfigProblem("(yaml)", None, str(exc))]
        raise ConfigError(source, problems) from exc
    finally:
        if loader is not None:
            loader.dispose()
    if data is None:
        # An empty file is a mistake (truncated, or saved half-written), not a wish for the defaults: it
        # would have dropped every rule and policy on a reload.
        raise ConfigError(source, [ConfigProblem("(file)", None, EMPTY_FILE)])
    if not isinstance(data, dict):
        raise ConfigError(source, [ConfigProblem("(top level)", 1, "the file must be a mapping")])
    try:
        return OrgConfig.model_validate(data)
    except ValidationError as exc:
        found: list[ConfigProblem] = []
        references: list[str] | None = None
        for error in exc.errors():
            cause = error.get("ctx", {}).get("error")
            if isinstance(cause, ReferenceProblems):
                references = cause.problems
                continue
            loc = _without_tags(tuple(error["loc"]))
            if error["type"] == "union_tag_invalid":  # at the line of the type, not of the entry
                loc = (*loc, str(error["ctx"].get("discriminator", "type")).strip("'"))
            # Every problem of a value on its own (a rule's three bad regexes), not only its first; one of
            # an item of it (a label's regex) at that item's own place and line.
            messages = cause.problems if isinstance(cause, Problems) else [_message(error)]
            for message in messages:
                at = (*loc, *message.at) if isinstance(message, ItemProblem) else loc
                said = message.short if isinstance(message, ItemProblem) else message
                found.append(ConfigProblem(_format_loc(at), _line_of(root, at), said))
        if references is None:
            # Pydantic checks no references when a field failed: check them on what did parse, so that
            # one run shows every problem (a duplicate name beside a bad interval).
            references = _salvaged_reference_problems(data, exc)
        found.extend(_reference_problem(item, root) for item in references)
        # In the file's order, as a person reads and fixes it: the field problems and the cross-reference
        # ones are found apart (and each check in its own order).
        found.sort(key=lambda problem: (problem.line is None, problem.line or 0))
        raise ConfigError(source, found) from exc


# What PyYAML was reading when it found the problem, when that thing's start is the place to look: a quote
# or a bracket left open runs on, and the problem is found lines later (the next quote, the end of the file).
_OPENED = {
    "while scanning a quoted scalar": "the quoted text",
    "while scanning a double-quoted scalar": "the double-quoted text",
    "while scanning a single-quoted scalar": "the single-quoted text",
    "while parsing a flow sequence": "the [ list",
    "while parsing a flow mapping": "the { mapping",
    "while parsing a flow node": "the value",
}


# PyYAML's (and libyaml's) context for an anchor given twice; the problem is "second occurrence".
_DUPLICATE_ANCHOR = re.compile(r"found duplicate anchor(?: (?P<anchor>.+))?; first occurrence")


def _syntax_problem(source: str, text: str, exc: yaml.YAMLError) -> ConfigProblem:
    """A YAML syntax error as one problem at the line where it starts, in words (PyYAML's own text spans
    lines and says ``in "<unicode string>"``): an unclosed quote or bracket at the line that opens it, with
    where the problem showed; anything else at the line of the problem, with what it was in."""
    if isinstance(exc, yaml.reader.ReaderError):  # a character YAML does not take (a control character)
        line = text.count("\n", 0, exc.position) + 1
        column = exc.position - (text.rfind("\n", 0, exc.position) + 1) + 1
        character = f"#x{exc.character:04x}" if isinstance(exc.character, int) else repr(exc.character)
        return ConfigProblem(
            source, line, f"character {character} (column {column}) is not allowed in YAML ({exc.reason})"
        )
    if not isinstance(exc, yaml.MarkedYAMLError):
        return ConfigProblem(source, None, " ".join(str(exc).split()))
    problem, context = exc.problem or "a YAML syntax error", exc.context
    at, start = exc.problem_mark, exc.context_mark
    opened = _OPENED.get(context or "")
    if opened is not None and start is not None and at is not None and start.line != at.line:
        message = (
            f"{opened} that starts here (column {start.column + 1}) is not closed where it should be: "
            f"{problem} at line {at.line + 1}, column {at.column + 1}"
        )
        return ConfigProblem(source, start.line + 1, message)
    mark = at or start
    if _NESTED_TOO_DEEP in problem:
        message = NESTED_TOO_DEEP.format(at=f" (column {mark.column + 1})" if mark is not None else "")
        return ConfigProblem(source, mark.line + 1 if mark is not None else None, message)
    mark = at or start
    message = problem + (f" (column {mark.column + 1})" if mark is not None else "")
    if context and not context.startswith("while "):
        # A context that is the other half of the problem, at its own place: "found duplicate anchor 's';
        # first occurrence" at the first anchor and "second occurrence" at this one, or "expected a single
        # document in the stream" at the first document and "but found another document" at this one.
        duplicate = _DUPLICATE_ANCHOR.fullmatch(context)
        if duplicate is not None and problem == "second occurrence":
            anchor = f" {duplicate['anchor']}" if duplicate["anchor"] else ""
            message = f"duplicate anchor{anchor}" + message.removeprefix(problem)
            if start is not None and start is not mark:
                message += f": first given at line {start.line + 1}, column {start.column + 1}"
        else:
            message = f"{context}" + (
                f" (at line {start.line + 1}, column {start.column + 1})"
                if start is not None and start is not mark
                else ""
            )
            message += f", {problem}" + (f" (column {mark.column + 1})" if mark is not None else "")
    elif context and start is not None and mark is not start:
        what = context.removeprefix("while ").replace("parsing ", "").replace("scanning ", "")
        what = {"a block collection": "the list", "a block mapping": "the mapping"}.get(what, what)
        message += f", in {what} that starts at line {start.line + 1}, column {start.column + 1}"
    if "expected <block end>" in problem:
        message += ": check this line's indentation"
    elif "'\\t'" in problem and mark is not None:
        # A tab before the line's first non-blank character is indentation; one after it is inside a value.
        line_start = text.rfind("\n", 0, mark.index) + 1
        if text[line_start : mark.index].strip(" \t"):
            message += ": a tab inside a plain value: quote the value or use spaces"
        else:
            message += ": YAML indents with spaces, not tabs"
    if exc.note:
        message += f" ({exc.note})"
    return ConfigProblem(source, mark.line + 1 if mark is not None else None, message)


def _message(error: ErrorDetails) -> str:
    """A pydantic error in the file's terms: no "Value error, " before a validator's own words, and no class
    name for an entry that is not a mapping ("valid dictionary or instance of AutomationRule"); an unknown key
    with the keys the place takes, and a value not among the allowed ones quoted."""
    if error["type"] == "extra_forbidden":
        key = str(error["loc"][-1])
        allowed = _fields_at(tuple(error["loc"][:-1]))
        if not allowed:
            return f"unknown key {key!r}"
        close = difflib.get_close_matches(key, allowed, n=1, cutoff=0.6)
        guess = f"; did you mean {close[0]!r}?" if close else ""
        return f"unknown key {key!r}{guess} (allowed here: {', '.join(allowed)})"
    if error["type"] in ("union_tag_invalid", "union_tag_not_found"):
        # A channel's type, as the file's other unknown names are said (pydantic's own words are about
        # "tags" and a "discriminator").
        key = str((error.get("ctx") or {}).get("discriminator", "type")).strip("'")
        tags = [tag for model in _models_at(tuple(error["loc"])) for tag in sorted(_tags_of(model))]
        listed = f" (allowed: {', '.join(tags)})" if tags else ""
        if error["type"] == "union_tag_not_found":
            return f"missing key {key!r}{listed}"
        given = error["ctx"].get("tag")
        close = difflib.get_close_matches(str(given), tags, n=1, cutoff=0.6)
        guess = f"; did you mean {close[0]!r}?" if close else ""
        return f"unknown {key} {given!r}{guess}{listed}"
    if error["type"] in ("enum", "literal_error") and (error.get("ctx") or {}).get("expected"):
        return f"{error.get('input')!r} is not allowed: expected {error['ctx']['expected']}"
    if error["type"] in ("model_type", "model_attributes_type", "dict_type"):
        fields = _fields_of(error.get("ctx", {}).get("class_name"))
        shape = f"a mapping ({', '.join(fields[:3])}, …)" if fields else "a mapping (key: value lines)"
        given = error.get("input")
        what = "null (empty)" if given is None else f"{_YAML_KINDS.get(type(given), 'a value')} {given!r}"
        return f"should be {shape}, not {what}"
    return validation_message(error)


_YAML_KINDS: dict[type, str] = {str: "the text", int: "the number", float: "the number", bool: "the boolean"}
_YAML_KINDS[list] = "the list"


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    """The org-file models an annotation holds (``list[Rule] | None`` → ``[Rule]``)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [model for arg in get_args(annotation) for model in _models_in(arg)]


def _fields_at(loc: tuple[int | str, ...]) -> list[str]:
    """The keys the mapping at ``loc`` of the org file takes (pydantic's error location), or none when the
    place is not one model (a list index or a dict's key is stepped over; a union's tag picks its model)."""
    models = _models_at(loc)
    return list(models[0].model_fields) if len(models) == 1 else []


def _models_at(loc: tuple[int | str, ...]) -> list[type[BaseModel]]:
    """The models the mapping at ``loc`` may be: several for a union (the channel types)."""
    models: list[type[BaseModel]] = [OrgConfig]
    for part in loc:
        if isinstance(part, int):
            continue
        found: list[type[BaseModel]] = []
        for model in models:
            field = model.model_fields.get(part)
            if field is not None:
                found.extend(_models_in(field.annotation))
            elif model.__name__ == part or part in _tags_of(model):
                found.append(model)  # a tagged union's member, named by its tag
        if found:
            models = list(dict.fromkeys(found))
        # else: a dict's key (a format's name, a label): the models stay those of the dict's values
    return models


def _without_tags(loc: tuple[int | str, ...]) -> tuple[int | str, ...]:
    """A pydantic error location as the file has it: without the tag pydantic puts after a union's entry
    (``notification_channels[1].email.settings.port`` is the file's
    ``notification_channels[1].settings.port``, and its line is that of ``port``)."""
    models: list[type[BaseModel]] = [OrgConfig]
    kept: list[int | str] = []
    for part in loc:
        if isinstance(part, int):
            kept.append(part)
            continue
        fields = [model.model_fields[part] for model in models if part in model.model_fields]
        if fields:
            kept.append(part)
            models = list(dict.fromkeys(m for field in fields for m in _models_in(field.annotation)))
            continue
        tagged = [model for model in models if part in _tags_of(model)]
        if tagged:
            models = tagged  # the tag: not a key of the file
            continue
        kept.append(part)  # a dict's key: the models stay those of the dict's values
    return tuple(kept)


def _tags_of(model: type[BaseModel]) -> set[str]:
    """The tag values that pick ``model`` in a discriminated union (its ``type`` literal)."""
    field = model.model_fields.get("type")
    return {str(value) for value in get_args(field.annotation)} if field is not None else set()


def _fields_of(class_name: Any) -> list[str]:
    """The field names of the model of the org file called ``class_name`` (empty if there is none)."""
    seen: set[type[BaseModel]] = set()
    pending: list[Any] = [OrgConfig]
    while pending:
        annotation = pending.pop()
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            if annotation in seen:
                continue
            seen.add(annotation)
            if annotation.__name__ == class_name:
                return list(annotation.model_fields)
            pending.extend(field.annotation for field in annotation.model_fields.values())
        else:
            pending.extend(get_args(annotation))
    return []


def _path(where: str) -> tuple[int | str, ...]:
    return tuple(int(p) if p.isdigit() else p for p in re.split(r"[.\[\]]+", where) if p)


def _reference_problem(item: str, root: yaml.Node | None) -> ConfigProblem:
    """A cross-reference problem names its own location: "section[index].field: message"."""
    where, _, what = item.partition(": ")
    line = _line_of(root, _path(where))
    if isinstance(item, NameTaken) and line is not None:
        # Both places by line: in a file of many entries, an index is hard to count to.
        first = _line_of(root, _path(item.first))
        what = (
            f"{item.name!r} at line {line} is already the name of the {item.kind} at line {first} "
            f"({item.first})"
        )
    return ConfigProblem(where, line, what)


_Model = TypeVar("_Model", bound=BaseModel)


class _Unsalvageable(Exception):
    """A value that did not parse and holds nothing to keep."""


def _salvaged_reference_problems(data: dict[str, Any], exc: ValidationError) -> list[str]:
    """The cross-reference problems of a file some fields of which did not parse: each check runs on an
    OrgConfig built without validation from what did parse. A field that did not parse is left unset, not
    defaulted: a check that reads one fails (AttributeError) and is skipped, so none reports a reference as
    unknown, or a value as missing, because it did not parse."""
    try:
        org = _salvage_model(OrgConfig, data, [tuple(error["loc"]) for error in exc.errors()])
    except Exception:  # best effort: the field problems are reported either way
        return []
    with contextlib.suppress(Exception):  # the matrix did not parse: the defaults stay as built in
        defaults_follow_the_matrix(org)
    problems: list[str] = []
    for check in REFERENCE_CHECKS:
        try:
            problems.extend(check(org))
        except Exception:  # it read a part that did not parse (AttributeError) or a hole we did not foresee
            continue
    return problems


def _salvage_model(model: type[_Model], raw: Any, errors: list[tuple[int | str, ...]]) -> _Model:
    """``model`` built from ``raw`` (unvalidated as a whole) keeping every field that parsed; ``errors``:
    the locations, under this model, of what did not."""
    if not isinstance(raw, dict):
        raise _Unsalvageable
    values: dict[str, Any] = {}
    unset: list[str] = []
    for name, field in model.model_fields.items():
        key = field.alias or name
        if key not in raw:
            continue  # the default, as validation gives it
        below = [loc[1:] for loc in errors if loc and loc[0] == key]
        try:
            values[name] = _salvage_value(field.annotation, field.metadata, raw[key], below)
        except _Unsalvageable:
            unset.append(name)
    built = model.model_construct(**values)
    for name in unset:
        built.__dict__.pop(name, None)  # reading it raises AttributeError, as a required one left out does
    return built


def _salvage_value(
    annotation: Any, metadata: list[Any], raw: Any, errors: list[tuple[int | str, ...]]
) -> Any:
    """``raw`` as the field's type, keeping what parsed (_Unsalvageable when nothing can be kept)."""
    if not errors:
        try:
            return _adapter(Annotated[annotation, *metadata] if metadata else annotation).validate_python(raw)
        except ValidationError:  # a value that parsed only through its model's own validators
            raise _Unsalvageable from None
    if get_origin(annotation) is Annotated:  # a list's items: list[Annotated[A | B, Field(discriminator)]]
        inner, *more = get_args(annotation)
        return _salvage_value(inner, [*metadata, *more], raw, errors)
    members = [arg for arg in get_args(annotation) if arg is not type(None)]
    if get_origin(annotation) in (Union, UnionType) and len(members) == 1:
        return _salvage_value(members[0], metadata, raw, errors)
    discriminator = next((m.discriminator for m in metadata if getattr(m, "discriminator", None)), None)
    if get_origin(annotation) in (Union, UnionType) and isinstance(discriminator, str):
        return _salvage_tagged(members, discriminator, raw, errors)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        # An error at the model itself (an after validator) leaves its fields to keep.
        return _salvage_model(annotation, raw, [loc for loc in errors if loc])
    if () in errors:
        raise _Unsalvageable
    if get_origin(annotation) is list and isinstance(raw, list):
        (item_type,) = get_args(annotation)
        items = []
        for index, item in enumerate(raw):
            try:
                items.append(
                    _salvage_value(item_type, [], item, [loc[1:] for loc in errors if loc[0] == index])
                )
            except _Unsalvageable:
                # A bad name in a list of names: the others still count. Any other item left out would
                # shift the indexes the checks name.
                if item_type is not str:
                    raise
        return items
    if get_origin(annotation) is dict and isinstance(raw, dict):
        key_type, value_type = get_args(annotation)
        entries = {}
        for key, value in raw.items():
            try:
                below = [loc[1:] for loc in errors if loc[0] == key]
                entries[_adapter(key_type).validate_python(key)] = _salvage_value(
                    value_type, [], value, below
                )
            except (_Unsalvageable, ValidationError):
                # A bad value under one key (a paging mode's typo) costs that key only; a model's entry
                # left out could make a check report a name as unknown.
                if _models_in(value_type):
                    raise _Unsalvageable from None
        return entries
    raise _Unsalvageable  # a scalar that did not parse, a union of models


def _salvage_tagged(
    members: list[Any], tag_key: str, raw: Any, errors: list[tuple[int | str, ...]]
) -> BaseModel:
    """An entry of a union of models picked by its ``tag_key`` (a channel's ``type``). Pydantic names the
    member in its errors' locations (``email``, then the field). An unknown tag still keeps the fields all
    members share (a channel's name, recipient and templates), on the closest member, with the tag as
    written: a channel of type ``consle`` is still a name the file has, and its templates are checked."""
    if not isinstance(raw, dict):
        raise _Unsalvageable
    models = [member for member in members if isinstance(member, type) and issubclass(member, BaseModel)]
    by_tag = {tag: model for model in models for tag in _tags_of(model)}
    tag = raw.get(tag_key)
    model = by_tag.get(tag) if isinstance(tag, str) else None
    if model is not None:
        return _salvage_model(model, raw, [loc[1:] for loc in errors if loc and loc[0] == tag])
    close = difflib.get_close_matches(str(tag), list(by_tag), n=1, cutoff=0.0)
    model = by_tag[close[0]] if close else models[0]
    shared = {
        name
        for name, field in model.model_fields.items()
        if name != tag_key
        and all(
            name in other.model_fields and other.model_fields[name].annotation == field.annotation
            for other in models
        )
    }
    built = _salvage_model(model, {key: value for key, value in raw.items() if key in shared}, [])
    built.__dict__[tag_key] = tag  # as written: no check takes it for a type it is not
    return built


_adapters: dict[Any, TypeAdapter[Any]] = {}


def _adapter(annotation: Any) -> TypeAdapter[Any]:
    """A TypeAdapter per type, built once: a file of many entries salvages quickly."""
    try:
        adapter = _adapters.get(annotation)
    except TypeError:  # unhashable metadata
        return TypeAdapter(annotation)
    if adapter is None:
        adapter = _adapters[annotation] = TypeAdapter(annotation)
    return adapter


def load_org_config(path: Path | None) -> OrgConfig:
    if path is None:
        return OrgConfig()
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(str(path), [ConfigProblem("(file)", None, exc.strerror or str(exc))]) from exc
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        # An editor that saved Latin-1 (café as one byte 0xe9): name the byte and where it is, so it can be
        # found and fixed, instead of a traceback (check), a 500 (reload) or a logged traceback (HUP).
        raise ConfigError(str(path), [_undecodable(raw, exc)]) from exc
    return parse_org_config(text, str(path))


def _undecodable(raw: bytes, exc: UnicodeDecodeError) -> ConfigProblem:
    """The first byte that is not UTF-8, by line and column (1-based, counted in characters before it)."""
    line_start = raw.rfind(b"\n", 0, exc.start) + 1
    line = raw.count(b"\n", 0, exc.start) + 1
    column = len(raw[line_start : exc.start].decode("utf-8", errors="replace")) + 1
    message = (
        f"byte 0x{raw[exc.start]:02x} at column {column} is not UTF-8 ({exc.reason}); save the file as UTF-8"
    )
    return ConfigProblem("(file)", line, message)
