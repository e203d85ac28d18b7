"""Third-party status pages: a vendor's unresolved incidents become alerts, updated and resolved with it.

The vendor is a local HTTP server answering ``/api/v2/incidents/unresolved.json`` in Statuspage's format (the
shape captured in ../shared/reference/wire-formats.md, section 4): a real status page is not reachable here.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from tests.alerts.test_source_ack import run_at
from tests.conftest import EXAMPLE_CONFIG
from warroom.alerts.config import AutomationConfig, StatusPageConfig
from warroom.alerts.models import Alert
from warroom.app import create_app
from warroom.clock import clock
from warroom.context import AppContext
from warroom.jobs.models import Job, JobStatus
from warroom.jobs.worker import Worker
from warroom.orgconfig import OrgConfig, load_org_config

T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)


class VendorPage:
    """What the vendor's page answers: ``status`` and ``body`` (JSON unless bytes)."""

    def __init__(self) -> None:
        self.status = 200
        self.incidents: list[dict[str, Any]] = []
        self.maintenances: list[dict[str, Any]] = []
        self.body: bytes | None = None
        self.missing: set[str] = set()  # paths that answer 404
        self.requests: list[str] = []
        page = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                page.requests.append(self.path)
                lists = {
                    "/api/v2/incidents/unresolved.json": ("incidents", page.incidents),
                    "/api/v2/scheduled-maintenances/active.json": (
                        "scheduled_maintenances",
                        page.maintenances,
                    ),
                }
                if self.path not in lists or self.path in page.missing:
                    self.send_response(404)
                    self.end_headers()
                    return
                name, items = lists[self.path]
                body = (
                    page.body
                    if page.body is not None
                    else json.dumps({"page": {"id": "93g3jjmkfprd", "name": "Vendor"}, name: items}).encode()
                )
                self.send_response(page.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def vendor_incident(
    number: int, *, impact: str = "major", status: str = "investigating", **extra: Any
) -> dict[str, Any]:
    incident = {
        "id": f"q7gd3y91r8s{number}",
        "name": f"Degraded Actions runs ({number})",
        "status": status,
        "impact": impact,
        "shortlink": f"https://stspg.io/{number}",
        "created_at": "2026-03-02T09:58:00.000Z",
        "incident_updates": [
            {"id": "u1", "status": status, "body": "We are investigating.", "affected_components": None}
        ],
        "components": [{"id": "c1", "name": "Actions", "status": "degraded_performance"}],
    }
    return {**incident, **extra}


@pytest.fixture
def vendor() -> Iterator[VendorPage]:
    page = VendorPage()
    yield page
    page.close()


@pytest.fixture
def org(vendor: VendorPage) -> OrgConfig:
    base = load_org_config(EXAMPLE_CONFIG)
    page = StatusPageConfig(
        name="github", url=vendor.url, interval=timedelta(minutes=1), components=["Actions"], service="api"
    )
    automation = AutomationConfig.model_validate(
        {**base.automation.model_dump(), "status_pages": [page.model_dump()]}
    )
    return base.model_copy(update={"automation": automation})


def vendor_alerts(context: AppContext) -> list[tuple[str, str, str, int, int | None]]:
    with context.db.read() as session:
        rows = session.scalars(select(Alert).where(Alert.source == "third-party").order_by(Alert.id))
        return [(a.dedup_key, a.status.value, a.severity, a.occurrences, a.incident_id) for a in rows]


def test_vendor_incidents_become_alerts_and_resolve_with_the_vendor(
    context: AppContext, vendor: VendorPage, viewer: dict[str, str]
) -> None:
    clock.set(T0)
    with TestClient(create_app(context=context)) as api:
        _follow_the_vendor(api, context, vendor, viewer)


def _follow_the_vendor(
    api: TestClient, context: AppContext, vendor: VendorPage, viewer: dict[str, str]
) -> None:
    worker = Worker(context, name="w1")
    # The app started the page's chain of polls; nothing unresolved yet.
    run_at(worker, T0)
    assert sorted(vendor.requests) == [  # the two lists are read at once
        "/api/v2/incidents/unresolved.json",
        "/api/v2/scheduled-maintenances/active.json",
    ]
    assert vendor_alerts(context) == []

    vendor.incidents = [
        vendor_incident(1),
        vendor_incident(2, impact="minor", components=[{"name": "Pages"}]),  # not a component we use
    ]
    run_at(worker, T0 + timedelta(minutes=1))
    assert vendor_alerts(context) == [("github:q7gd3y91r8s1", "firing", "error", 1, 1)]
    incident = api.get("/api/v1/incidents/INC-1", headers=viewer).json()
    assert (
        incident["title"] == "Vendor outage: github: Degraded Actions runs (1)"
        and incident["severity"] == "P2"
    )
    alert = api.get("/api/v1/alerts?source=third-party", headers=viewer).json()["items"][0]
    assert alert["service"] == "api" and alert["links"] == [
        {"href": "https://stspg.io/1", "text": "github status page"}
    ]

    # The same answer again changes nothing; an update from the vendor counts as a new occurrence.
    run_at(worker, T0 + timedelta(minutes=2))
    assert vendor_alerts(context)[0][3] == 1
    vendor.incidents = [vendor_incident(1, impact="critical", status="identified")]
    run_at(worker, T0 + timedelta(minutes=3))
    assert vendor_alerts(context) == [("github:q7gd3y91r8s1", "firing", "critical", 2, 1)]
    # Its labels and annotations follow the update too, not only its severity.
    alert = api.get("/api/v1/alerts?source=third-party", headers=viewer).json()["items"][0]
    assert (alert["labels"]["impact"], alert["annotations"]["vendor_status"]) == ("critical", "identified")

    # A page that cannot be read raises nothing and resolves nothing; the next poll goes on.
    vendor.status = 503
    run_at(worker, T0 + timedelta(minutes=4))
    vendor.status, vendor.body = 200, b"<html>maintenance</html>"
    run_at(worker, T0 + timedelta(minutes=5))
    assert [row[1] for row in vendor_alerts(context)] == ["firing"]

    # The vendor resolves it: it leaves the unresolved list, and the alert resolves.
    vendor.body, vendor.incidents = None, []
    run_at(worker, T0 + timedelta(minutes=6))
    assert vendor_alerts(context)[0][1] == "resolved"
    assert api.get("/api/v1/incidents/INC-1", headers=viewer).json()["status"] == "monitoring"

    with context.db.read() as session:
        pending = session.scalars(
            select(Job).where(Job.kind == "alerts.status_page_poll", Job.status == JobStatus.pending)
        ).all()
    assert len(pending) == 1 and pending[0].run_at == T0 + timedelta(minutes=7)  # one chain, on the grid

    # Planned work at the vendor: an info alert while it is in progress (no rule pages for it).
    maintenance = vendor_incident(
        7, impact="maintenance", status="in_progress", scheduled_until="2026-03-02T12:00:00.000Z"
    )
    maintenance["name"] = "Database upgrade"
    vendor.maintenances = [maintenance, {**vendor_incident(8), "components": [{"name": "Pages"}]}]
    run_at(worker, T0 + timedelta(minutes=7))
    assert vendor_alerts(context)[1:] == [("github:maintenance:q7gd3y91r8s7", "firing", "info", 1, None)]
    shown = api.get("/api/v1/alerts?source=third-party&status=firing", headers=viewer).json()["items"][0]
    assert shown["summary"] == "github: maintenance in progress: Database upgrade"
    assert shown["annotations"]["scheduled_until"] == "2026-03-02T12:00:00.000Z"
    vendor.maintenances = []
    run_at(worker, T0 + timedelta(minutes=8))
    assert [row[1] for row in vendor_alerts(context)] == ["resolved", "resolved"]


def poll_results(context: AppContext) -> list[Any]:
    with context.db.read() as session:
        polls = session.scalars(
            select(Job)
            .where(Job.kind == "alerts.status_page_poll", Job.status == JobStatus.done)
            .order_by(Job.id)
        )
        return [job.result for job in polls]


def test_each_list_is_followed_when_the_other_cannot_be_read(
    context: AppContext, vendor: VendorPage, caplog: pytest.LogCaptureFixture
) -> None:
    """A maintenance list answering 404 failed the whole poll: an incident the vendor resolved stayed open."""
    clock.set(T0)
    maintenance = vendor_incident(7, impact="maintenance", status="in_progress")
    vendor.incidents, vendor.maintenances = [vendor_incident(1)], [maintenance]
    with TestClient(create_app(context=context)):
        worker = Worker(context, name="w1")
        run_at(worker, T0)
        assert [row[:2] for row in vendor_alerts(context)] == [
            ("github:q7gd3y91r8s1", "firing"),
            ("github:maintenance:q7gd3y91r8s7", "firing"),
        ]

        # The maintenance list is gone for a while, and the vendor resolves its incident meanwhile.
        vendor.missing = {"/api/v2/scheduled-maintenances/active.json"}
        vendor.incidents = []
        caplog.set_level(logging.WARNING, logger="warroom")
        run_at(worker, T0 + timedelta(minutes=1))
        assert [row[1] for row in vendor_alerts(context)] == ["resolved", "firing"]
        unread = f"{vendor.url}/api/v2/scheduled-maintenances/active.json answered 404"
        assert poll_results(context)[-1] == {
            "incidents": 0,
            "maintenances": "not read",
            "resolved": 1,
            "unread": [unread],
        }
        assert f"status page github: {unread}; its alerts from that list stay as they are" in caplog.messages

        # And the other way round: an incident list that cannot be read leaves the incidents' alerts.
        vendor.incidents = [vendor_incident(2)]
        vendor.missing = set()
        run_at(worker, T0 + timedelta(minutes=2))
        vendor.missing = {"/api/v2/incidents/unresolved.json"}
        vendor.maintenances = []
        run_at(worker, T0 + timedelta(minutes=3))
        assert [row[1] for row in vendor_alerts(context)] == ["resolved", "resolved", "firing"]
        assert poll_results(context)[-1]["incidents"] == "not read"

        # Neither list: nothing changes, as before.
        vendor.missing = {"/api/v2/incidents/unresolved.json", "/api/v2/scheduled-maintenances/active.json"}
        run_at(worker, T0 + timedelta(minutes=4))
        assert "error" in poll_results(context)[-1]
        assert [row[1] for row in vendor_alerts(context)] == ["resolved", "resolved", "firing"]


def test_a_page_can_leave_maintenances_out(context: AppContext, vendor: VendorPage) -> None:
    from warroom.alerts import status_pages

    page = context.org.automation.status_pages[0].model_copy(update={"maintenance_severity": None})
    vendor.maintenances = [vendor_incident(9, impact="maintenance", status="in_progress")]
    assert status_pages.fetch(page).maintenances == []
    assert vendor.requests == ["/api/v2/incidents/unresolved.json"]


def test_components_match_group_prefixed_names_in_updates(context: AppContext, vendor: VendorPage) -> None:
    from warroom.alerts import status_pages

    page = context.org.automation.status_pages[0]
    update = {"body": "Delays.", "affected_components": [{"name": "CI - Actions"}]}
    grouped = status_pages.VendorIncident.model_validate(
        vendor_incident(3, components=[], incident_updates=[update])
    )
    other = status_pages.VendorIncident.model_validate(vendor_incident(4, components=[{"name": "Packages"}]))
    assert status_pages._concerns_us(page, grouped)
    assert not status_pages._concerns_us(page, other)


def test_restarting_the_app_does_not_start_a_second_chain(context: AppContext, vendor: VendorPage) -> None:
    clock.set(T0)
    for _ in range(3):
        with TestClient(create_app(context=context)):
            pass
    with context.db.read() as session:
        polls = session.scalars(select(Job).where(Job.kind == "alerts.status_page_poll")).all()
    assert len(polls) == 1


@pytest.mark.parametrize(
    ("entry", "problem"),
    [
        ({"name": "github", "url": "ftp://x"}, "url"),
        ({"name": "github", "url": "https://x", "interval": "5s"}, "between 30s and 1h"),
        ({"name": "github", "url": "https://x", "service": "nowhere"}, "'nowhere' is not a service"),
        ({"name": "Git Hub", "url": "https://x"}, "name"),
    ],
)
def test_status_page_config_is_checked(entry: dict[str, Any], problem: str) -> None:
    import yaml

    from warroom.orgconfig import ConfigError, parse_org_config

    data = yaml.safe_load(EXAMPLE_CONFIG.read_text())
    data["automation"]["status_pages"] = [entry]
    with pytest.raises(ConfigError) as caught:
        parse_org_config(yaml.safe_dump(data), "org.yaml")
    assert any(problem in str(line) for line in caught.value.problems), caught.value.problems


def with_pages(org: OrgConfig, *pages: StatusPageConfig) -> OrgConfig:
    return org.model_copy(
        update={"automation": org.automation.model_copy(update={"status_pages": list(pages)})}
    )


def test_a_page_taken_out_of_the_file_has_its_open_alerts_resolved(
    context: AppContext, vendor: VendorPage, viewer: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    """No poll reads a page that is no longer in the org file, so nothing resolved its alerts: ALR-1 stayed
    firing on INC-1 forever. The reload resolves them, saying why, as it does a removed heartbeat's."""
    from warroom import reload

    clock.set(T0)
    vendor.incidents = [vendor_incident(1)]
    maintenance = vendor_incident(7, impact="maintenance", status="in_progress")
    vendor.maintenances = [maintenance]
    original = context.org
    with TestClient(create_app(context=context)) as api:
        worker = Worker(context, name="w1")
        run_at(worker, T0)
        assert [row[:2] for row in vendor_alerts(context)] == [
            ("github:q7gd3y91r8s1", "firing"),
            ("github:maintenance:q7gd3y91r8s7", "firing"),
        ]

        clock.set(T0 + timedelta(seconds=30))
        context.org = with_pages(original)
        caplog.set_level(logging.WARNING, logger="warroom.reload")
        reload.start_recurring(context)
        reload.start_recurring(context)  # another process, or a restart: nothing more
        assert [row[1] for row in vendor_alerts(context)] == ["resolved", "resolved"]
        with context.db.read() as session:
            for alert in session.scalars(select(Alert).where(Alert.source == "third-party")):
                assert alert.resolved_by == "automation"
                assert alert.resolution_note == (
                    "status page github was removed from the org file, so no poll can resolve this alert: "
                    "resolved on reload"
                )
        said = [message for message in caplog.messages if "status page github" in message]
        assert said == [
            "status page github is no longer in the org file: its open alert ALR-1 was resolved",
            "status page github is no longer in the org file: its open alert ALR-2 was resolved",
        ]
        assert api.get("/api/v1/incidents/INC-1", headers=viewer).json()["status"] == "monitoring"
        run_at(worker, T0 + timedelta(minutes=1))
        assert poll_results(context)[-1] == {"skipped": "the page is no longer in the org file"}


def test_a_renamed_page_leaves_no_alert_of_its_old_name_open(
    context: AppContext, vendor: VendorPage, viewer: dict[str, str]
) -> None:
    """Renamed, the page's next poll opened a second alert next to the stuck one, and when the vendor
    resolved, INC-1 never moved to monitoring."""
    from warroom import reload

    clock.set(T0)
    vendor.incidents = [vendor_incident(1)]
    original = context.org
    with TestClient(create_app(context=context)) as api:
        worker = Worker(context, name="w1")
        run_at(worker, T0)
        assert [row[:2] for row in vendor_alerts(context)] == [("github:q7gd3y91r8s1", "firing")]

        clock.set(T0 + timedelta(seconds=30))
        renamed = original.automation.status_pages[0].model_copy(update={"name": "gh"})
        context.org = with_pages(original, renamed)
        reload.start_recurring(context)
        run_at(worker, T0 + timedelta(seconds=30))
        assert [row[:2] for row in vendor_alerts(context)] == [
            ("github:q7gd3y91r8s1", "resolved"),
            ("gh:q7gd3y91r8s1", "firing"),
        ]

        vendor.incidents = []
        run_at(worker, T0 + timedelta(minutes=2))
        assert [row[1] for row in vendor_alerts(context)] == ["resolved", "resolved"]
        incidents = {row[4] for row in vendor_alerts(context)}
        for incident_id in incidents:
            shown = api.get(f"/api/v1/incidents/INC-{incident_id}", headers=viewer).json()
            assert shown["status"] == "monitoring"
