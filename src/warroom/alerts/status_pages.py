"""Third-party status pages: a vendor's outage becomes an alert.

Most vendors (GitHub, Stripe, Atlassian, Twilio, ...) publish their incidents on an Atlassian Statuspage,
whose public API lists the unresolved ones (``/api/v2/incidents/unresolved.json``). For each page in the org
file (``automation.status_pages``) one durable job polls it every ``interval``: each unresolved incident
(affecting one of the listed components, if any are listed) is a ``third-party`` alert with dedup key
``<page>:<vendor incident id>``, updated when the vendor posts an update, and resolved when the incident
leaves the list. The alerts go through the normal intake, so rules, grouping, maintenance windows and paging
apply. A page that cannot be read is logged and polled again next time; it raises no alert.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import httpx
from pydantic import Field, ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from warroom.alerts import service
from warroom.alerts.adapters import AlertEvent
from warroom.alerts.config import StatusPageConfig
from warroom.alerts.models import Alert, AlertStatus
from warroom.alerts.schemas import Lenient
from warroom.db import utcnow
from warroom.jobs import service as jobs_service
from warroom.jobs.models import Job
from warroom.jobs.service import job_handler
from warroom.orgconfig import OrgConfig

if TYPE_CHECKING:
    from warroom.context import AppContext

log = logging.getLogger("warroom.alerts.status_pages")

POLL_KIND = "alerts.status_page_poll"
SOURCE = "third-party"
MAX_RESPONSE_BYTES = 2_000_000
TIMEOUT_SECONDS = 10.0


class VendorComponent(Lenient):
    name: str


class AffectedComponent(Lenient):
    name: str


class VendorUpdate(Lenient):
    body: str = ""
    status: str | None = None
    affected_components: list[AffectedComponent] | None = None


class VendorIncident(Lenient):
    id: str = Field(min_length=1, max_length=100)
    name: str = Field(min_length=1)
    status: str
    impact: str = "none"
    shortlink: str | None = None
    components: list[VendorComponent] = Field(default_factory=list)
    incident_updates: list[VendorUpdate] = Field(default_factory=list)

    def component_names(self) -> set[str]:
        names = {component.name for component in self.components}
        for update in self.incident_updates:
            names.update(affected.name for affected in update.affected_components or [])
        return names


class UnresolvedIncidents(Lenient):
    incidents: list[VendorIncident]


def unresolved_url(page: StatusPageConfig) -> str:
    return page.url.rstrip("/") + "/api/v2/incidents/unresolved.json"


def fetch(page: StatusPageConfig) -> list[VendorIncident]:
    """The page's unresolved incidents; ValueError saying what was wrong with the answer."""
    try:
        response = httpx.get(unresolved_url(page), timeout=TIMEOUT_SECONDS, follow_redirects=True)
    except httpx.HTTPError as exc:
        raise ValueError(f"could not reach {unresolved_url(page)}: {exc}") from exc
    if response.status_code != 200:
        raise ValueError(f"{unresolved_url(page)} answered {response.status_code}")
    if len(response.content) > MAX_RESPONSE_BYTES:
        raise ValueError(f"{unresolved_url(page)} answered more than {MAX_RESPONSE_BYTES} bytes")
    try:
        return UnresolvedIncidents.model_validate_json(response.content).incidents
    except ValidationError as exc:
        raise ValueError(
            f"{unresolved_url(page)} is not a Statuspage incident list: {exc.errors()[:3]}"
        ) from exc


def _concerns_us(page: StatusPageConfig, incident: VendorIncident) -> bool:
    if not page.components:
        return True
    # Affected components may carry their group's name first ("Platform - Analytics Dashboards").
    names = incident.component_names()
    return any(
        name == wanted or name.endswith(f" - {wanted}") for name in names for wanted in page.components
    )


def event_for(page: StatusPageConfig, incident: VendorIncident) -> AlertEvent:
    impact = incident.impact if incident.impact in page.severity_map else "none"
    latest = incident.incident_updates[0].body if incident.incident_updates else ""  # newest first
    return AlertEvent(
        action="trigger",
        dedup_key=f"{page.name}:{incident.id}",
        alert_type="ThirdPartyIncident",
        summary=f"{page.name}: {incident.name}",
        severity=page.severity_map[impact],
        service=page.service,
        labels={"alertname": "ThirdPartyIncident", "status_page": page.name, "impact": incident.impact},
        annotations={"vendor_status": incident.status, "latest_update": latest[:2000]},
        links=[{"href": incident.shortlink, "text": f"{page.name} status page"}]
        if incident.shortlink
        else [],
        raw=incident.model_dump(mode="json"),
    )


def _resolve_event(page: StatusPageConfig, dedup_key: str) -> AlertEvent:
    return AlertEvent(
        action="resolve",
        dedup_key=dedup_key,
        alert_type="ThirdPartyIncident",
        summary=f"{page.name}: resolved",
        severity="info",
        service=page.service,
        labels={"alertname": "ThirdPartyIncident", "status_page": page.name},
        annotations={},
        links=[],
        raw={"status_page": page.name, "resolved": "the incident is no longer unresolved on the page"},
    )


def apply(
    session: Session, org: OrgConfig, page: StatusPageConfig, incidents: list[VendorIncident]
) -> dict[str, int]:
    """Alerts for the page's unresolved incidents; resolve those whose incident left the list."""
    ours = [incident for incident in incidents if _concerns_us(page, incident)]
    events = [event_for(page, incident) for incident in ours]
    current = {event.dedup_key for event in events}
    still_open = session.scalars(
        select(Alert.dedup_key).where(
            Alert.scope == SOURCE,
            Alert.dedup_key.startswith(f"{page.name}:", autoescape=True),
            Alert.status != AlertStatus.resolved,
        )
    ).all()
    gone = sorted(set(still_open) - current)
    events += [_resolve_event(page, dedup_key) for dedup_key in gone]
    if events:
        service.ingest(session, org=org, source=SOURCE, events=events)
    return {"incidents": len(ours), "resolved": len(gone)}


def _key_prefix(page: StatusPageConfig) -> str:
    return f"status-page:{page.name}:"


def schedule_polls(session: Session, org: OrgConfig) -> int:
    """At startup: a poll due now for each page that has none pending (the chain continues from there)."""
    return sum(
        jobs_service.start_grid_chain(
            session,
            kind=POLL_KIND,
            key_prefix=_key_prefix(page),
            payload={"name": page.name},
            every=page.interval,
        )
        for page in org.automation.status_pages
    )


@job_handler(POLL_KIND, deferred_transaction=True)
def poll(context: AppContext, session: Session, job: Job) -> dict[str, Any]:
    """Read the page (no transaction open while waiting on the vendor), apply it, schedule the next poll."""
    page = next((p for p in context.org.automation.status_pages if p.name == job.payload["name"]), None)
    if page is None:
        return {"skipped": "the page is no longer in the org file"}
    outcome: dict[str, Any]
    try:
        incidents = fetch(page)
    except ValueError as exc:
        log.warning("status page %s: %s", page.name, exc)
        outcome = {"error": str(exc)}
    else:
        outcome = apply(session, context.org, page, incidents)
    jobs_service.enqueue_on_grid(
        session,
        kind=POLL_KIND,
        key_prefix=_key_prefix(page),
        payload={"name": page.name},
        every=page.interval,
        after=utcnow(),
    )
    return outcome
