"""The on-call HTTP API: who is on call, shifts, overrides, listings, bad input."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import event
from typer.testing import CliRunner

from warroom.cli.main import app
from warroom.clock import clock
from warroom.context import AppContext

MONDAY = "2026-03-02T10:00:00Z"  # week 8: platform-primary carol, platform-secondary alice


def test_who_is_on_call_for_every_schedule(api: TestClient, viewer: dict[str, str]) -> None:
    response = api.get("/api/v1/oncall", params={"at": MONDAY}, headers=viewer)
    assert response.status_code == 200, response.text
    rows = {r["schedule"]: r for r in response.json()}
    assert set(rows) == {"platform-primary", "platform-secondary", "payments-primary"}
    primary = rows["platform-primary"]
    assert (primary["person"], primary["display_name"]) == ("carol", "Carol Wagner")
    assert primary["shift"]["start"].startswith("2026-03-02T08:00:00")  # 09:00 Berlin
    assert primary["shift"]["source"] == "layer:berlin-weekly"
    assert rows["platform-secondary"]["person"] == "alice"
    # 13:00 in New York on a weekday: the office-hours layer wins.
    ny = api.get(
        "/api/v1/oncall",
        params={"at": "2026-03-02T13:00:00-05:00", "schedule": "platform-primary"},
        headers=viewer,
    ).json()
    assert [(r["person"], r["shift"]["source"]) for r in ny] == [("dave", "layer:new-york-office-hours")]


def test_who_is_on_call_reads_every_schedules_overrides_at_once(
    api: TestClient, context: AppContext, viewer: dict[str, str], responder: dict[str, str]
) -> None:
    """Every schedule's runtime overrides come from one query (there was one a schedule: 83 queries for an org
    file of 83 schedules, on every poll), and each still lands on its own schedule only."""
    clock.set(datetime(2026, 3, 2, 9, tzinfo=UTC))
    window = {"start": "2026-03-02T09:30:00Z", "end": "2026-03-02T11:00:00Z"}
    for schedule, person in [("platform-primary", "frank"), ("payments-primary", "alice")]:
        created = api.post(
            f"/api/v1/oncall/{schedule}/overrides", json={"person": person, **window}, headers=responder
        )
        assert created.status_code == 201, created.text
    statements: list[str] = []

    def seen(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(statement)

    event.listen(context.db.engine, "before_cursor_execute", seen)
    try:
        rows = api.get("/api/v1/oncall", params={"at": MONDAY}, headers=viewer).json()
    finally:
        event.remove(context.db.engine, "before_cursor_execute", seen)
    people = {r["schedule"]: (r["person"], r["shift"]["source"]) for r in rows}
    assert people == {
        "platform-primary": ("frank", "override"),
        "platform-secondary": ("alice", "layer:weekly"),
        "payments-primary": ("alice", "override"),
    }
    assert len([s for s in statements if "schedule_overrides" in s]) == 1, statements


def test_defaults_to_now(api: TestClient, viewer: dict[str, str]) -> None:
    clock.set(datetime(2026, 3, 2, 10, tzinfo=UTC))
    rows = api.get("/api/v1/oncall", params={"schedule": "platform-primary"}, headers=viewer).json()
    assert rows[0]["person"] == "carol" and rows[0]["at"].startswith("2026-03-02T10:00:00")


def test_shifts(api: TestClient, viewer: dict[str, str]) -> None:
    response = api.get(
        "/api/v1/oncall/platform-secondary/shifts", params={"count": 4, "after": MONDAY}, headers=viewer
    )
    assert response.status_code == 200, response.text
    shifts = response.json()
    assert [s["person"] for s in shifts] == ["alice", "bob", "carol", "alice"]
    # The Berlin spring-forward week (29 March) is an hour shorter in UTC.
    durations = [datetime.fromisoformat(s["end"]) - datetime.fromisoformat(s["start"]) for s in shifts]
    assert durations == [timedelta(days=7)] * 3 + [timedelta(days=7, hours=-1)]


def test_bad_queries(api: TestClient, viewer: dict[str, str]) -> None:
    cases = [
        ("/api/v1/oncall", {"at": "2026-03-02T10:00:00"}, 422, "at"),
        ("/api/v1/oncall", {"at": "yesterday"}, 422, "at"),
        ("/api/v1/oncall", {"at": "9999-12-31T23:59:59Z"}, 422, "between 1970 and 2200"),
        # No UTC instant at all (was a 500, an OverflowError)
        ("/api/v1/oncall", {"at": "0001-01-01T00:00:00+14:00"}, 422, "between 1970 and 2200"),
        ("/api/v1/oncall", {"at": "9999-12-31T23:59:59-14:00"}, 422, "between 1970 and 2200"),
        ("/api/v1/oncall/platform-primary/shifts", {"after": "0001-01-01T00:00:00Z"}, 422, "after"),
        ("/api/v1/oncall", {"schedule": "nope"}, 404, "nope"),
        ("/api/v1/oncall/nope/shifts", {}, 404, "platform-primary"),
        ("/api/v1/oncall/platform-primary/shifts", {"count": 0}, 422, "count"),
        ("/api/v1/oncall/platform-primary/shifts", {"count": 100000}, 422, "count"),
    ]
    for path, params, status, mention in cases:
        response = api.get(path, params=params, headers=viewer)
        assert response.status_code == status, (path, params, response.text)
        assert mention in response.json()["error"]["message"], response.text
    assert api.get("/api/v1/oncall").status_code == 401


def test_overrides_lifecycle(api: TestClient, viewer: dict[str, str], responder: dict[str, str]) -> None:
    clock.set(datetime(2026, 3, 2, 9, tzinfo=UTC))
    body = {
        "person": "frank",
        "start": "2026-03-02T11:00:00+01:00",
        "end": "2026-03-02T15:00:00+01:00",
        "reason": "carol at the dentist",
    }
    path = "/api/v1/oncall/platform-primary/overrides"
    assert api.post(path, json=body, headers=viewer).status_code == 403
    created = api.post(path, json=body, headers=responder)
    assert created.status_code == 201, created.text
    override = created.json()
    assert override["created_by"] == "responder-user" and override["starts_at"].startswith("2026-03-02T10:00")
    now = api.get(
        "/api/v1/oncall", params={"at": MONDAY, "schedule": "platform-primary"}, headers=viewer
    ).json()
    assert now[0]["person"] == "frank"
    assert now[0]["shift"]["source"] == "override" and now[0]["shift"]["override_id"] == override["id"]
    shifts = api.get(
        "/api/v1/oncall/platform-primary/shifts",
        params={"count": 3, "after": "2026-03-02T09:00:00Z"},
        headers=viewer,
    ).json()
    assert [s["person"] for s in shifts] == ["carol", "frank", "carol"]
    listed = api.get(path, headers=viewer).json()
    assert [o["id"] for o in listed] == [override["id"]]
    deleted = api.delete(f"{path}/{override['id']}", headers=responder)
    assert deleted.status_code == 200
    assert api.delete(f"{path}/{override['id']}", headers=responder).status_code == 404
    assert api.get(path, headers=viewer).json() == []
    after = api.get("/api/v1/oncall", params={"at": MONDAY, "schedule": "platform-primary"}, headers=viewer)
    assert after.json()[0]["person"] == "carol"


def test_bad_overrides_change_nothing(api: TestClient, responder: dict[str, str]) -> None:
    clock.set(datetime(2026, 3, 2, 9, tzinfo=UTC))
    path = "/api/v1/oncall/platform-primary/overrides"
    good = {"person": "frank", "start": "2026-03-02T10:00:00Z", "end": "2026-03-02T12:00:00Z"}
    cases = [
        ({**good, "person": "mallory"}, 422, "person"),
        ({**good, "end": "2026-03-02T09:00:00Z"}, 422, "end must be after start"),
        ({**good, "start": "2026-03-02T10:00:00"}, 422, "start"),
        ({**good, "extra": 1}, 422, "extra"),
        ({**good, "end": "9999-12-31T00:00:00Z"}, 422, "end must be between"),
        ({**good, "start": "0001-01-01T00:00:00+14:00"}, 422, "start must be between"),
        ({**good, "end": "9999-12-31T23:59:59-14:00"}, 422, "end must be between"),
        ({"person": "frank"}, 422, "start"),
        # The limits of a maintenance window: over before it is made, a year for a day, far ahead.
        (
            {**good, "start": "2020-12-07T10:00:00Z", "end": "2020-12-07T11:00:00Z"},
            422,
            "the override would already be over",
        ),
        ({**good, "start": "2026-03-01T10:00:00Z", "end": "2026-03-02T09:00:00Z"}, 422, "already be over"),
        ({**good, "end": "2036-03-02T12:00:00Z"}, 422, "an override lasts at most 31d (this one would last"),
        ({**good, "end": "2026-04-02T10:00:01Z"}, 422, "at most 31d"),
        (
            {**good, "start": "2026-06-01T09:00:01Z", "end": "2026-06-01T12:00:00Z"},
            422,
            "start may be at most 90d ahead",
        ),
    ]
    for body, status, mention in cases:
        response = api.post(path, json=body, headers=responder)
        assert response.status_code == status, (body, response.text)
        assert mention in response.text
    assert api.post("/api/v1/oncall/nope/overrides", json=good, headers=responder).status_code == 404
    assert api.get(path, params={"include_past": True}, headers=responder).json() == []
    # At the limits: begun already but still running, exactly 31 days, exactly 90 days ahead.
    for start, end in [
        ("2026-03-02T08:00:00Z", "2026-03-02T09:00:01Z"),
        ("2026-03-02T10:00:00Z", "2026-04-02T10:00:00Z"),
        ("2026-05-31T09:00:00Z", "2026-05-31T12:00:00Z"),
    ]:
        answer = api.post(path, json={**good, "start": start, "end": end}, headers=responder)
        assert answer.status_code == 201, answer.text


def test_listings(api: TestClient, viewer: dict[str, str], responder: dict[str, str]) -> None:
    people = {p["name"]: p for p in api.get("/api/v1/people", headers=viewer).json()}
    alice = people["alice"]
    assert alice["teams"] == ["platform"]
    assert [(r["channel"], r["delay_seconds"]) for r in alice["notification_rules"]] == [
        ("email", 0),
        ("webhook", 120),
    ]
    # A viewer does not see where people are paged (a webhook URL may hold a secret), nor their phones.
    assert people["bob"]["notification_rules"] == [
        {"channel": "email", "to": None, "delay_seconds": 0, "contact": None}
    ]
    assert all(method["to"] is None for person in people.values() for method in person["contact_methods"])
    assert all(person["phone"] is None for person in people.values())
    seen = {p["name"]: p for p in api.get("/api/v1/people", headers=responder).json()}
    assert seen["bob"]["notification_rules"][0]["to"] == "bob@acme.example"
    assert any(method["to"] for person in seen.values() for method in person["contact_methods"])
    teams = {t["name"]: t for t in api.get("/api/v1/teams", headers=viewer).json()}
    assert teams["platform"]["manager"] == "grace"
    schedules = api.get("/api/v1/schedules", headers=viewer).json()
    assert schedules[0]["layers"][1]["restricted"] is True
    policies = {p["name"]: p for p in api.get("/api/v1/escalation-policies", headers=viewer).json()}
    assert policies["platform-escalation"]["steps"][0] == {
        "targets": ["on call for platform-primary"],
        "delay_seconds": 600,
    }
    assert policies["platform-escalation"]["repeat"] == 2


def test_incident_pages_listing(api: TestClient, responder: dict[str, str], viewer: dict[str, str]) -> None:
    created = api.post(
        "/api/v1/incidents", json={"title": "x", "severity": "P1", "services": ["api"]}, headers=responder
    ).json()
    listing = api.get(f"/api/v1/incidents/{created['id']}/pages", headers=responder)
    assert listing.status_code == 200
    assert listing.json() == {"incident": created["id"], "escalations": [], "pages": []}  # worker not run yet
    assert api.get("/api/v1/incidents/INC-999/pages", headers=responder).status_code == 404
    assert api.get(f"/api/v1/incidents/{created['id']}/pages", headers=viewer).status_code == 403


def test_who_at_another_moment_dates_its_times(
    api: TestClient, responder: dict[str, str], oncall_cli: CliRunner
) -> None:
    """``who --at`` tomorrow showed a shift that began today as "since 15:57" under "On call at <tomorrow>
    15:00": the short time was today's, read as the asked-for day's (after the asked-for time)."""
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    start = now - timedelta(minutes=1)  # today (the real today: the one a short time is relative to)
    body = {"person": "bob", "start": start.isoformat(), "end": (now + timedelta(days=2)).isoformat()}
    assert (
        api.post("/api/v1/oncall/platform-primary/overrides", json=body, headers=responder).status_code == 201
    )
    asked = (now + timedelta(days=1)).isoformat()
    for columns in (80, 200):
        result = oncall_cli.invoke(
            app, ["oncall", "who", "-s", "platform-primary", "--at", asked], env={"COLUMNS": str(columns)}
        )
        assert result.exit_code == 0, result.output
        assert "bob" in result.stdout, result.stdout
        # Short (80 columns) or full, the since time carries its day.
        day = start.astimezone().strftime("%b %d" if columns == 80 else "%Y-%m-%d")
        assert day in result.stdout, (columns, result.stdout)
    # Now, a short time today is still just the time.
    result = oncall_cli.invoke(app, ["oncall", "who", "-s", "platform-primary"], env={"COLUMNS": "80"})
    assert result.exit_code == 0 and start.astimezone().strftime("%b %d") not in result.stdout, result.stdout
