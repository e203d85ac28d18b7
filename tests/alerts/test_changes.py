"""Change events: deploys and config pushes (PagerDuty's Change Events API or plain JSON), listed on the
timeline of an incident that opens soon after."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from tests.alerts.conftest import make_key
from tests.conftest import EXAMPLE_CONFIG
from tests.e2e.server import run_cli, serve_for_cli
from warroom.alerts.models import ChangeEvent
from warroom.clock import clock
from warroom.context import AppContext
from warroom.incidents.models import TimelineEntry

T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)


def stored(context: AppContext) -> int:
    with context.db.read() as session:
        return session.scalar(select(func.count()).select_from(ChangeEvent)) or 0


def pagerduty_change(key: str, **payload: Any) -> dict[str, Any]:
    return {
        "routing_key": key,
        "payload": {"summary": "Build Success: raise snapshot timeout", **payload},
        "links": [{"href": "https://ci.example.com/build/2", "text": "build 2"}],
    }


def test_a_pagerduty_change_event_is_recorded(api: TestClient, context: AppContext, pd_key: str) -> None:
    clock.set(T0)
    body = pagerduty_change(
        pd_key,
        timestamp="2026-03-02T09:42:58.315+0000",
        source="database",  # a service's name: the change is that service's
        custom_details={"build_state": "passed", "build_number": "2"},
    )
    body["links"].append({"href": "javascript:alert(document.domain)", "text": "not a link"})  # left out
    answer = api.post("/v2/change/enqueue", json=body)
    assert answer.status_code == 202, answer.text
    assert answer.json() == {"status": "success", "message": "Change event processed", "id": "CHG-1"}
    with context.db.read() as session:
        change = session.scalars(select(ChangeEvent)).one()
        assert change.service == "database" and change.source == "database"
        assert change.happened_at == datetime(2026, 3, 2, 9, 42, 58, 315000, tzinfo=UTC)
        assert change.recorded_by == "integration pd-shaped" and change.integration_id == 1
        assert change.details == {"build_state": "passed", "build_number": "2"}
        assert change.links == [{"href": "https://ci.example.com/build/2", "text": "build 2"}]
    # custom_details.service names the service when the source does not; a time without an offset is UTC.
    named = pagerduty_change(
        pd_key, source="jenkins", timestamp="2026-03-02T09:50:00", custom_details={"service": "payments"}
    )
    assert api.post("/v2/change/enqueue", json=named).status_code == 202
    unknown_source = pagerduty_change(pd_key, source="jenkins")
    assert api.post("/v2/change/enqueue", json=unknown_source).status_code == 202
    with context.db.read() as session:
        rows = session.execute(select(ChangeEvent.service, ChangeEvent.happened_at).order_by(ChangeEvent.id))
        assert list(rows)[1:] == [("payments", datetime(2026, 3, 2, 9, 50, tzinfo=UTC)), (None, T0)]


def test_bad_pagerduty_change_events_get_pagerdutys_errors_and_change_nothing(
    api: TestClient, context: AppContext, pd_key: str, generic_key: str
) -> None:
    not_json = api.post("/v2/change/enqueue", content=b"{nope", headers={"content-type": "application/json"})
    assert not_json.status_code == 400 and not_json.json()["status"] == "Unrecognized object"
    no_summary = {"routing_key": pd_key, "payload": {"source": "ci"}}
    refused = api.post("/v2/change/enqueue", json=no_summary)
    assert refused.status_code == 400, refused.text
    assert refused.json()["status"] == "invalid event"
    assert any("payload.summary" in error for error in refused.json()["errors"])
    for body in (
        pagerduty_change(pd_key, summary="   "),
        pagerduty_change(pd_key, timestamp="yesterday"),
        pagerduty_change(pd_key, custom_details=["not", "an", "object"]),
        pagerduty_change(pd_key, timestamp="9999-12-31T23:59:59Z"),
        pagerduty_change(pd_key, timestamp="0001-01-01T00:00:00Z"),
        pagerduty_change(pd_key, custom_details={"service": 7}),
    ):
        assert api.post("/v2/change/enqueue", json=body).status_code == 400, body
    # A service named on purpose but misspelt: refused, not credited to the key's or another service.
    typo = api.post(
        "/v2/change/enqueue", json=pagerduty_change(pd_key, custom_details={"service": "databse"})
    )
    assert typo.status_code == 400 and typo.json()["status"] == "invalid event", typo.text
    assert typo.json()["errors"] == [
        "payload.custom_details.service: unknown service 'databse'; the org file has frontend, api, auth, "
        "payments, database, queue, cache, search"
    ], typo.text
    unknown_key = api.post("/v2/change/enqueue", json=pagerduty_change("not-a-key"))
    assert unknown_key.status_code == 401 and unknown_key.json()["message"]
    assert api.post("/v2/change/enqueue", json=pagerduty_change(generic_key)).status_code == 403
    assert stored(context) == 0


def test_a_pagerduty_change_with_a_nul_or_too_many_links_is_refused_in_pagerdutys_shape(
    api: TestClient, context: AppContext, pd_key: str, responder: dict[str, str]
) -> None:
    """The request guard answered these for Warroom's own API: a NUL got its generic 422, and links were
    unbounded where ``POST /api/v1/changes`` takes 20."""
    nul = api.post("/v2/change/enqueue", content=json.dumps(pagerduty_change(pd_key, summary="a\x00b")))
    assert nul.status_code == 400, nul.text
    assert nul.json()["status"] == "invalid event"
    assert any(error.startswith("payload.summary:") for error in nul.json()["errors"]), nul.text
    link = {"href": "https://ci.example.com/build/2", "text": "build 2"}
    for links in ([link] * 21, [{**link, "text": "t" * 501}], [{**link, "href": link["href"] + "x" * 2000}]):
        refused = api.post("/v2/change/enqueue", json={**pagerduty_change(pd_key), "links": links})
        assert refused.status_code == 400, refused.text
        assert refused.json()["status"] == "invalid event"
        assert any(error.startswith("links") for error in refused.json()["errors"]), refused.text
        by_token = api.post(
            "/api/v1/changes", json={"summary": "deployed", "links": links}, headers=responder
        )
        assert by_token.status_code == 422, by_token.text
    assert stored(context) == 0
    accepted = api.post("/v2/change/enqueue", json={**pagerduty_change(pd_key), "links": [link] * 20})
    assert accepted.status_code == 202, accepted.text


def test_people_and_pipelines_record_changes_with_a_token(
    api: TestClient, context: AppContext, responder: dict[str, str], viewer: dict[str, str]
) -> None:
    clock.set(T0)
    change = {
        "summary": "Raised the connection pool to 200",
        "service": "database",
        "source": "ansible",
        "happened_at": "2026-03-02T09:30:00Z",
        "links": [{"href": "https://git.example.com/ops/pr/41"}],
        "details": {"pr": 41},
    }
    created = api.post("/api/v1/changes", json=change, headers=responder)
    assert created.status_code == 201, created.text
    assert created.json()["ref"] == "CHG-1" and created.json()["recorded_by"] == "responder-user"
    now = api.post("/api/v1/changes", json={"summary": "Flag new-checkout on"}, headers=responder)
    assert datetime.fromisoformat(now.json()["happened_at"]) == T0
    api.post("/api/v1/changes", json={"summary": "Deployed api", "service": "api"}, headers=responder)

    listed = api.get("/api/v1/changes", headers=viewer).json()
    assert [row["ref"] for row in listed["items"]] == ["CHG-3", "CHG-2", "CHG-1"]  # newest first
    assert (listed["total"], listed["limit"], listed["offset"]) == (3, 50, 0)
    database = api.get("/api/v1/changes", params={"service": "database"}, headers=viewer).json()
    assert [row["ref"] for row in database["items"]] == ["CHG-2", "CHG-1"]  # its own, and those naming none
    assert database["total"] == 2
    clock.set(T0 + timedelta(hours=2))
    recent = api.get("/api/v1/changes", params={"since": "1h"}, headers=viewer).json()
    assert recent == {"items": [], "total": 0, "limit": 50, "offset": 0}

    # Refusals change nothing.
    assert api.post("/api/v1/changes", json={"summary": "x"}).status_code == 401
    assert api.post("/api/v1/changes", json={"summary": "x"}, headers=viewer).status_code == 403
    for bad in (
        {"summary": "x", "service": "nowhere"},
        {"summary": "   "},
        {"summary": "x", "happened_at": "2026-03-02T09:30:00"},
        {"summary": "x", "colour": "blue"},
        {"service": "api"},
        # From the future it would be noted on every open incident as happening during it.
        {"summary": "x", "happened_at": "2026-03-02T12:30:00Z"},
        {"summary": "x", "happened_at": "9999-12-31T23:59:59Z"},
        {"summary": "x", "happened_at": "0001-01-01T00:00:00Z"},
        {"summary": "x", "links": [{"href": "javascript:alert(1)"}]},
    ):
        refused = api.post("/api/v1/changes", json=bad, headers=responder)
        assert refused.status_code == 422, (bad, refused.text)
    # An integer beyond 64 bits in free-form details is stored as sent (found by the API fuzz test: a 500).
    huge = {"summary": "Bumped the sequence", "details": {"next": -9223372036854775809}}
    kept = api.post("/api/v1/changes", json=huge, headers=responder)
    assert kept.status_code == 201, kept.text
    assert kept.json()["details"] == {"next": -9223372036854775809}
    for since in ("soon", "0s", "9999999d"):
        assert api.get("/api/v1/changes", params={"since": since}, headers=viewer).status_code == 422, since
    assert stored(context) == 4


def test_the_list_refuses_what_names_nothing_or_is_given_twice(
    api: TestClient, context: AppContext, responder: dict[str, str], viewer: dict[str, str]
) -> None:
    """An unknown service and a repeated ?since= were answered (an empty list, the last value) silently."""
    clock.set(T0)
    assert api.post("/api/v1/changes", json={"summary": "Deployed api"}, headers=responder).status_code == 201
    unknown = api.get("/api/v1/changes", params={"service": "nope"}, headers=viewer)
    assert unknown.status_code == 422, unknown.text
    assert unknown.json()["error"]["message"].startswith("service: unknown service 'nope'; the org file has")
    for query in ("since=24h&since=1h", "service=api&service=api", "limit=5&limit=6"):
        twice = api.get(f"/api/v1/changes?{query}", headers=viewer)
        assert twice.status_code == 422, (query, twice.text)
        name = query.split("=")[0]
        assert twice.json()["error"]["message"] == f"{name} was given 2 times; it takes one value"
    # A service the org file has since dropped still lists the changes stored under it.
    with context.db.write() as session:
        session.add(
            ChangeEvent(
                summary="Moved the old queue",
                service="legacy-queue",
                happened_at=T0,
                recorded_at=T0,
                recorded_by="responder-user",
                details={},
                links=[],
            )
        )
    kept = api.get("/api/v1/changes", params={"service": "legacy-queue"}, headers=viewer)
    assert kept.status_code == 200, kept.text
    assert [row["summary"] for row in kept.json()["items"]] == ["Moved the old queue", "Deployed api"]


def change_notes(context: AppContext, incident: int | str) -> list[TimelineEntry]:
    incident_id = int(str(incident).removeprefix("INC-"))
    with context.db.read() as session:
        entries = session.scalars(
            select(TimelineEntry).where(TimelineEntry.incident_id == incident_id).order_by(TimelineEntry.seq)
        )
        return [entry for entry in entries if entry.action.startswith("Changes in the")]


def test_a_new_incident_lists_the_changes_just_before_it(
    api: TestClient, context: AppContext, generic_key: str, responder: dict[str, str]
) -> None:
    def change(summary: str, minutes_before: int, service: str | None = None) -> None:
        body = {"summary": summary, "happened_at": (T0 - timedelta(minutes=minutes_before)).isoformat()}
        if service:
            body["service"] = service
        assert api.post("/api/v1/changes", json=body, headers=responder).status_code == 201

    clock.set(T0)
    change("Deployed payments 3.1.0", 20, "payments")  # CHG-1
    change("Rotated the PSP credentials\nfor the EU account", 90)  # CHG-2: names no service; two lines
    change("Vacuumed the ledger", 30, "database")  # CHG-3: another service
    change("Deployed payments 3.0.9", 180, "payments")  # CHG-4: before the 2h window
    # Automation opens the incident (rule payments-down: services payments and api).
    fired = api.post(
        f"/api/v1/alerts?key={generic_key}",
        json={"summary": "charges failing", "severity": "critical", "labels": {"service": "payments"}},
    )
    assert fired.json()["alerts"][0]["incident"] == "INC-1"
    [note] = change_notes(context, 1)
    assert note.performer == "automation"
    assert note.action.splitlines() == [
        "Changes in the 2h before this incident:",
        "CHG-1 09:40 UTC: Deployed payments 3.1.0 [payments]",
        # Stored as sent, shown on one line: a line of its own would read as another change.
        "CHG-2 08:30 UTC: Rotated the PSP credentials for the EU account",
    ]
    assert note.data == {"changes": [1, 2]}
    assert api.get("/api/v1/changes", headers=responder).json()["items"][-2]["summary"] == (
        "Rotated the PSP credentials\nfor the EU account"
    )

    # A person declares one on another service: its changes, and those naming none.
    declared = api.post(
        "/api/v1/incidents",
        json={"title": "Ledger slow", "severity": "P3", "services": ["database"]},
        headers=responder,
    )
    assert declared.status_code == 201, declared.text
    [note] = change_notes(context, declared.json()["id"])
    assert [line.split()[0] for line in note.action.splitlines()[1:]] == ["CHG-3", "CHG-2"]

    # With no change in the window, no note.
    clock.set(T0 + timedelta(hours=5))
    quiet = api.post("/api/v1/incidents", json={"title": "x", "severity": "P3"}, headers=responder)
    assert change_notes(context, quiet.json()["id"]) == []


def timeline_actions(context: AppContext, incident: int) -> list[str]:
    with context.db.read() as session:
        entries = session.scalars(
            select(TimelineEntry).where(TimelineEntry.incident_id == incident).order_by(TimelineEntry.seq)
        )
        return [entry.action for entry in entries if entry.action.startswith("Change ")]


def test_a_change_recorded_while_an_incident_is_open_goes_on_its_timeline(
    api: TestClient, context: AppContext, generic_key: str, pd_key: str, responder: dict[str, str]
) -> None:
    clock.set(T0)
    fired = api.post(
        f"/api/v1/alerts?key={generic_key}",
        json={"summary": "charges failing", "severity": "critical", "labels": {"service": "payments"}},
    )
    assert fired.json()["alerts"][0]["incident"] == "INC-1"  # services payments and api

    def change(summary: str, service: str | None = None, happened_at: datetime | None = None) -> list[str]:
        body: dict[str, Any] = {"summary": summary}
        if service:
            body["service"] = service
        if happened_at:
            body["happened_at"] = happened_at.isoformat()
        answer = api.post("/api/v1/changes", json=body, headers=responder)
        assert answer.status_code == 201, answer.text
        noted: list[str] = answer.json()["noted_on"]
        return noted

    clock.set(T0 + timedelta(minutes=10))
    assert change("Rolled back payments to 3.0.9", "payments") == ["INC-1"]  # CHG-1
    assert change("Vacuumed the ledger", "database") == []  # CHG-2: not one of its services
    assert change("Paused the nightly batch\r\n(until the fix)") == ["INC-1"]  # CHG-3: names no service
    # A deploy reported late: it happened before the incident, within the window, and was not listed then.
    assert change("Deployed api 2.14", "api", T0 - timedelta(minutes=30)) == ["INC-1"]  # CHG-4
    assert change("Deployed api 2.13", "api", T0 - timedelta(hours=3)) == []  # CHG-5: long before
    # PagerDuty's shape is noted the same way.
    sent = api.post(
        "/v2/change/enqueue",
        json=pagerduty_change(pd_key, source="ci", custom_details={"service": "payments"}),
    )
    assert sent.status_code == 202 and sent.json()["id"] == "CHG-6"
    assert timeline_actions(context, 1) == [
        "Change during this incident, recorded now: CHG-1 10:10 UTC: Rolled back payments to 3.0.9"
        " [payments]",
        "Change during this incident, recorded now: CHG-3 10:10 UTC: Paused the nightly batch"
        " (until the fix)",
        "Change 30m before this incident opened, recorded now: CHG-4 09:30 UTC: Deployed api 2.14 [api]",
        "Change during this incident, recorded now: CHG-6 10:10 UTC: Build Success: raise snapshot timeout"
        " [payments] [ci]",
    ]

    # An incident declared with no service gets the changes naming none; one naming a service goes only on
    # that service's incidents (README: "each open incident of its service").
    declared = api.post("/api/v1/incidents", json={"title": "Odd", "severity": "P3"}, headers=responder)
    assert declared.status_code == 201, declared.text
    assert change("Deployed search 1.2", "search") == []
    assert change("Flipped a flag") == ["INC-1", "INC-2"]
    # A resolved incident's timeline is left alone.
    for ref in ("INC-1", "INC-2"):
        resolved = api.patch(f"/api/v1/incidents/{ref}", json={"status": "resolved"}, headers=responder)
        assert resolved.status_code == 200, resolved.text
    clock.set(T0 + timedelta(hours=1))
    assert change("Deployed payments 3.1.1", "payments") == []


def test_the_changes_around_an_incident(
    api: TestClient, context: AppContext, generic_key: str, responder: dict[str, str], viewer: dict[str, str]
) -> None:
    def change(summary: str, service: str | None, at: datetime) -> None:
        body = {"summary": summary, "service": service, "happened_at": at.isoformat()}
        assert api.post("/api/v1/changes", json=body, headers=responder).status_code == 201

    clock.set(T0)
    change("Deployed payments 3.0.9", "payments", T0 - timedelta(hours=3))  # CHG-1: before the window
    change("Deployed payments 3.1.0", "payments", T0 - timedelta(minutes=20))  # CHG-2
    change("Vacuumed the ledger", "database", T0 - timedelta(minutes=10))  # CHG-3: another service
    fired = api.post(
        f"/api/v1/alerts?key={generic_key}",
        json={"summary": "charges failing", "severity": "critical", "labels": {"service": "payments"}},
    )
    assert fired.json()["alerts"][0]["incident"] == "INC-1"
    clock.set(T0 + timedelta(minutes=15))
    change("Rolled back payments", "payments", T0 + timedelta(minutes=15))  # CHG-4
    change("Paused the batch", None, T0 + timedelta(minutes=14))  # CHG-5
    resolved = api.patch("/api/v1/incidents/INC-1", json={"status": "resolved"}, headers=responder)
    assert resolved.status_code == 200, resolved.text
    clock.set(T0 + timedelta(hours=1))
    change("Deployed payments 3.1.1", "payments", T0 + timedelta(hours=1))  # CHG-6: after it was resolved

    def around(incident: str) -> list[str]:
        answer = api.get("/api/v1/changes", params={"incident": incident}, headers=viewer)
        assert answer.status_code == 200, answer.text
        assert answer.json()["total"] == len(answer.json()["items"])
        return [row["ref"] for row in answer.json()["items"]]

    assert around("INC-1") == ["CHG-4", "CHG-5", "CHG-2"]
    assert around("1") == ["CHG-4", "CHG-5", "CHG-2"]
    # Reopened, it is open-ended again.
    reopened = api.patch("/api/v1/incidents/INC-1", json={"status": "investigating"}, headers=responder)
    assert reopened.status_code == 200, reopened.text
    assert around("INC-1") == ["CHG-6", "CHG-4", "CHG-5", "CHG-2"]

    assert api.get("/api/v1/changes", params={"incident": "INC-9"}, headers=viewer).status_code == 404
    assert api.get("/api/v1/changes", params={"incident": "nine"}, headers=viewer).status_code == 404
    for extra in ({"service": "api"}, {"since": "2h"}):
        refused = api.get("/api/v1/changes", params={"incident": "INC-1", **extra}, headers=viewer)
        assert refused.status_code == 422 and "incident cannot be combined" in refused.text, refused.text
    assert api.get("/api/v1/changes", params={"incident": "INC-1"}).status_code == 401


def test_the_note_can_be_turned_off(api: TestClient, context: AppContext, responder: dict[str, str]) -> None:
    automation = context.org.automation.model_copy(update={"recent_changes_window": timedelta(0)})
    context.org = context.org.model_copy(update={"automation": automation})
    api.post("/api/v1/changes", json={"summary": "Deployed api"}, headers=responder)
    declared = api.post("/api/v1/incidents", json={"title": "x", "severity": "P3"}, headers=responder)
    assert change_notes(context, declared.json()["id"]) == []


def test_a_pagerduty_change_needs_a_pagerduty_key(api: TestClient, context: AppContext) -> None:
    heartbeat_key = make_key(context, "heartbeat", "hb")
    assert api.post("/v2/change/enqueue", json=pagerduty_change(heartbeat_key)).status_code == 403


@pytest.mark.e2e
def test_changes_cli(tmp_path: Path) -> None:
    with serve_for_cli(EXAMPLE_CONFIG, tmp_path, token_name="changes-e2e", role="responder") as env:
        recorded = run_cli(
            "changes",
            "record",
            "Deployed checkout 2.14.0",
            "--service",
            "api",
            "--source",
            "argo",
            "--link",
            "https://argo.example.com/app/checkout",
            env=env,
        )
        assert "recorded CHG-1" in recorded.stdout
        run_cli("incident", "create", "Checkout errors", "--severity", "P2", "--service", "api", env=env)
        rollback = run_cli("changes", "record", "Rolled back checkout", "--service", "api", env=env)
        assert "recorded CHG-2; on the timeline of INC-1" in rollback.stdout
        around = run_cli("changes", "list", "--incident", "INC-1", env=env).stdout
        assert "Changes around INC-1 (2 of 2)" in around and "CHG-2" in around and "CHG-1" in around
        mixed = run_cli("changes", "list", "--incident", "INC-1", "--since", "2h", env=env, check=False)
        assert mixed.returncode == 2 and "cannot be combined" in mixed.stderr
        listed = run_cli("changes", "list", env=env).stdout
        assert "CHG-1" in listed and "Deployed checkout 2.14.0" in listed and "argo" in listed
        rows = json.loads(run_cli("changes", "list", "--service", "database", "--json", env=env).stdout)
        assert (rows["items"], rows["total"]) == ([], 0)
        # A service that names nothing, and a period given twice, are refused rather than answered.
        unknown = run_cli("changes", "list", "--service", "nope", env=env, check=False)
        assert unknown.returncode == 1 and "unknown service 'nope'" in unknown.stderr, unknown.stderr
        twice = run_cli("changes", "list", "--since", "24h", "--since", "1h", env=env, check=False)
        assert twice.returncode == 2 and "--since was given twice" in twice.stderr, twice.stderr
        # A summary sent with a line break is one row of the table, not two.
        run_cli("changes", "record", "Bumped libssl\nand restarted nginx", "--service", "api", env=env)
        wide = {**env, "COLUMNS": "200"}
        table = run_cli("changes", "list", env=wide).stdout
        assert "Bumped libssl and restarted nginx" in table, table
        refused = run_cli("changes", "record", "x", "--service", "nowhere", env=env, check=False)
        assert refused.returncode == 1 and "unknown service 'nowhere'" in refused.stderr
        bad_time = run_cli("changes", "record", "x", "--at", "tuesday", env=env, check=False)
        assert bad_time.returncode == 2 and "ISO 8601" in bad_time.stderr
