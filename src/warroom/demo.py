"""Example incidents so a fresh ``make run`` has something to look at."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from warroom.alerts import changes, maintenance
from warroom.alerts import service as alerts_service
from warroom.alerts.adapters import from_generic
from warroom.alerts.schemas import ChangeCreate, MaintenanceCreate
from warroom.db import utcnow
from warroom.errors import InvalidInput
from warroom.incidents import service
from warroom.incidents.models import Incident, IncidentStatus
from warroom.incidents.schemas import (
    Assessment,
    BusinessImpact,
    CommunicationCreate,
    IncidentCreate,
    IncidentUpdate,
    ResponderCreate,
    TimelineEntryCreate,
    UserImpact,
)
from warroom.orgconfig import OrgConfig

# Said when the org file names no services (the built-in defaults): every incident names a service, and an org
# with none refuses them all.
NEEDS_SERVICES = (
    "the demo needs an org file that names services, and this one names none: run it with the example org "
    "(--config examples/warroom.yaml, or WARROOM_CONFIG) or one naming payments, api, database and search"
)


def check_demo_org(org: OrgConfig) -> None:
    """InvalidInput, before anything is written, when the demo cannot run on this org."""
    if not org.services:
        raise InvalidInput(NEEDS_SERVICES)


def _known(org: OrgConfig, *names: str) -> list[str]:
    return [n for n in names if org.service(n)]


def seed_demo(session: Session, org: OrgConfig) -> int:
    check_demo_org(org)
    if session.scalar(select(func.count()).select_from(Incident)):
        return 0
    performer = "demo"
    _seed_changes(session, org, performer)
    checkout = service.create_incident(
        session,
        org=org,
        performer=performer,
        data=IncidentCreate(
            title="Checkout failing with 502s for EU customers",
            summary="Payments API returns 502 for a third of requests from eu-west since 14:32 UTC.",
            services=_known(org, "payments", "api"),
            commander="alice",
            assessment=Assessment(
                source="monitoring-alert",
                affected_systems=_known(org, "payments", "api"),
                symptoms=["payment_failure", "high_error_rate"],
                user_impact=UserImpact(estimated=15000, confirmed=847, regions=["eu-west"]),
                business_impact=BusinessImpact(revenue="high", reputation="medium"),
                scope="EU checkout",
                recurring=False,
            ),
        ),
    )
    service.add_responder(
        session,
        org=org,
        ref=checkout.id,
        performer=performer,
        data=ResponderCreate(name="bob", role="technical", contact="bob@acme.example"),
    )
    service.add_responder(
        session,
        org=org,
        ref=checkout.id,
        performer=performer,
        data=ResponderCreate(name="dave", role="communications"),
    )
    service.acknowledge(session, ref=checkout.id, performer="alice")
    service.log_action(
        session,
        ref=checkout.id,
        performer="bob",
        entry=TimelineEntryCreate(
            action="Rolled back payments-api to v2.41.3",
            impact="Error rate falling",
            system_state={"payments.error_rate": 0.08, "payments.version": "v2.41.3"},
        ),
    )
    service.update_incident(
        session,
        org=org,
        ref=checkout.id,
        performer="alice",
        data=IncidentUpdate(
            status=IncidentStatus.identified, note="Connection pool exhausted after the v2.42 deploy"
        ),
    )
    service.send_communication(
        session,
        org=org,
        ref=checkout.id,
        performer="dave",
        data=CommunicationCreate(
            audience="status-page",
            message="We have found the cause of failed payments in Europe and are rolling out a fix.",
        ),
    )

    login = service.create_incident(
        session,
        org=org,
        performer=performer,
        data=IncidentCreate(
            title="Slow logins after identity provider maintenance",
            severity="P2",
            services=_known(org, "auth"),
            commander="erin",
        ),
    )
    service.update_incident(
        session,
        org=org,
        ref=login.id,
        performer="erin",
        data=IncidentUpdate(status=IncidentStatus.resolved, note="Cache warmed up"),
    )

    service.create_incident(
        session,
        org=org,
        performer=performer,
        data=IncidentCreate(
            title="Typo on the pricing page footer",
            severity=org.severity_ids[-1],
            services=_known(org, "frontend"),
        ),
    )

    # Planned work tomorrow night: alerts from search during it will be recorded but page nobody.
    search = _known(org, "search")
    if search:
        tomorrow_night = (utcnow() + timedelta(days=1)).replace(hour=22, minute=0, second=0, microsecond=0)
        maintenance.create_window(
            session,
            org=org,
            data=MaintenanceCreate(
                reason="Rebuild the search index on the new cluster",
                services=search,
                starts_at=tomorrow_night,
                duration=timedelta(hours=2),
            ),
            performer="erin",
        )
    _seed_alerts(session, org)
    return 3


def _seed_changes(session: Session, org: OrgConfig, performer: str) -> None:
    """Two changes just before the checkout incident, so its timeline answers "what changed?"."""
    now = utcnow()
    seeded = [
        ("Deployed payments 3.1.0 (new PSP client)", "payments", "github-actions", timedelta(minutes=25)),
        ("Rotated the PSP API credentials", None, "vault", timedelta(minutes=70)),
    ]
    for summary, service_name, source, ago in seeded:
        data = ChangeCreate(
            summary=summary,
            service=service_name if service_name and _known(org, service_name) else None,
            source=source,
            happened_at=now - ago,
        )
        changes.record(session, org=org, data=data, recorded_by=performer)


def _seed_alerts(session: Session, org: OrgConfig) -> None:
    """A few warnings no rule pages for, some repeating, so ``alerts list`` and ``alerts noise`` show
    something. They go through the real intake, as a script with a plain JSON integration would send them."""
    database = _known(org, "database")
    search = _known(org, "search")
    # (labels, service, severity, one summary per notification: each repeat is a change, so it counts)
    notifications = [
        (
            {"alertname": "DiskSpaceLow", "instance": "db-1"},
            database,
            "warning",
            [f"Disk on db-1 is {percent}% full" for percent in range(81, 93)],
        ),
        (
            {"alertname": "SearchLatencyHigh", "instance": "search-2"},
            search,
            "warning",
            [f"p99 search latency {ms} ms" for ms in (850, 1200, 990, 1430)],
        ),
        (
            {"alertname": "CertificateExpiring"},
            [],
            "info",
            ["api.example.com certificate expires in 14 days"],
        ),
    ]
    for labels, services, severity, summaries in notifications:
        for summary in summaries:
            alert: dict[str, object] = {
                "summary": summary,
                "severity": severity,
                "labels": labels,
                "dedup_key": f"demo:{labels['alertname']}",
            }
            if services:
                alert["service"] = services[0]
            ingested = alerts_service.ingest(session, org=org, source="generic", events=from_generic(alert))
        if labels["alertname"] == "DiskSpaceLow":
            alerts_service.add_note(
                session,
                ref=ingested.alerts[0].id or 0,
                body="Known: the nightly vacuum fills it until it ends at 04:00. Tracked in OPS-812.",
                author="erin",
            )
