"""Reports from people: the alert each one becomes, for intake and for ``config test-alert`` alike."""

from __future__ import annotations

import uuid
from typing import Any

from pydantic import TypeAdapter

from warroom.alerts import adapters
from warroom.alerts.adapters import AlertEvent
from warroom.alerts.schemas import CustomerReport, InternalReport
from warroom.errors import InvalidInput
from warroom.fields import one_line
from warroom.orgconfig import OrgConfig

CUSTOMER = "customer-report"
INTERNAL = "internal-discovery"
REPORT_SOURCES = (CUSTOMER, INTERNAL)
# Every source a dry run (``config test-alert``, ``POST /api/v1/alerts/preview``) reads, besides "auto".
DRY_RUN_SOURCES = (*adapters.PAYLOAD_SOURCES, *REPORT_SOURCES)
HEARTBEAT_NOT_READ = (
    "a heartbeat ping is not read by a dry run: a ping holds no alert to route (a missed or failed heartbeat "
    "raises its own alert: source heartbeat, label alertname HeartbeatMissed or HeartbeatFailed, label "
    "heartbeat its name)"
)
# Who a dry run's report is from: no one, and nothing about it is stored.
DRY_RUN = "(dry run)"

_CUSTOMER = TypeAdapter(CustomerReport)
_INTERNAL = TypeAdapter(InternalReport)


def _first_line(description: str) -> str:
    """A report's first line of text, made one line (empty when it holds nothing visible)."""
    return one_line(description.strip().splitlines()[0])


# Dropped from the end of a feature's name: "checkout." and "checkout!" are "checkout".
_TRAILING_PUNCTUATION = ".,;:!?"


def service_named(org: OrgConfig, name: str) -> str | None:
    """The org's service ``name`` names, in the org's own spelling: an exact match, else one that differs only
    in case (``API`` is ``api``); None when it names none."""
    exact = org.service(name)
    if exact is not None:
        return exact.name
    folded = name.casefold()
    return next((service.name for service in org.services if service.name.casefold() == folded), None)


def feature_of(org: OrgConfig, affected_feature: str) -> tuple[str, str | None]:
    """A customer's ``affected_feature`` as the ``feature`` label, and the service it names (or None). The
    label groups incidents, so spellings of one feature must be one value (``Checkout``, ``CHECKOUT``,
    ``checkout.``): runs of whitespace become one space, trailing punctuation goes, and the name is
    case-folded, unless it names a service, which keeps the service's own spelling."""
    collapsed = " ".join(affected_feature.split())
    trimmed = collapsed.rstrip(_TRAILING_PUNCTUATION).rstrip() or collapsed  # "?" alone stays itself
    service = service_named(org, trimmed)
    return (service or trimmed.casefold()), service


def customer_report_event(org: OrgConfig, report: CustomerReport, client: str) -> AlertEvent:
    """A customer's report: every report is its own alert, of the org file's report severity. A feature that
    names a service makes the alert that service's (its rules and escalation policy apply)."""
    feature, service = feature_of(org, report.affected_feature)
    first_line = _first_line(report.description) or feature
    return AlertEvent(
        action="trigger",
        dedup_key=uuid.uuid4().hex,
        alert_type=CUSTOMER,
        summary=f"Customer report ({feature}): {first_line}"[:1024],
        severity=org.automation.reports.severity,
        service=service,
        labels={"feature": feature},
        annotations={"contact": report.contact, "description": report.description, "client": client},
        links=[],
        raw=report.model_dump(),
    )


def internal_report_event(org: OrgConfig, report: InternalReport, reporter: str) -> AlertEvent:
    """A team member's discovery: its service must be one of the org file's."""
    if report.service is not None:
        org.check_services([report.service], "service")
    labels = dict(report.labels)
    if any(not name.strip() for name in labels):
        raise InvalidInput("labels: a label name must not be empty", {"field": "labels"})
    given = labels.get("service")
    # The alert's service and its service label would send rules two ways (match.service reads one,
    # match.labels and group_by the other).
    if report.service and given is not None and given.strip().casefold() != report.service.casefold():
        raise InvalidInput(
            f"labels.service: {given!r} is not the report's service {report.service!r}; leave the label "
            "out (the service sets it) or give the same",
            {"field": "labels.service"},
        )
    if report.service:
        labels["service"] = report.service
    return AlertEvent(
        action="trigger",
        dedup_key=uuid.uuid4().hex,
        alert_type=INTERNAL,
        summary=(_first_line(report.description) or "Internal report")[:1024],
        severity=report.severity,
        service=report.service,
        labels=labels,
        annotations={"description": report.description, "reporter": reporter},
        links=[],
        raw={**report.model_dump(), "reporter": reporter},
    )


def delivery_events(
    org: OrgConfig,
    body: bytes,
    source: str = "auto",
    webhook_format: str | None = None,
    content_type: str | None = None,
) -> tuple[str, list[AlertEvent]]:
    """``adapters.delivery_events``, and reports too: a body of the report form's fields
    (``affected_feature``) is told as a customer's report, and ``source`` may name either kind of report."""
    check_source(source)
    if webhook_format is None and source in ("auto", *REPORT_SOURCES):
        data: Any = adapters.parse_json(body) if source != "auto" or b"affected_feature" in body else None
        if source == CUSTOMER or (isinstance(data, dict) and "affected_feature" in data):
            report = adapters.validate_payload(_CUSTOMER, data)
            return CUSTOMER, [customer_report_event(org, report, DRY_RUN)]
        if source == INTERNAL:
            return INTERNAL, [internal_report_event(org, adapters.validate_payload(_INTERNAL, data), DRY_RUN)]
    return adapters.delivery_events(body, source, org.automation, webhook_format, content_type)


def check_source(source: str) -> None:
    """InvalidPayload unless a dry run reads deliveries of ``source`` ("auto": told by the body), naming every
    source it does read; a heartbeat's is said to be no alert."""
    if source == "heartbeat":
        raise adapters.InvalidPayload(HEARTBEAT_NOT_READ, [])
    if source != "auto" and source not in DRY_RUN_SOURCES:
        raise adapters.InvalidPayload(f"unknown source {source!r}; one of {', '.join(DRY_RUN_SOURCES)}", [])
