"""The severity matrix and severity suggestion from an assessment."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from warroom.durations import format_duration
from warroom.errors import InvalidInput
from warroom.incidents.schemas import Assessment
from warroom.orgconfig import OrgConfig, SuggestionCondition
from warroom.severity.schemas import SeverityRead, SuggestResponse

_IMPACT_ORDER = ["none", "low", "medium", "high"]

# Answers to "any immediate safety concern?" that mean there is none. The field describes the concern, but
# people answer the question: read as a concern, a plain "no" opened a P0 and paged everyone. Compared
# trimmed, in any case, without a closing "." or "!"; anything else is taken as a concern.
NO_SAFETY_CONCERN = frozenset(
    {
        "no",
        "none",
        "n/a",
        "na",
        "false",
        "nothing",
        "none known",
        "not applicable",
        "no concern",
        "no concerns",
        "no safety concern",
        "no safety concerns",
    }
)


def list_severities(org: OrgConfig) -> list[SeverityRead]:
    return [
        SeverityRead(
            id=level.id,
            name=level.name,
            rank=rank,
            definition=level.definition,
            examples=level.examples,
            response_target=level.response_target_text,
            response_target_seconds=int(level.response_target.total_seconds())
            if level.response_target
            else None,
            escalation=level.escalation,
            communication=level.communication,
            page=level.page,
            status_page=level.status_page,
            customer_notification=level.customer_notification,
            update_every=format_duration(level.update_every) if level.update_every else None,
        )
        for rank, level in enumerate(org.severities)
    ]


def validate_severity(org: OrgConfig, severity_id: str) -> str:
    if org.severity(severity_id) is None:
        raise InvalidInput(
            f"unknown severity {severity_id!r}; allowed: {', '.join(org.severity_ids)}",
            {"field": "severity", "allowed": org.severity_ids},
        )
    return severity_id


def response_due_at(
    org: OrgConfig, severity_id: str, opened_at: datetime, services: Iterable[str] = ()
) -> datetime | None:
    """When the incident must be acknowledged by its level's response-time target ("next business day" by
    the hours of the first of its ``services`` whose owner team has its own, else the org's)."""
    level = org.severity(severity_id)
    if level is None:
        return None
    if level.response_target is not None:
        return opened_at + level.response_target
    hours, _ = org.business_hours_for(services)
    return hours.next_business_day_start(opened_at)


def has_safety_concern(answer: str | bool | None) -> bool:
    """Whether an assessment's ``safety_concerns`` answer names a concern: ``true`` or a text that is not
    blank and not one of the plain noes (``NO_SAFETY_CONCERN``)."""
    if answer is None or isinstance(answer, bool):
        return bool(answer)
    said = " ".join(answer.split()).casefold().rstrip(".!")
    return bool(said) and said not in NO_SAFETY_CONCERN


def _at_least(actual: str, threshold: str) -> bool:
    return _IMPACT_ORDER.index(actual) >= _IMPACT_ORDER.index(threshold)


def _matches(
    condition: SuggestionCondition, assessment: Assessment, org: OrgConfig, services: list[str]
) -> bool:
    """Every condition that is set must hold; a rule with no condition set never matches."""
    checks: list[bool] = []
    if condition.symptoms_any:
        checks.append(bool(set(condition.symptoms_any) & set(assessment.symptoms)))
    if condition.min_users_affected is not None:
        users = max(assessment.user_impact.confirmed or 0, assessment.user_impact.estimated or 0)
        checks.append(users >= condition.min_users_affected)
    business = assessment.business_impact
    for wanted, actual in (
        (condition.revenue_impact_at_least, business.revenue if business else None),
        (condition.reputation_impact_at_least, business.reputation if business else None),
        (condition.compliance_impact_at_least, business.compliance if business else None),
    ):
        if wanted is not None:
            # Unknown (nobody judged it yet) meets no threshold, as "none" would not.
            checks.append(actual is not None and _at_least(actual, wanted))
    configured = [org.service(name) for name in [*services, *assessment.affected_systems]]
    known = [service for service in configured if service is not None]
    if condition.customer_facing is not None:
        checks.append(any(s.customer_facing for s in known) == condition.customer_facing)
    if condition.max_service_tier is not None:
        checks.append(any(s.tier <= condition.max_service_tier for s in known))
    if condition.safety_concern is not None:
        checks.append(has_safety_concern(assessment.safety_concerns) == condition.safety_concern)
    return bool(checks) and all(checks)


def suggest_severity(
    org: OrgConfig, assessment: Assessment, services: list[str] | None = None
) -> SuggestResponse:
    """The most severe level any rule matches, with the reasons; the default level if none does. Services
    must be the org file's (when it lists any), as for the incident this suggests a level for."""
    if services and org.services:
        org.check_services(services)
    matched: dict[str, list[str]] = {}
    for rule in org.severity_rules:
        if _matches(rule.when, assessment, org, services or []):
            matched.setdefault(rule.severity, []).append(rule.reason)
    if matched:
        chosen = min(matched, key=org.severity_rank)
        reasons = matched[chosen]
    else:
        chosen = org.default_severity
        reasons = ["no rule matched; using the default level"]
    level = org.severity(chosen)
    assert level is not None  # rules and the default are checked against the matrix at load time
    ordered = {key: matched[key] for key in sorted(matched, key=org.severity_rank)}
    return SuggestResponse(severity=chosen, name=level.name, reasons=reasons, matched=ordered)
