"""Maintenance windows: alerts they cover are recorded but open no incident and page nobody; when the window
ends (on time or early) the ones still open are routed as if they had just arrived."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from typer.testing import CliRunner

from tests.alerts.test_source_ack import run_at, sent_pages, timeline
from tests.conftest import EXAMPLE_CONFIG, bearer
from tests.e2e.server import run_cli, serve_for_cli
from warroom.alerts import maintenance
from warroom.alerts import service as alerts_service
from warroom.alerts.adapters import AlertEvent, from_generic
from warroom.alerts.models import Alert, MaintenanceWindow
from warroom.alerts.schemas import MaintenanceCreate
from warroom.cli.main import app
from warroom.cli.output import when
from warroom.client import Client
from warroom.clock import clock
from warroom.context import AppContext
from warroom.incidents.models import Incident
from warroom.jobs.models import Job, JobStatus
from warroom.jobs.worker import Worker

# Monday 2 March 2026, 10:00 UTC (carol is on call for platform-primary).
T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)


def start_window(api: TestClient, headers: dict[str, str], **body: Any) -> dict[str, Any]:
    response = api.post("/api/v1/maintenance", json={"reason": "database upgrade", **body}, headers=headers)
    assert response.status_code == 201, response.text
    window: dict[str, Any] = response.json()
    return window


def send(
    api: TestClient, key: str, dedup_key: str, labels: dict[str, str] | None = None, **alert: Any
) -> dict[str, Any]:
    # Each dedup key its own alertname: its own group, so its own incident.
    body = {
        "summary": f"{dedup_key} is failing",
        "severity": "critical",
        "service": "api",
        "dedup_key": dedup_key,
        "labels": {"alertname": dedup_key, **(labels or {})},
        **alert,
    }
    response = api.post(f"/api/v1/alerts?key={key}", json=body)
    assert response.status_code == 202, response.text
    result: dict[str, Any] = response.json()["alerts"][0]
    return result


def incident_count(context: AppContext) -> int:
    with context.db.read() as session:
        return session.scalar(select(func.count()).select_from(Incident)) or 0


def windows_and_jobs(context: AppContext) -> tuple[list[tuple[Any, ...]], int]:
    with context.db.read() as session:
        windows = [
            (w.id, w.starts_at, w.ends_at, w.ended_by, w.released_at)
            for w in session.scalars(select(MaintenanceWindow).order_by(MaintenanceWindow.id))
        ]
        jobs = session.scalar(select(func.count()).select_from(Job)) or 0
    return windows, jobs


def test_alerts_held_during_the_window_are_routed_when_it_ends(
    api: TestClient, context: AppContext, generic_key: str, responder: dict[str, str], viewer: dict[str, str]
) -> None:
    clock.set(T0)
    worker = Worker(context, name="w1")
    window = start_window(api, responder, services=["api"], duration="2h")
    assert (window["ref"], window["state"], window["created_by"]) == ("MW-1", "active", "responder-user")
    assert datetime.fromisoformat(window["ends_at"]) == T0 + timedelta(hours=2)

    held = send(api, generic_key, "api-5xx")
    assert (held["outcome"], held["incident"]) == ("created", None)
    # Another service is not covered: it opens an incident and pages as usual.
    other = send(api, generic_key, "db-down", service="database")
    assert other["incident"] == "INC-1"
    run_at(worker, T0)
    assert sent_pages(context, 1) == [("carol", "email", 1, 1)]
    # A repeat of the held alert still counts, and still acts on nothing.
    again = send(api, generic_key, "api-5xx", summary="api-5xx is failing harder")
    assert (again["outcome"], again["incident"]) == ("updated", None)
    # One that resolves during the window stays recorded, on no incident.
    short = send(api, generic_key, "api-latency")
    resolved = send(api, generic_key, "api-latency", status="resolved")
    assert (resolved["outcome"], resolved["incident"]) == ("resolved", None)
    assert incident_count(context) == 1

    alert = api.get(f"/api/v1/alerts/{held['id']}", headers=viewer).json()
    assert (alert["maintenance"], alert["occurrences"], alert["incident"]) == ("MW-1", 2, None)
    assert api.get(f"/api/v1/alerts/{other['id']}", headers=viewer).json()["maintenance"] is None
    detail = api.get("/api/v1/maintenance/MW-1", headers=viewer).json()
    assert [a["id"] for a in detail["alerts"]] == [short["id"], held["id"]]

    # The window's end: its release job routes the alert still firing, and only that one.
    run_at(worker, T0 + timedelta(hours=2, seconds=1))
    alert = api.get(f"/api/v1/alerts/{held['id']}", headers=viewer).json()
    assert alert["incident"] == "INC-2"
    assert alert["maintenance"] == "MW-1"  # it keeps where it came from
    assert api.get(f"/api/v1/alerts/{short['id']}", headers=viewer).json()["incident"] is None
    assert incident_count(context) == 2
    notes = [e.action for e in timeline(context, 2) if "during maintenance" in e.action]
    assert len(notes) == 1 and "MW-1 (database upgrade)" in notes[0], notes
    run_at(worker, T0 + timedelta(hours=2, seconds=1))
    assert sent_pages(context, 2) == [("carol", "email", 1, 1)]
    listed = api.get("/api/v1/maintenance?all=true", headers=viewer).json()
    assert listed[0]["state"] == "ended" and listed[0]["released_at"] is not None
    assert api.get("/api/v1/maintenance", headers=viewer).json() == []

    # After the window, new alerts for the service are routed at once.
    later = send(api, generic_key, "api-cpu")
    assert later["incident"] == "INC-3"


def test_labels_narrow_a_window_and_a_scheduled_one_holds_nothing_before_it_starts(
    api: TestClient, context: AppContext, generic_key: str, responder: dict[str, str]
) -> None:
    clock.set(T0)
    start = T0 + timedelta(hours=1)
    window = start_window(
        api,
        responder,
        labels={"env": "staging"},
        starts_at=start.isoformat(),
        ends_at=(start + timedelta(hours=1)).isoformat(),
    )
    assert window["state"] == "scheduled"
    assert send(api, generic_key, "before", labels={"env": "staging"})["incident"] == "INC-1"
    clock.set(start)
    assert send(api, generic_key, "staging", labels={"env": "staging"})["incident"] is None
    assert send(api, generic_key, "production", labels={"env": "production"})["incident"] == "INC-2"
    assert send(api, generic_key, "unlabelled", labels={})["incident"] == "INC-3"
    # Both conditions must hold when a window names services and labels.
    start_window(api, responder, services=["database"], labels={"env": "production"}, duration="1h")
    assert (
        send(api, generic_key, "db-prod", service="database", labels={"env": "production"})["incident"]
        is None
    )
    assert send(api, generic_key, "api-prod", labels={"env": "production", "x": "1"})["incident"] == "INC-4"


def test_match_conditions_narrow_a_window_like_an_automation_rule(
    api: TestClient,
    context: AppContext,
    generic_key: str,
    am_key: str,
    responder: dict[str, str],
    viewer: dict[str, str],
) -> None:
    """Sources, severities, types, label regexes and absent labels: the conditions of a rule's match."""
    clock.set(T0)
    match = {
        "source": ["alertmanager"],
        "severity": ["warning", "critical"],
        "labels_regex": {"instance": "db-[0-9]+"},
        "labels_missing": ["page_anyway"],
    }
    window = start_window(api, responder, match=match, duration="1h")
    assert window["match"] == {**match, "type": [], "integrations": []}
    assert api.get("/api/v1/maintenance/MW-1", headers=viewer).json()["match"] == window["match"]

    def from_alertmanager(name: str, **labels: str) -> dict[str, Any]:
        alert = {
            "status": "firing",
            "labels": {"alertname": name, "severity": "critical", **labels},
            "annotations": {"summary": f"{name} on {labels.get('instance')}"},
            "startsAt": T0.isoformat(),
            "fingerprint": f"fp-{name}",
        }
        body = {"version": "4", "status": "firing", "alerts": [alert], "groupKey": name}
        response = api.post(f"/api/v1/alerts/alertmanager?key={am_key}", json=body)
        assert response.status_code == 202, response.text
        result: dict[str, Any] = response.json()["alerts"][0]
        return result

    held = from_alertmanager("PostgresDown", instance="db-12", service="database")
    assert held["incident"] is None
    not_held = [
        from_alertmanager("PostgresLag", instance="db-12-replica"),  # the regex must match the whole value
        from_alertmanager("WebDown", instance="web-3"),
        from_alertmanager("NoInstance"),
        from_alertmanager("Escalated", instance="db-2", page_anyway="yes"),
        from_alertmanager("Minor", instance="db-2", severity="info"),
        # Another source with the same labels is not covered.
        send(api, generic_key, "db-generic", labels={"instance": "db-12"}),
    ]
    assert api.get(f"/api/v1/alerts/{held['id']}", headers=viewer).json()["maintenance"] == "MW-1"
    with context.db.read() as session:
        held_ids = session.scalars(select(Alert.id).where(Alert.maintenance_window_id.is_not(None))).all()
    assert held_ids == [held["id"]]
    # Those it does not cover are routed as usual (the critical ones open incidents; info is unrouted).
    assert [alert["incident"] is not None for alert in not_held] == [True, True, True, True, False, True]


def test_ending_early_routes_held_alerts_at_once_and_cancels_the_release_job(
    api: TestClient, context: AppContext, generic_key: str, responder: dict[str, str], viewer: dict[str, str]
) -> None:
    clock.set(T0)
    worker = Worker(context, name="w1")
    start_window(api, responder, services=["api"], duration="4h")
    held = send(api, generic_key, "api-5xx")
    clock.set(T0 + timedelta(minutes=30))
    response = api.post("/api/v1/maintenance/MW-1/end", headers=responder)
    assert response.status_code == 200, response.text
    ended = response.json()
    assert (ended["state"], ended["ended_by"]) == ("ended", "responder-user")
    assert datetime.fromisoformat(ended["ends_at"]) == T0 + timedelta(minutes=30)
    assert api.get(f"/api/v1/alerts/{held['id']}", headers=viewer).json()["incident"] == "INC-1"
    with context.db.read() as session:
        statuses = list(session.scalars(select(Job.status).where(Job.kind == "alerts.maintenance_release")))
    assert statuses == [JobStatus.cancelled]
    assert ended["unchanged"] is False
    # Ending it twice changes nothing and says so (it was refused, 409, failing a script's retry).
    before = windows_and_jobs(context)
    again = api.post("/api/v1/maintenance/1/end", headers=responder)
    assert again.status_code == 200, again.text
    assert again.json() == {**ended, "unchanged": True}
    assert windows_and_jobs(context) == before
    # New alerts are routed; nothing is held any more.
    assert send(api, generic_key, "api-latency")["incident"] is not None
    run_at(worker, T0 + timedelta(hours=5))
    assert incident_count(context) == 2


def test_a_person_resolving_a_held_alert_leaves_it_resolved_and_unrouted(
    api: TestClient, context: AppContext, generic_key: str, responder: dict[str, str], viewer: dict[str, str]
) -> None:
    clock.set(T0)
    worker = Worker(context, name="w1")
    start_window(api, responder, services=["api"], duration="1h")
    acked = send(api, generic_key, "api-5xx")
    resolved = send(api, generic_key, "api-latency")
    assert api.post(f"/api/v1/alerts/{acked['id']}/acknowledge", headers=responder).status_code == 200
    assert api.post(f"/api/v1/alerts/{resolved['id']}/resolve", headers=responder).status_code == 200
    run_at(worker, T0 + timedelta(hours=1, seconds=1))
    # The acknowledged one is still open: routed at the end. The resolved one stays on no incident.
    assert api.get(f"/api/v1/alerts/{acked['id']}", headers=viewer).json()["incident"] == "INC-1"
    assert api.get(f"/api/v1/alerts/{resolved['id']}", headers=viewer).json()["incident"] is None
    assert incident_count(context) == 1
    # The person who acknowledged it during the window has the incident acknowledged: it already has an owner,
    # so nobody is paged for it (the rule's page says why), and it does not escalate.
    incident = api.get("/api/v1/incidents/INC-1", headers=viewer).json()
    assert incident["acknowledged_at"] is not None
    acknowledged = [
        e for e in timeline(context, 1) if e.action.startswith(f"Alert ALR-{acked['id']} acknowledged")
    ]
    assert len(acknowledged) == 1 and acknowledged[0].performer == "responder-user", acknowledged
    assert "so responder-user acknowledges the incident" in acknowledged[0].action
    for minutes in range(61, 180, 10):
        run_at(worker, T0 + timedelta(minutes=minutes))
    assert sent_pages(context, 1) == []
    assert any(
        e.action.startswith("Page of ") and "not sent: INC-1 was acknowledged by responder-user" in e.action
        for e in timeline(context, 1)
    ), [e.action for e in timeline(context, 1)]


def test_cancelling_a_scheduled_window(
    api: TestClient, context: AppContext, generic_key: str, responder: dict[str, str]
) -> None:
    clock.set(T0)
    start_window(
        api, responder, services=["api"], starts_at=(T0 + timedelta(days=1)).isoformat(), duration="1h"
    )
    clock.set(T0 + timedelta(minutes=5))
    cancelled = api.post("/api/v1/maintenance/MW-1/end", headers=responder).json()
    # Both ends move to the moment of cancelling, so it holds nothing; what it stood for is kept apart.
    assert cancelled["state"] == "cancelled"
    assert cancelled["starts_at"] == cancelled["ends_at"] == "2026-03-02T10:05:00Z"
    assert (cancelled["planned_starts_at"], cancelled["planned_ends_at"], cancelled["ended_by"]) == (
        "2026-03-03T10:00:00Z",
        "2026-03-03T11:00:00Z",
        "responder-user",
    )
    shown = api.get("/api/v1/maintenance/MW-1", headers=responder).json()
    listed = api.get("/api/v1/maintenance", params={"all": "true"}, headers=responder).json()
    assert [(w["state"], w["planned_starts_at"]) for w in (shown, *listed)] == [
        ("cancelled", "2026-03-03T10:00:00Z")
    ] * 2
    assert api.get("/api/v1/maintenance", headers=responder).json() == []
    clock.set(T0 + timedelta(days=1, minutes=10))
    assert send(api, generic_key, "at-the-planned-time")["incident"] == "INC-1"
    # A window ended once it ran is ended, not cancelled, and keeps no plan.
    clock.set(T0 + timedelta(days=2))
    start_window(api, responder, services=["api"], duration="1h")
    clock.advance(timedelta(minutes=10))
    ended = api.post("/api/v1/maintenance/MW-2/end", headers=responder).json()
    assert (ended["state"], ended["planned_starts_at"], ended["planned_ends_at"]) == ("ended", None, None)


def test_extending_a_cancelled_window_says_it_was_cancelled(
    api: TestClient, context: AppContext, responder: dict[str, str]
) -> None:
    """It said "MW-1 already ended (at …)" of a window that never started. Ending it again is answered as
    it is (``unchanged``), as for a window that ran."""
    clock.set(T0)
    start_window(
        api, responder, services=["api"], starts_at=(T0 + timedelta(days=1)).isoformat(), duration="1h"
    )
    clock.set(T0 + timedelta(minutes=5))
    cancelled = api.post("/api/v1/maintenance/MW-1/end", headers=responder).json()
    before = windows_and_jobs(context)
    said = "MW-1 was cancelled at 2026-03-02 10:05 UTC by responder-user; it never started"
    planned = "(it was planned for 2026-03-03 10:00 UTC)"
    refused = api.post("/api/v1/maintenance/MW-1/extend", json={"by": "30m"}, headers=responder)
    message = refused.json()["error"]["message"]
    assert refused.status_code == 409 and said in message and planned in message, message
    assert "already ended" not in message
    again = api.post("/api/v1/maintenance/MW-1/end", headers=responder)
    assert again.status_code == 200 and again.json() == {**cancelled, "unchanged": True}
    assert windows_and_jobs(context) == before
    # One that ran and was ended early still says it ended, and who ended it.
    start_window(api, responder, services=["api"], duration="1h")
    clock.advance(timedelta(minutes=10))
    assert api.post("/api/v1/maintenance/MW-2/end", headers=responder).status_code == 200
    message = api.post("/api/v1/maintenance/MW-2/extend", json={"by": "30m"}, headers=responder).json()
    assert "MW-2 already ended (at 2026-03-02 10:15 UTC by responder-user)" in message["error"]["message"]
    # One that ran its course is over too: ending it changes nothing.
    start_window(api, responder, services=["api"], duration="1h")
    clock.advance(timedelta(hours=2))
    over = api.post("/api/v1/maintenance/MW-3/end", headers=responder).json()
    assert (over["state"], over["ended_by"], over["unchanged"]) == ("ended", None, True)


def test_the_cli_shows_a_cancelled_window_with_the_times_it_was_planned_for(
    api: TestClient, tokens: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`maintenance end` of a window not started, then `list --all` and `show`: they used to show it "ended"
    from and to the moment it was cancelled, and the occurrence it stood for nowhere."""

    def through_the_app(request: httpx.Request) -> httpx.Response:
        answer = api.request(
            request.method, request.url.raw_path.decode(), headers=request.headers, content=request.content
        )
        return httpx.Response(answer.status_code, headers=answer.headers, content=answer.content)

    monkeypatch.setattr(
        "warroom.cli.maintenance.Client",
        lambda: Client(
            "http://warroom.test", tokens["responder"], transport=httpx.MockTransport(through_the_app)
        ),
    )
    clock.set(T0)
    start_window(
        api, bearer(tokens["responder"]), services=["api"], starts_at="2026-03-02T15:00:00Z", duration="30m"
    )
    clock.set(T0 + timedelta(hours=4, minutes=28, seconds=28))
    runner = CliRunner()
    env = {"COLUMNS": "250"}
    # The CLI prints local times.
    starts, ends = when(T0.replace(hour=15)), when(T0.replace(hour=15, minute=30))
    cancelled = f"cancelled at {when(T0 + timedelta(hours=4, minutes=28, seconds=28))} by responder-user"
    ended = runner.invoke(app, ["maintenance", "end", "MW-1"], env=env)
    assert ended.exit_code == 0, ended.output
    assert f"MW-1 cancelled (it was planned from {starts} to {ends})" in ended.stdout
    listed = runner.invoke(app, ["maintenance", "list", "--all"], env=env)
    assert listed.exit_code == 0, listed.output
    [row] = [line for line in listed.stdout.splitlines() if "MW-1" in line]
    assert "cancelled" in row and starts in row and ends in row and f"({cancelled})" in row
    shown = runner.invoke(app, ["maintenance", "show", "MW-1"], env=env)
    assert shown.exit_code == 0, shown.output
    expected = (
        f"MW-1 cancelled: services api, planned from {starts} to {ends}, {cancelled} (database upgrade)"
    )
    assert expected in shown.stdout
    assert "routed" not in shown.stdout


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ({"services": ["api"]}, 422, "either ends_at or duration"),
        ({"duration": "1h"}, 422, "services, labels or match conditions"),
        ({"match": {}, "duration": "1h"}, 422, "services, labels or match conditions"),
        ({"match": {"labels_regex": {"instance": "db-("}}, "duration": "1h"}, 422, "bad regex"),
        ({"match": {"source": ["nagios"]}, "duration": "1h"}, 422, "unknown source"),
        ({"match": {"severity": ["fatal"]}, "duration": "1h"}, 422, "severity"),
        ({"match": {"labels": {"env": "x"}}, "duration": "1h"}, 422, "match.labels"),
        ({"services": ["nope"], "duration": "1h"}, 422, "unknown service"),
        ({"services": ["api"], "duration": "8d"}, 422, "at most 7d"),
        ({"services": ["api"], "duration": "99999999d"}, 422, "too long a duration"),
        ({"services": ["api"], "duration": "9999d"}, 422, "at most 7d"),
        ({"match": {"integrations": ["nosuch"]}, "duration": "1h"}, 422, "no integration named nosuch"),
        ({"services": ["api"], "duration": "1h", "ends_at": "2026-03-02T12:00:00Z"}, 422, "either ends_at"),
        ({"services": ["api"], "ends_at": "2026-03-02T09:00:00Z"}, 422, "end after it starts"),
        ({"services": ["api"], "ends_at": "2026-03-02T12:00:00"}, 422, "UTC offset"),
        ({"services": ["api"], "duration": "soon"}, 422, "not a duration"),
        ({"services": ["api"], "duration": "1h", "starts_at": "2026-09-01T00:00:00Z"}, 422, "90d ahead"),
        ({"services": ["api"], "duration": "1h", "reason": "  "}, 422, "reason"),
        ({"labels": {" ": "x"}, "duration": "1h"}, 422, "label names"),
        ({"services": ["api"], "duration": "1h", "extra": 1}, 422, "extra"),
    ],
)
def test_bad_windows_are_refused_and_change_nothing(
    api: TestClient,
    context: AppContext,
    responder: dict[str, str],
    body: dict[str, Any],
    status: int,
    message: str,
) -> None:
    clock.set(T0)
    before = windows_and_jobs(context)
    response = api.post("/api/v1/maintenance", json={"reason": "upgrade", **body}, headers=responder)
    assert response.status_code == status, response.text
    assert message in response.text, response.text
    assert windows_and_jobs(context) == before


def test_who_may_do_what(
    api: TestClient, context: AppContext, responder: dict[str, str], viewer: dict[str, str]
) -> None:
    clock.set(T0)
    body = {"reason": "upgrade", "services": ["api"], "duration": "1h"}
    assert api.post("/api/v1/maintenance", json=body).status_code == 401
    assert api.post("/api/v1/maintenance", json=body, headers=viewer).status_code == 403
    start_window(api, responder, services=["api"], duration="1h")
    before = windows_and_jobs(context)
    assert api.post("/api/v1/maintenance/MW-1/end", headers=viewer).status_code == 403
    assert api.post("/api/v1/maintenance/MW-1/end").status_code == 401
    assert api.post("/api/v1/maintenance/MW-9/end", headers=responder).status_code == 404
    assert api.get("/api/v1/maintenance/bogus", headers=viewer).status_code == 404
    assert api.get("/api/v1/maintenance", headers=viewer).json()[0]["ref"] == "MW-1"
    assert windows_and_jobs(context) == before


def test_held_alerts_survive_a_restart_of_the_app(
    context: AppContext, generic_key: str, tokens: dict[str, str]
) -> None:
    """What the window holds is in the database: a new app (a restart) still routes it at the end."""
    from warroom.app import create_app

    clock.set(T0)
    responder = {"Authorization": f"Bearer {tokens['responder']}"}
    with TestClient(create_app(context=context)) as api:
        start_window(api, responder, services=["api"], duration="1h")
        held = send(api, generic_key, "api-5xx")
    with TestClient(create_app(context=context)) as api:
        run_at(Worker(context, name="after-restart"), T0 + timedelta(hours=1))
        with context.db.read() as session:
            alert = session.get(Alert, held["id"])
            assert alert is not None and alert.incident_id == 1
        assert api.get("/api/v1/maintenance?all=true", headers=responder).json()[0]["state"] == "ended"


def _racing_window(context: AppContext) -> list[AlertEvent]:
    """PostgreSQL only: MW-1 over the api service, and an alert event it covers."""
    if context.db.engine.dialect.name != "postgresql":
        pytest.skip("SQLite runs one write transaction at a time")
    with context.db.write() as session:
        maintenance.create_window(
            session,
            org=context.org,
            data=MaintenanceCreate(reason="upgrade", services=["api"], duration=timedelta(hours=1)),
            performer="alice",
        )
    return from_generic(
        {"summary": "api down", "severity": "critical", "service": "api", "labels": {"alertname": "ApiDown"}}
    )


def test_the_end_of_a_window_waits_for_intake_that_is_holding_an_alert_in_it(context: AppContext) -> None:
    """PostgreSQL runs intake and the release at once: an alert held by a transaction that has not committed
    yet must not be missed by the release (it would be held forever)."""
    events = _racing_window(context)
    ended = threading.Event()

    def end_it() -> None:
        with context.db.write() as session:
            maintenance.end_window(session, org=context.org, ref="MW-1", performer="bob")
        ended.set()

    with context.db.write() as session:
        result = alerts_service.ingest(session, org=context.org, source="generic", events=events)
        assert result.alerts[0].incident is None  # held, not yet committed
        ender = threading.Thread(target=end_it)
        ender.start()
        # The release waits on the window's lock, which this intake transaction shares.
        assert not ended.wait(0.5)
    ender.join(10)
    assert ended.is_set()
    with context.db.read() as session:
        alert = session.get(Alert, result.alerts[0].id)
        assert alert is not None and alert.maintenance_window_id == 1
        assert alert.incident_id is not None  # routed by the release, not left held


def test_intake_during_the_end_of_a_window_waits_for_it_and_then_routes_the_alert(
    context: AppContext,
) -> None:
    """The other order: the window is ending (not yet committed) when an alert arrives. Intake must wait
    and then route the alert, not hold it in a window whose release has already run."""
    events = _racing_window(context)
    results: list[Any] = []

    def send_it() -> None:
        with context.db.write() as session:
            results.append(alerts_service.ingest(session, org=context.org, source="generic", events=events))

    with context.db.write() as session:
        maintenance.end_window(session, org=context.org, ref="MW-1", performer="bob")
        sender = threading.Thread(target=send_it)
        sender.start()
        sender.join(0.5)
        assert sender.is_alive()  # intake waits for the window's end to commit
    sender.join(10)
    assert results and results[0].alerts[0].incident is not None


@pytest.mark.e2e
def test_maintenance_cli_against_a_running_server(tmp_path: Path) -> None:
    with serve_for_cli(EXAMPLE_CONFIG, tmp_path, token_name="mw-e2e", role="responder") as env:
        key = run_cli("integration", "create", "--name", "scripts", "--type", "generic", env=env).stdout
        key = key.strip().splitlines()[-1]
        started = run_cli(
            "maintenance",
            "start",
            "--service",
            "api",
            "--for",
            "2h",
            "--reason",
            "db upgrade",
            "--json",
            env=env,
        )
        window = json.loads(started.stdout)
        assert (window["ref"], window["state"], window["services"]) == ("MW-1", "active", ["api"])
        listed = run_cli("maintenance", "list", env=env).stdout
        assert "MW-1" in listed and "active" in listed and "db upgrade" in listed

        response = httpx.post(
            f"{env['WARROOM_URL']}/api/v1/alerts",
            json={
                "summary": "api 5xx",
                "severity": "critical",
                "service": "api",
                "labels": {"alertname": "X"},
            },
            headers={"Authorization": f"Bearer {key}"},
        )
        assert response.status_code == 202, response.text
        alert_id = response.json()["alerts"][0]["id"]
        assert "arrived during MW-1" in run_cli("alerts", "show", str(alert_id), env=env).stdout
        shown = run_cli("maintenance", "show", "MW-1", env=env).stdout
        assert f"ALR-{alert_id}" in shown and "api 5xx" in shown

        extended = run_cli("maintenance", "extend", "MW-1", "--by", "30m", "--json", env=env).stdout
        assert json.loads(extended)["ends_at"] > window["ends_at"]
        ended = run_cli("maintenance", "end", "MW-1", env=env)
        assert "MW-1 ended" in ended.stdout
        assert "INC-1" in run_cli("alerts", "show", str(alert_id), env=env).stdout
        assert run_cli("maintenance", "list", "--json", env=env).stdout.strip() == "[]"
        # The same cause shows on the database: its alert opens INC-2, and goes on INC-1 by hand.
        response = httpx.post(
            f"{env['WARROOM_URL']}/api/v1/alerts",
            json={
                "summary": "db slow",
                "severity": "critical",
                "service": "database",
                "labels": {"alertname": "Y"},
            },
            headers={"Authorization": f"Bearer {key}"},
        )
        db_alert = response.json()["alerts"][0]
        assert db_alert["incident"] == "INC-2"
        attached = run_cli("alerts", "attach", "INC-1", str(db_alert["id"]), env=env)
        assert f"ALR-{db_alert['id']} attached (on INC-1)" in attached.stdout
        refused = run_cli("alerts", "attach", "INC-1", str(db_alert["id"]), env=env, check=False)
        assert refused.returncode == 1 and "already on INC-1" in refused.stderr
        # It had a cause of its own after all: out into an incident of its own, then (it was the same outage)
        # folded back in.
        kept = run_cli("alerts", "promote", str(db_alert["id"]), env=env, check=False)
        assert kept.returncode == 1 and "already on INC-1" in kept.stderr
        split = run_cli("alerts", "promote", str(db_alert["id"]), "--move", env=env)
        assert f"ALR-{db_alert['id']} promoted to INC-3" in split.stdout
        merged = run_cli("incident", "merge", "INC-3", "--into", "INC-1", "--note", "one outage", env=env)
        assert "INC-3 merged into INC-1: 1 alert(s) moved" in merged.stdout
        assert "INC-1" in run_cli("alerts", "show", str(db_alert["id"]), env=env).stdout
        twice_merged = run_cli("incident", "merge", "INC-3", "--into", "INC-1", env=env, check=False)
        assert twice_merged.returncode == 1 and "INC-3 was merged into INC-1" in twice_merged.stderr
        assert "ended" in run_cli("maintenance", "list", "--all", env=env).stdout
        # Ending it again (a retry, a second person) is no failure: it says so.
        twice = run_cli("maintenance", "end", "MW-1", env=env)
        assert "MW-1 had already ended at " in twice.stdout

        # Refusals: a clear message, a non-zero exit, nothing created.
        both = run_cli(
            "maintenance",
            "start",
            "--service",
            "api",
            "--for",
            "1h",
            "--until",
            "2030-01-01T00:00",
            "-r",
            "x",
            env=env,
            check=False,
        )
        assert both.returncode == 2 and "either --for" in both.stderr
        bad_label = run_cli(
            "maintenance", "start", "--label", "env", "--for", "1h", "-r", "x", env=env, check=False
        )
        assert bad_label.returncode == 2 and "name=value" in bad_label.stderr
        unknown = run_cli(
            "maintenance", "start", "--service", "nope", "--for", "1h", "-r", "x", env=env, check=False
        )
        assert unknown.returncode == 1 and "unknown service" in unknown.stderr
        bad_regex = run_cli(
            "maintenance", "start", "--label-regex", "host=(", "--for", "1h", "-r", "x", env=env, check=False
        )
        assert bad_regex.returncode == 1 and "bad regex" in bad_regex.stderr
        assert "MW-2" not in run_cli("maintenance", "list", "--all", env=env).stdout

        # Conditions beyond services: a regex, a source, a severity, a label that must be absent.
        narrow = run_cli(
            "maintenance",
            "start",
            "--label-regex",
            "instance=db-.*",
            "--source",
            "alertmanager",
            "--severity",
            "warning",
            "--label-missing",
            "page_anyway",
            "--for",
            "1h",
            "-r",
            "replica rebuild",
            env=env,
        ).stdout
        assert "MW-2" in narrow and "instance=~db-.*" in narrow and "no page_anyway" in narrow, narrow
        listed = run_cli("maintenance", "list", env=env).stdout
        assert "sources alertmanager" in listed and "severities warning" in listed, listed
        by_integration = run_cli(
            "maintenance", "start", "--integration", "scripts", "--for", "1h", "-r", "moving it", env=env
        ).stdout
        assert "MW-3" in by_integration and "integrations scripts" in by_integration, by_integration
        misspelt = run_cli(
            "maintenance", "start", "--integration", "script", "--for", "1h", "-r", "x", env=env, check=False
        )
        assert misspelt.returncode == 1 and "no integration named script" in misspelt.stderr


def test_extending_a_window_moves_its_release(
    api: TestClient, context: AppContext, generic_key: str, responder: dict[str, str], viewer: dict[str, str]
) -> None:
    clock.set(T0)
    worker = Worker(context, name="w1")
    start_window(api, responder, services=["api"], duration="1h")
    held = send(api, generic_key, "api-5xx")
    response = api.post("/api/v1/maintenance/MW-1/extend", json={"by": "30m"}, headers=responder)
    assert response.status_code == 200, response.text
    assert datetime.fromisoformat(response.json()["ends_at"]) == T0 + timedelta(minutes=90)
    # At the old end the release job finds the window still running, and holds on.
    run_at(worker, T0 + timedelta(hours=1, seconds=1))
    assert send(api, generic_key, "api-latency")["incident"] is None
    assert api.get(f"/api/v1/alerts/{held['id']}", headers=viewer).json()["incident"] is None
    run_at(worker, T0 + timedelta(minutes=90, seconds=1))
    assert api.get(f"/api/v1/alerts/{held['id']}", headers=viewer).json()["incident"] == "INC-1"
    assert incident_count(context) == 2

    # Refusals change nothing: an ended window, a window past 7 days, a bad or negative duration, a viewer.
    start_window(api, responder, services=["search"], duration="6d")
    before = windows_and_jobs(context)
    refusals = [
        ("MW-1", {"by": "1h"}, responder, 409),
        ("MW-2", {"by": "2d"}, responder, 422),
        ("MW-2", {"by": "99999999d"}, responder, 422),
        ("MW-2", {"by": "0s"}, responder, 422),
        ("MW-2", {"by": "later"}, responder, 422),
        ("MW-2", {}, responder, 422),
        ("MW-2", {"by": "1h"}, viewer, 403),
        ("MW-7", {"by": "1h"}, responder, 404),
    ]
    for ref, body, headers, status in refusals:
        answer = api.post(f"/api/v1/maintenance/{ref}/extend", json=body, headers=headers)
        assert answer.status_code == status, (ref, body, answer.text)
    assert windows_and_jobs(context) == before


@pytest.mark.parametrize("early", [False, True], ids=["at-its-end", "ended-early"])
def test_an_alert_another_running_window_covers_stays_held_when_its_window_ends(
    api: TestClient,
    context: AppContext,
    generic_key: str,
    responder: dict[str, str],
    viewer: dict[str, str],
    early: bool,
) -> None:
    """Overlapping windows: the first by id holds an alert. When it ends, on time or early, an alert another
    running window covers moves to that window and pages nobody until it ends; the others are routed."""
    clock.set(T0)
    worker = Worker(context, name="w1")
    start_window(api, responder, services=["api"], duration="10m", reason="short")
    start_window(api, responder, labels={"qa": "ov"}, duration="2h", reason="long")
    # Not started yet when the first ends: it holds nothing before it starts.
    later = T0 + timedelta(hours=3)
    start_window(api, responder, services=["api"], starts_at=later.isoformat(), duration="1h", reason="later")
    both = send(api, generic_key, "api-5xx", labels={"qa": "ov"})
    short_only = send(api, generic_key, "api-latency")
    with context.db.read() as session:
        held_by = session.execute(select(Alert.id, Alert.maintenance_window_id).order_by(Alert.id)).all()
    assert [tuple(row) for row in held_by] == [(both["id"], 1), (short_only["id"], 1)]

    if early:
        clock.set(T0 + timedelta(minutes=5))
        assert api.post("/api/v1/maintenance/MW-1/end", headers=responder).status_code == 200
        run_at(worker, T0 + timedelta(minutes=5))
    else:
        run_at(worker, T0 + timedelta(minutes=10, seconds=1))
    # The alert only the first window covered is routed and pages; the other is held by the long window now.
    assert api.get(f"/api/v1/alerts/{short_only['id']}", headers=viewer).json()["incident"] == "INC-1"
    moved = api.get(f"/api/v1/alerts/{both['id']}", headers=viewer).json()
    assert (moved["incident"], moved["maintenance"]) == (None, "MW-2")
    assert incident_count(context) == 1
    assert sent_pages(context, 1) == [("carol", "email", 1, 1)]
    detail = api.get("/api/v1/maintenance/MW-2", headers=viewer).json()
    assert [a["id"] for a in detail["alerts"]] == [both["id"]]
    # A resolve or an acknowledgement by its source still does nothing while the long window runs.
    send(api, generic_key, "api-5xx", labels={"qa": "ov"}, status="acknowledged")
    run_at(worker, T0 + timedelta(hours=1))
    assert incident_count(context) == 1

    # The long window ends: the alert, still open, is routed as a held alert is, and pages.
    run_at(worker, T0 + timedelta(hours=2, seconds=1))
    routed = api.get(f"/api/v1/alerts/{both['id']}", headers=viewer).json()
    assert (routed["incident"], routed["maintenance"]) == ("INC-2", "MW-2")
    notes = [e.action for e in timeline(context, 2) if "during maintenance" in e.action]
    assert len(notes) == 1 and "MW-2 (long)" in notes[0], notes
    # Acknowledged at its source meanwhile: the incident is acknowledged, so nobody is paged for it.
    run_at(worker, T0 + timedelta(hours=2, seconds=2))
    assert api.get("/api/v1/incidents/INC-2", headers=viewer).json()["acknowledged_at"] is not None


def test_the_end_of_a_window_waits_for_the_end_of_another_that_moves_an_alert_to_it(
    context: AppContext,
) -> None:
    """PostgreSQL: MW-1's end moves its alert to MW-2, which is ended at the same moment. MW-2's end must
    wait and then route the alert, not miss it (it would be held by a released window forever)."""
    events = _racing_window(context)
    with context.db.write() as session:
        maintenance.create_window(
            session,
            org=context.org,
            data=MaintenanceCreate(reason="longer", services=["api"], duration=timedelta(hours=2)),
            performer="alice",
        )
        alerts_service.ingest(session, org=context.org, source="generic", events=events)
    ended = threading.Event()

    def end_the_second() -> None:
        with context.db.write() as session:
            maintenance.end_window(session, org=context.org, ref="MW-2", performer="bob")
        ended.set()

    with context.db.write() as session:
        maintenance.end_window(session, org=context.org, ref="MW-1", performer="alice")
        assert session.scalar(select(Alert.maintenance_window_id)) == 2  # moved, not yet committed
        ender = threading.Thread(target=end_the_second)
        ender.start()
        assert not ended.wait(0.5)
    ender.join(10)
    assert ended.is_set()
    with context.db.read() as session:
        alert = session.scalars(select(Alert)).one()
        assert (alert.maintenance_window_id, alert.incident_id) == (2, 1)


def test_a_snooze_made_while_held_reads_as_a_snooze_when_the_window_ends(
    api: TestClient, context: AppContext, generic_key: str, responder: dict[str, str], viewer: dict[str, str]
) -> None:
    """Snoozed (or acknowledged) during the window: when the window ends, the incident's timeline says what
    the person did then, and when; not "acknowledged by hand" as if they had done it at the release."""
    clock.set(T0)
    worker = Worker(context, name="w1")
    start_window(api, responder, services=["api"], duration="1h")
    snoozed = send(api, generic_key, "api-5xx")
    acked = send(api, generic_key, "api-latency")
    clock.set(T0 + timedelta(minutes=10))
    answer = api.post(f"/api/v1/alerts/{snoozed['id']}/snooze", json={"duration": "2h"}, headers=responder)
    assert answer.status_code == 200, answer.text
    assert api.post(f"/api/v1/alerts/{acked['id']}/acknowledge", headers=responder).status_code == 200
    run_at(worker, T0 + timedelta(hours=1, seconds=1))
    actions = [e.action for e in timeline(context, 1)]
    about_snoozed = [a for a in actions if a.startswith(f"Alert ALR-{snoozed['id']} ")]
    assert any(
        a.startswith(f"Alert ALR-{snoozed['id']} snoozed by responder-user until 2026-")
        and "(while it was held)" in a
        for a in about_snoozed
    ), about_snoozed
    assert not any("acknowledged by hand" in a for a in about_snoozed), about_snoozed
    # Each alert its own group, so its own incident: the acknowledged one opened INC-2.
    about_acked = [
        e.action
        for e in timeline(context, 2)
        if e.action.startswith(f"Alert ALR-{acked['id']} acknowledged by hand")
    ]
    assert len(about_acked) == 1 and "(by responder-user at 10:10 UTC, while it was held)" in about_acked[0]
