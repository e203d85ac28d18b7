"""Third-party status pages: a vendor's outage becomes an alert.

Most vendors (GitHub, Stripe, Atlassian, Twilio, ...) publish their incidents on an Atlassian Statuspage,
whose public API lists the unresolved ones (``/api/v2/incidents/unresolved.json``) and the maintenances in
progress (``/api/v2/scheduled-maintenances/active.json``). For each page in the org file
(``automation.status_pages``) one durable job polls it every ``interval``: each unresolved incident
(affecting one of the listed components, if any are listed) is a ``third-party`` alert with dedup key
``<page>:<vendor incident id>``, updated when the vendor posts an update, and resolved when the incident
leaves the list. Each maintenance in progress is one too (``<page>:maintenance:<id>``, of the page's
``maintenance_severity``), so a responder sees that the vendor is doing planned work. The alerts go through
the normal intake, so rules, grouping, maintenance windows and paging apply. An update from the vendor brings
the alert's severity, labels (``impact``) and annotations up to date. A page that cannot be read is logged and
polled again next time; it raises no alert and resolves none. The two lists are read independently: when only
one can be read, its alerts follow it and the other list's alerts stay as they are (the poll's result and the
log say which list was not read). A poll reads both at once within one deadline (``DEADLINE_SECONDS``: the
host lookup, connecting, the answers in full) and no more than ``MAX_RESPONSE_BYTES`` of each; past either,
the list is unreadable. Polls share one peer (``POLL_PEER``), so slow vendors hold at most the worker's
per-peer share of its network slots and pages to people still get one. A page taken out of the org file (or
renamed) is polled no more: the reload resolves its open alerts (``resolve_removed_pages``). Each start and
reload records the file's pages in the database (``record_pages``), and a poll checks that record as it
writes: a process that has not read the newer file yet (a worker between a reload and its next look at
``config_reloads``, one that ``kill -HUP`` did not reach) raises no alert for a page taken out, so it cannot
reopen the alerts that reload resolved.
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

import anyio
import httpx
from pydantic import Field, ValidationError
from sqlalchemy import select
from sqlalchemy import update as sql_update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from warroom.alerts import service
from warroom.alerts.adapters import AlertEvent
from warroom.alerts.config import StatusPageConfig
from warroom.alerts.models import Alert, AlertStatus, StatusPage
from warroom.alerts.schemas import Lenient
from warroom.db import utcnow
from warroom.jobs import service as jobs_service
from warroom.jobs.models import Job
from warroom.jobs.service import job_handler
from warroom.notify.deadline import why_not_connected
from warroom.orgconfig import OrgConfig

if TYPE_CHECKING:
    from warroom.context import AppContext

log = logging.getLogger("warroom.alerts.status_pages")

POLL_KIND = "alerts.status_page_poll"
SOURCE = "third-party"
MAX_RESPONSE_BYTES = 2_000_000
# A poll reads the page's lists within this, together: looking the host up, connecting, the answers in full.
# A timeout per socket wait bounds nothing: a page that trickles a byte a second held a network slot, and the
# pages due behind it, for minutes.
DEADLINE_SECONDS = 10.0
# Every poll names this peer, so the worker runs only its per-peer share of network slots of them at once
# (``worker_peer_limit``, half by default): however many vendors are slow, a page to a person gets a slot.
POLL_PEER = "status-pages"
# Redirects followed within the page's own scheme, host and port; never to another host.
MAX_REDIRECTS = 5


_Listing = TypeVar("_Listing", bound=Lenient)


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


class VendorMaintenance(VendorIncident):
    scheduled_until: str | None = None


class UnresolvedIncidents(Lenient):
    incidents: list[VendorIncident]


class ActiveMaintenances(Lenient):
    scheduled_maintenances: list[VendorMaintenance]


@dataclass
class VendorStatus:
    """What a poll read. A list that could not be read is None (its alerts stay as they are), and why is in
    ``unread``."""

    incidents: list[VendorIncident] | None
    maintenances: list[VendorMaintenance] | None = field(default_factory=list)
    unread: list[str] = field(default_factory=list)


def unresolved_url(page: StatusPageConfig) -> str:
    return page.url.rstrip("/") + "/api/v2/incidents/unresolved.json"


def maintenances_url(page: StatusPageConfig) -> str:
    return page.url.rstrip("/") + "/api/v2/scheduled-maintenances/active.json"


class _NoWaitExecutor(ThreadPoolExecutor):
    """The poll's host lookups: the deadline gives up on one that hangs (a resolver that does not answer), and
    the poll must not then wait for it when it ends; its thread finishes by itself."""

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        super().shutdown(wait=False, cancel_futures=cancel_futures)


def _origin(url: httpx.URL) -> tuple[str, str, int | None]:
    port = url.port if url.port is not None else {"http": 80, "https": 443}.get(url.scheme)
    return url.scheme, url.host, port


async def _body(client: httpx.AsyncClient, url: str) -> bytes:
    """The answer's body, read no further than ``MAX_RESPONSE_BYTES``. A redirect is followed (at most
    ``MAX_REDIRECTS``) only to the page's own scheme, host and port: one elsewhere (an internal address, a
    cloud metadata service) is refused unread."""
    target = httpx.URL(url)
    for _ in range(MAX_REDIRECTS + 1):
        async with client.stream("GET", target) as response:
            if response.is_redirect:
                try:
                    location = target.join(response.headers.get("location", ""))
                except httpx.InvalidURL:
                    raise ValueError(f"{url} redirected to an address that is not a URL") from None
                if _origin(location) != _origin(target):
                    raise ValueError(
                        f"{url} redirected to another host ({location.scheme}://{location.netloc.decode()}), "
                        "which is not followed"
                    )
                target = location
                continue
            if response.status_code != 200:
                raise ValueError(f"{url} answered {response.status_code}")
            body = bytearray()
            async for chunk in response.aiter_bytes():
                body += chunk
                if len(body) > MAX_RESPONSE_BYTES:
                    raise ValueError(f"{url} answered more than {MAX_RESPONSE_BYTES} bytes")
            return bytes(body)
    raise ValueError(f"{url} redirected more than {MAX_REDIRECTS} times")


def _get_all(urls: list[str]) -> list[bytes | ValueError]:
    """Each URL's body, all read at once within ``DEADLINE_SECONDS``; in place of one that could not be read,
    a ValueError saying why."""
    seconds = DEADLINE_SECONDS
    late = [ValueError(f"{url} did not answer in full within {seconds:g}s") for url in urls]
    read: list[bytes | ValueError] = list(late)

    async def get(client: httpx.AsyncClient, index: int, url: str, ends: float) -> None:
        try:
            with anyio.fail_after(max(ends - anyio.current_time(), 0)):
                read[index] = await _body(client, url)
        except (TimeoutError, httpx.TimeoutException):
            read[index] = late[index]
        except httpx.ConnectError as exc:
            read[index] = ValueError(f"could not reach {url}: {why_not_connected(exc) or exc}")
        except httpx.HTTPError as exc:
            read[index] = ValueError(f"could not reach {url}: {exc}")
        except ValueError as exc:
            read[index] = exc

    async def get_all() -> None:
        asyncio.get_running_loop().set_default_executor(_NoWaitExecutor(thread_name_prefix="status-page-dns"))
        ends = anyio.current_time() + seconds
        with anyio.move_on_after(seconds + 1):  # closing the connections too
            async with (
                httpx.AsyncClient(timeout=seconds, follow_redirects=False) as client,
                anyio.create_task_group() as group,
            ):
                for index, url in enumerate(urls):
                    group.start_soon(get, client, index, url, ends)

    anyio.run(get_all)
    return read


def _parsed(url: str, body: bytes | ValueError, model: type[_Listing], what: str) -> _Listing:
    """One list from the page; ValueError saying what was wrong with the answer."""
    if isinstance(body, ValueError):
        raise body
    try:
        return model.model_validate_json(body)
    except ValidationError as exc:
        # Where and what, never the values: the answer is the peer's, and may hold anything.
        problems = "; ".join(
            f"{'.'.join(str(part) for part in error['loc']) or 'the answer'}: {error['type']}"
            for error in exc.errors(include_url=False, include_input=False)[:3]
        )
        raise ValueError(f"{url} is not a Statuspage {what} ({problems})") from None


def fetch(page: StatusPageConfig) -> VendorStatus:
    """The page's unresolved incidents and, unless the page ignores them, its maintenances in progress, read
    together within ``DEADLINE_SECONDS``. Each list is read on its own: one that fails leaves the other
    usable. ValueError when none could be read."""
    status = VendorStatus(incidents=None, maintenances=None)
    urls = [unresolved_url(page)]
    if page.maintenance_severity is not None:
        urls.append(maintenances_url(page))
    bodies = _get_all(urls)
    try:
        status.incidents = _parsed(urls[0], bodies[0], UnresolvedIncidents, "incident list").incidents
    except ValueError as exc:
        status.unread.append(str(exc))
    if page.maintenance_severity is None:
        status.maintenances = []  # ignored: any maintenance alerts left from before resolve
    else:
        try:
            listed = _parsed(urls[1], bodies[1], ActiveMaintenances, "maintenance list")
            status.maintenances = listed.scheduled_maintenances
        except ValueError as exc:
            status.unread.append(str(exc))
    if status.incidents is None and (status.maintenances is None or page.maintenance_severity is None):
        raise ValueError("; ".join(status.unread))
    return status


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
        # The impact and the vendor's status are the incident's now, not as first seen.
        latest_labels=True,
        latest_annotations=True,
    )


def maintenance_event_for(page: StatusPageConfig, maintenance: VendorMaintenance) -> AlertEvent:
    assert page.maintenance_severity is not None
    latest = maintenance.incident_updates[0].body if maintenance.incident_updates else ""
    return AlertEvent(
        action="trigger",
        dedup_key=f"{page.name}:maintenance:{maintenance.id}",
        alert_type="ThirdPartyMaintenance",
        summary=f"{page.name}: maintenance in progress: {maintenance.name}",
        severity=page.maintenance_severity,
        service=page.service,
        labels={"alertname": "ThirdPartyMaintenance", "status_page": page.name},
        annotations={
            "vendor_status": maintenance.status,
            "scheduled_until": maintenance.scheduled_until or "",
            "latest_update": latest[:2000],
        },
        links=[{"href": maintenance.shortlink, "text": f"{page.name} status page"}]
        if maintenance.shortlink
        else [],
        raw=maintenance.model_dump(mode="json"),
        latest_annotations=True,  # its status, end and latest update as the vendor has them now
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
        raw={"status_page": page.name, "resolved": "no longer unresolved (or in progress) on the page"},
    )


def apply(session: Session, org: OrgConfig, page: StatusPageConfig, status: VendorStatus) -> dict[str, Any]:
    """Alerts for the page's unresolved incidents and maintenances in progress; resolve those whose incident
    or maintenance left its list. A list that was not read (None) changes none of its alerts."""
    ours = [incident for incident in status.incidents or [] if _concerns_us(page, incident)]
    planned = [maintenance for maintenance in status.maintenances or [] if _concerns_us(page, maintenance)]
    events = [event_for(page, incident) for incident in ours]
    events += [maintenance_event_for(page, maintenance) for maintenance in planned]
    current = {event.dedup_key for event in events}
    still_open = session.scalars(
        select(Alert.dedup_key).where(
            Alert.scope == SOURCE,
            Alert.dedup_key.startswith(f"{page.name}:", autoescape=True),
            Alert.status != AlertStatus.resolved,
        )
    ).all()
    maintenance_prefix = f"{page.name}:maintenance:"
    gone = sorted(
        key
        for key in set(still_open) - current
        if (status.maintenances if key.startswith(maintenance_prefix) else status.incidents) is not None
    )
    events += [_resolve_event(page, dedup_key) for dedup_key in gone]
    if events:
        service.ingest(session, org=org, source=SOURCE, events=events)
    outcome: dict[str, Any] = {
        "incidents": len(ours) if status.incidents is not None else "not read",
        "maintenances": len(planned) if status.maintenances is not None else "not read",
        "resolved": len(gone),
    }
    if status.unread:
        outcome["unread"] = status.unread
    return outcome


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
            peer=POLL_PEER,
        )
        for page in org.automation.status_pages
    )


def record_pages(session: Session, org: OrgConfig) -> None:
    """At a start or a reload, first thing in its transaction: record which pages ``org`` has (a row for each
    page, ``removed_at`` set on those it no longer has), for the polls of processes that have not read it yet
    (``in_recorded_file``). The last file read, in any process, is what counts.

    A page taken out has its row locked before its open alerts are read (``resolve_removed_pages``), and a
    poll locks that row before it writes: a poll writing at that moment goes first, and the reload then
    resolves what it wrote, or waits and finds the page taken out."""
    now = utcnow()
    names = sorted(page.name for page in org.automation.status_pages)
    session.execute(
        sql_update(StatusPage)
        .where(StatusPage.name.not_in(names), StatusPage.removed_at.is_(None))
        .values(removed_at=now)
        .execution_options(synchronize_session=False)
    )
    session.execute(
        sql_update(StatusPage)
        .where(StatusPage.name.in_(names), StatusPage.removed_at.is_not(None))
        .values(removed_at=None)
        .execution_options(synchronize_session=False)
    )
    recorded = set(session.scalars(select(StatusPage.name).where(StatusPage.name.in_(names))))
    for name in names:
        if name in recorded:
            continue
        try:
            with session.begin_nested():
                session.add(StatusPage(name=name))
                session.flush()
        except IntegrityError:
            pass  # another process starting at the same moment recorded it


def in_recorded_file(session: Session, name: str) -> bool:
    """Whether the org file last read (at a start or reload, in any process) has the page, as a poll is about
    to write; its row stays locked until the poll commits (``record_pages``). A page with no row yet counts
    as in it: every start and reload records its pages before polling them."""
    removed = session.execute(
        select(StatusPage.removed_at).where(StatusPage.name == name).with_for_update()
    ).one_or_none()
    return removed is None or removed.removed_at is None


def resolve_removed_pages(session: Session, org: OrgConfig) -> list[str]:
    """After a reload (and at startup): the open alerts of a page no longer in the org file (removed, or
    renamed) are resolved by automation with a note that says why. No poll reads that page any more, so
    nothing else would ever resolve them, and their incidents would stay open.

    Each alert is locked after its incident (``lock_alert``, the order intake and incident changes take) and
    looked at again, so processes that run this at once take turns and the second finds nothing left to do.
    Returns what it did, for the log."""
    kept = {page.name for page in org.automation.status_pages}
    open_alerts = session.execute(
        select(Alert.id, Alert.dedup_key)
        .where(Alert.scope == SOURCE, Alert.status != AlertStatus.resolved)
        .order_by(Alert.id)
    ).all()
    said = []
    for alert_id, dedup_key in open_alerts:
        name = dedup_key.split(":", 1)[0]  # <page>:<vendor id>; a page's name has no colon
        if name in kept:
            continue
        alert = service.lock_alert(session, alert_id)
        if alert.status == AlertStatus.resolved:
            continue  # another process resolved it meanwhile
        note = (
            f"status page {name} was removed from the org file, so no poll can resolve this alert: "
            "resolved on reload"
        )
        service.resolve_by_system(session, org=org, alert=alert, note=note)
        said.append(
            f"status page {name} is no longer in the org file: its open alert {alert.ref} was resolved"
        )
    return said


def _configured(org: OrgConfig, name: str) -> StatusPageConfig | None:
    return next((page for page in org.automation.status_pages if page.name == name), None)


@job_handler(POLL_KIND, deferred_transaction=True)
def poll(context: AppContext, session: Session, job: Job) -> dict[str, Any]:
    """Read the page (no transaction open while waiting on the vendor), apply it, schedule the next poll."""
    page = _configured(context.org, job.payload["name"])
    if page is None:
        return {"skipped": "the page is no longer in the org file"}
    status: VendorStatus | None = None
    outcome: dict[str, Any] = {}
    try:
        status = fetch(page)
    except ValueError as exc:
        log.warning("status page %s: %s", page.name, exc)
        outcome = {"error": str(exc)}
    else:
        for problem in status.unread:
            log.warning("status page %s: %s; its alerts from that list stay as they are", page.name, problem)
    if _configured(context.org, page.name) is None:
        # A reload took it out while the vendor answered: its alerts were resolved, none is raised again.
        return {"skipped": "the page was taken out of the org file during the poll"}
    if not in_recorded_file(session, page.name):
        # Another process read a file without it since this one read its own, and resolved its alerts: none
        # is raised again from a file out of date. The chain ends; a reload that puts the page back starts it.
        log.info("status page %s: another process's org file no longer has it; not polled here", page.name)
        return {"skipped": "the page was taken out of the org file by a reload in another process"}
    if status is not None:
        outcome = apply(session, context.org, page, status)
    jobs_service.enqueue_on_grid(
        session,
        kind=POLL_KIND,
        key_prefix=_key_prefix(page),
        payload={"name": page.name},
        every=page.interval,
        after=utcnow(),
        peer=POLL_PEER,
    )
    return outcome
