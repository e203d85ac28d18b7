"""Alert intake (dedup, then automation), reads, promotion, and reports from people."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Literal

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from warroom.alerts import automation
from warroom.alerts.adapters import AlertEvent
from warroom.alerts.models import Alert, AlertStatus
from warroom.alerts.schemas import (
    AlertDetail,
    AlertPage,
    AlertRead,
    CustomerReport,
    IngestOutcome,
    IngestResult,
    InternalReport,
    PromoteRequest,
)
from warroom.auth.integrations import IntegrationIdentity
from warroom.db import utcnow
from warroom.errors import Conflict, InvalidInput, NotFound
from warroom.incidents import service as incident_service
from warroom.incidents.models import Incident
from warroom.orgconfig import OrgConfig
from warroom.severity import service as severity_service

Outcome = Literal["created", "updated", "unchanged", "acknowledged", "resolved", "ignored"]
# Keeps each IN (...) list well under every database's parameter limit.
_LOOKUP_CHUNK = 500


def ingest(
    session: Session,
    *,
    org: OrgConfig,
    source: str,
    events: Sequence[AlertEvent],
    integration: IntegrationIdentity | None = None,
) -> IngestResult:
    """Apply a batch of events in the caller's transaction: all of them or, on any error, none.

    One lookup finds the open alerts for every dedup key in the batch; new alerts are inserted together.
    """
    scope = f"i:{integration.id}" if integration is not None else source
    keys = list(dict.fromkeys(event.dedup_key for event in events))
    open_alerts: dict[str, Alert] = {}
    for start in range(0, len(keys), _LOOKUP_CHUNK):
        chunk = keys[start : start + _LOOKUP_CHUNK]
        statement = select(Alert).where(Alert.scope == scope, Alert.open_dedup_key.in_(chunk))
        # Row locks on PostgreSQL so concurrent deliveries count every occurrence (SQLite: BEGIN IMMEDIATE).
        for row in session.scalars(statement.with_for_update()):
            open_alerts[row.dedup_key] = row
    now = utcnow()
    applied: list[tuple[Outcome, Alert | None, AlertEvent]] = []
    for event in events:
        alert: Alert | None = open_alerts.get(event.dedup_key)
        outcome: Outcome
        if event.action == "trigger":
            if alert is None:
                alert = Alert(
                    source=source,
                    integration_id=integration.id if integration is not None else None,
                    scope=scope,
                    dedup_key=event.dedup_key,
                    open_dedup_key=event.dedup_key,
                    alert_type=event.alert_type,
                    status=AlertStatus.firing,
                    summary=event.summary,
                    severity=event.severity,
                    service=event.service,
                    labels=event.labels,
                    annotations=event.annotations,
                    links=event.links,
                    first_seen_at=now,
                    last_seen_at=now,
                    occurrences=1,
                    raw=event.raw,
                    last_raw=None,
                    event_hash=event.event_hash,
                    rules=None,
                    handler_errors=[],
                )
                session.add(alert)
                open_alerts[event.dedup_key] = alert
                outcome = "created"
            elif alert.event_hash == event.event_hash:
                outcome = "unchanged"
            else:
                alert.occurrences += 1
                alert.last_seen_at = now
                alert.last_raw = event.raw
                alert.event_hash = event.event_hash
                alert.summary = event.summary
                alert.severity = event.severity
                alert.annotations = event.annotations
                if event.links:
                    alert.links = event.links
                outcome = "updated"
        elif alert is None:
            # PagerDuty's rule: acknowledge or resolve with no open alert is dropped.
            outcome = "ignored"
        elif event.action == "acknowledge":
            if alert.status == AlertStatus.firing:
                alert.status = AlertStatus.acknowledged
                alert.acknowledged_at = now
                alert.last_seen_at = now
                alert.event_hash = event.event_hash
                outcome = "acknowledged"
            else:
                outcome = "unchanged"
        else:
            alert.status = AlertStatus.resolved
            alert.resolved_at = now
            alert.last_seen_at = now
            alert.open_dedup_key = None
            alert.last_raw = event.raw
            alert.event_hash = event.event_hash
            del open_alerts[event.dedup_key]
            outcome = "resolved"
        applied.append((outcome, alert, event))
    session.flush()

    needs_work = automation.needs_work(org)
    for outcome, target, _ in applied:
        if target is None:
            continue
        alert = target
        if outcome == "created" and needs_work:
            automation.on_created(session, org, alert)
        elif outcome == "resolved" and (needs_work or alert.incident_id is not None):
            automation.on_resolved(session, org, alert)
        elif outcome == "acknowledged" and (needs_work or alert.incident_id is not None):
            automation.on_acknowledged(session, org, alert)
    session.flush()
    return IngestResult(
        accepted=len(events),
        alerts=[
            IngestOutcome(
                id=alert.id if alert is not None else None,
                dedup_key=event.dedup_key,
                status=alert.status if alert is not None else None,
                outcome=outcome,
                incident=f"INC-{alert.incident_id}" if alert is not None and alert.incident_id else None,
            )
            for outcome, alert, event in applied
        ],
    )


# --- reads -------------------------------------------------------------------------------------------


def to_read(alert: Alert) -> AlertRead:
    return AlertRead(
        id=alert.id,
        ref=alert.ref,
        source=alert.source,
        integration_id=alert.integration_id,
        dedup_key=alert.dedup_key,
        alert_type=alert.alert_type,
        status=alert.status,
        summary=alert.summary,
        severity=alert.severity,
        service=alert.service,
        labels=alert.labels,
        annotations=alert.annotations,
        links=alert.links,
        first_seen_at=alert.first_seen_at,
        last_seen_at=alert.last_seen_at,
        acknowledged_at=alert.acknowledged_at,
        resolved_at=alert.resolved_at,
        occurrences=alert.occurrences,
        incident=f"INC-{alert.incident_id}" if alert.incident_id else None,
        rules=alert.rules or [],
        unrouted=alert.incident_id is None and not alert.rules,
    )


def to_detail(alert: Alert) -> AlertDetail:
    return AlertDetail(
        **to_read(alert).model_dump(),
        raw=alert.raw,
        last_raw=alert.last_raw,
        handler_errors=alert.handler_errors,
    )


def parse_alert_ref(ref: str | int) -> int:
    text = str(ref).strip().upper().removeprefix("ALR-")
    if not text.isdigit() or len(text) > 12:
        raise NotFound(f"no alert {ref!r}: ids look like 12 or ALR-12")
    return int(text)


def get_alert(session: Session, ref: str | int, *, for_update: bool = False) -> Alert:
    statement = select(Alert).where(Alert.id == parse_alert_ref(ref))
    if for_update:
        statement = statement.with_for_update()
    alert = session.scalar(statement)
    if alert is None:
        raise NotFound(f"no alert {ref}")
    return alert


def list_alerts(
    session: Session,
    *,
    status: Sequence[AlertStatus] = (),
    firing: bool = False,
    unrouted: bool = False,
    source: str | None = None,
    incident: str | None = None,
    limit: int = 50,
    offset: int = 0,
) -> AlertPage:
    statement = select(Alert)
    if status:
        statement = statement.where(Alert.status.in_(list(status)))
    if firing:
        statement = statement.where(Alert.status != AlertStatus.resolved)
    if unrouted:
        statement = statement.where(Alert.incident_id.is_(None), Alert.rules.is_(None))
    if source:
        statement = statement.where(Alert.source == source)
    if incident:
        statement = statement.where(Alert.incident_id == incident_service.parse_ref(incident))
    total = session.scalar(select(func.count()).select_from(statement.subquery())) or 0
    rows = session.scalars(statement.order_by(Alert.id.desc()).limit(limit).offset(offset))
    items = [to_read(row) for row in rows]
    return AlertPage(items=items, total=total, limit=limit, offset=offset)


# --- promotion ---------------------------------------------------------------------------------------


def promote(
    session: Session, *, org: OrgConfig, ref: str | int, data: PromoteRequest, performer: str
) -> tuple[Alert, Incident]:
    """Open an incident from an alert that no rule routed (or any alert not yet on an incident)."""
    alert = get_alert(session, ref, for_update=True)
    if alert.incident_id is not None:
        raise Conflict(
            f"{alert.ref} is already on INC-{alert.incident_id}",
            {"field": "alert", "incident": alert.incident_id},
        )
    if data.severity is not None:
        severity_service.validate_severity(org, data.severity)
    fields = automation.incident_fields(org, alert, title=data.title, severity=data.severity)
    incident = incident_service.create_incident(
        session, org=org, data=fields, performer=performer, kind_note=f"promoted from alert {alert.ref}"
    )
    automation.attach(session, incident, alert, performer=performer)
    session.flush()
    return alert, incident


# --- reports from people -----------------------------------------------------------------------------


def _report_service(org: OrgConfig, name: str | None) -> str | None:
    if name is None:
        return None
    if org.service(name) is None:
        known = [s.name for s in org.services]
        raise InvalidInput(
            f"unknown service {name!r}; allowed: {', '.join(known)}", {"field": "service", "allowed": known}
        )
    return name


def customer_report(session: Session, *, org: OrgConfig, report: CustomerReport, client: str) -> Alert:
    """A customer's report becomes an alert (source customer-report), routed by the same rules."""
    feature = report.affected_feature.strip()
    first_line = report.description.strip().splitlines()[0] if report.description.strip() else feature
    event = AlertEvent(
        action="trigger",
        dedup_key=uuid.uuid4().hex,  # every report is its own alert
        alert_type="customer-report",
        summary=f"Customer report ({feature}): {first_line}"[:1024],
        severity=org.automation.reports.severity,
        service=feature if org.service(feature) is not None else None,
        labels={"feature": feature},
        annotations={"contact": report.contact, "description": report.description, "client": client},
        links=[],
        raw=report.model_dump(),
    )
    result = ingest(session, org=org, source="customer-report", events=[event])
    return get_alert(session, result.alerts[0].id or 0)


def internal_report(session: Session, *, org: OrgConfig, report: InternalReport, reporter: str) -> Alert:
    service = _report_service(org, report.service)
    first_line = report.description.strip().splitlines()[0]
    labels = dict(report.labels)
    if service:
        labels.setdefault("service", service)
    event = AlertEvent(
        action="trigger",
        dedup_key=uuid.uuid4().hex,
        alert_type="internal-discovery",
        summary=first_line[:1024],
        severity=report.severity,
        service=service,
        labels=labels,
        annotations={"description": report.description, "reporter": reporter},
        links=[],
        raw={**report.model_dump(), "reporter": reporter},
    )
    result = ingest(session, org=org, source="internal-discovery", events=[event])
    return get_alert(session, result.alerts[0].id or 0)
