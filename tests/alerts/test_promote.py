"""Promoting an alert that has resolved: refused with when it resolved, unless forced."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from tests.alerts.test_holds import cli_through, fire
from tests.alerts.test_maintenance import T0
from tests.alerts.test_source_ack import run_at, sent_pages, timeline
from warroom.cli.main import app
from warroom.clock import clock
from warroom.context import AppContext
from warroom.incidents.models import Incident
from warroom.jobs.worker import Worker


def incidents(context: AppContext) -> int:
    with context.db.read() as session:
        return session.scalar(select(func.count()).select_from(Incident)) or 0


def promote(api: TestClient, ref: int, headers: dict[str, str], **body: Any) -> Any:
    return api.post(f"/api/v1/alerts/{ref}/promote", json=body, headers=headers)


def test_a_resolved_alert_is_promoted_only_when_forced(
    api: TestClient,
    context: AppContext,
    generic_key: str,
    responder: dict[str, str],
    tokens: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock.set(T0)
    disk = fire(api, generic_key, "DiskFull", "warning")  # pages nobody in the example: unrouted
    assert disk["incident"] is None
    clock.set(T0 + timedelta(minutes=5))
    fire(api, generic_key, "DiskFull", "warning", status="resolved")

    refused = promote(api, disk["id"], responder)
    assert refused.status_code == 409, refused.text
    error = refused.json()
    assert f"ALR-{disk['id']} resolved at 2026-03-02 10:05 UTC by its source (generic)" in refused.text
    assert "--force" in refused.text
    assert "2026-03-02T10:05:00" in str(error)
    assert incidents(context) == 0  # the refusal opened nothing

    runner = cli_through(api, tokens["responder"], monkeypatch)
    said = runner.invoke(app, ["alerts", "promote", str(disk["id"])], env={"COLUMNS": "250"})
    assert said.exit_code == 1
    assert f"ALR-{disk['id']} resolved at 2026-03-02 10:05 UTC" in said.output and "--force" in said.output
    assert incidents(context) == 0

    forced = runner.invoke(app, ["alerts", "promote", str(disk["id"]), "--force"], env={"COLUMNS": "250"})
    assert forced.exit_code == 0, forced.output
    assert f"ALR-{disk['id']} promoted to INC-1" in forced.output
    incident = api.get("/api/v1/incidents/INC-1", headers=responder).json()
    assert incident["status"] == "resolved"  # opened for the record: its problem is over
    timeline = api.get("/api/v1/incidents/INC-1/timeline", headers=responder).json()["items"]
    attached = [e["action"] for e in timeline if e["action"].startswith(f"Alert ALR-{disk['id']}")]
    assert attached and attached[0].endswith(
        "; it had resolved at 2026-03-02 10:05 UTC by its source (generic), "
        "and responder-user promoted it anyway"
    ), attached


def test_a_resolved_alert_on_an_incident_needs_force_and_move(
    api: TestClient, context: AppContext, generic_key: str, responder: dict[str, str]
) -> None:
    clock.set(T0)
    errors = fire(api, generic_key, "ApiErrors", "critical")
    assert errors["incident"] == "INC-1"
    answer = api.post(f"/api/v1/alerts/{errors['id']}/resolve", headers=responder)
    assert answer.status_code == 200, answer.text

    refused = promote(api, errors["id"], responder, move=True)
    assert refused.status_code == 409 and "by responder-user" in refused.text and "force" in refused.text
    not_moved = promote(api, errors["id"], responder, force=True)
    assert not_moved.status_code == 409 and "already on INC-1" in not_moved.text
    assert incidents(context) == 1
    moved = promote(api, errors["id"], responder, force=True, move=True)
    assert moved.status_code == 201, moved.text
    assert moved.json()["incident"] == "INC-2"
    # A firing alert needs no force; force on it changes nothing.
    cold = fire(api, generic_key, "CacheCold", "info", labels={"alertname": "CacheCold"})
    assert promote(api, cold["id"], responder, force=True).json()["incident"] == "INC-3"


def test_a_summary_with_line_breaks_is_one_line_on_the_timeline(
    api: TestClient, context: AppContext, generic_key: str, responder: dict[str, str]
) -> None:
    """A sender's line breaks laid out lines on the timeline that passed for entries of their own."""
    sent = {"summary": "line1\nFAKE ROW │ ALR-1 │ resolved\r\nthird", "severity": "info"}
    answer = api.post(f"/api/v1/alerts?key={generic_key}", json=sent)
    [alert] = answer.json()["alerts"]
    promoted = promote(api, alert["id"], responder)
    assert promoted.status_code == 201, promoted.text
    entries = [entry.action for entry in timeline(context)]
    attached = next(action for action in entries if "attached" in action)
    assert attached.endswith("attached: line1 FAKE ROW │ ALR-1 │ resolved third"), attached
    assert "\n" not in "".join(entries)


def test_a_blank_resolve_or_merge_note_is_refused(
    api: TestClient, context: AppContext, generic_key: str, responder: dict[str, str]
) -> None:
    """A resolve note of spaces was stored (an alert's own note refuses one); nothing changes."""
    sent = api.post(f"/api/v1/alerts?key={generic_key}", json={"summary": "disk full", "severity": "info"})
    alert = sent.json()["alerts"][0]["id"]
    blank = api.post(f"/api/v1/alerts/{alert}/resolve", json={"note": "   "}, headers=responder)
    assert blank.status_code == 422 and blank.json()["error"]["details"][0]["field"] == "note", blank.text
    assert api.get(f"/api/v1/alerts/{alert}", headers=responder).json()["status"] == "firing"
    merged = api.post("/api/v1/incidents/INC-1/merge", json={"into": "INC-2", "note": " "}, headers=responder)
    assert merged.status_code == 422, merged.text


@pytest.mark.parametrize("taken", ["acknowledge", "snooze"])
def test_an_alert_someone_took_on_opens_an_acknowledged_incident_that_pages_nobody(
    api: TestClient, context: AppContext, generic_key: str, responder: dict[str, str], taken: str
) -> None:
    """Promoting an alert a responder had acknowledged (or snoozed) paged the on-call all the same."""
    clock.set(T0)
    disk = fire(api, generic_key, "DiskFull", "warning")  # unrouted in the example
    body = {"duration": "1h"} if taken == "snooze" else None
    assert api.post(f"/api/v1/alerts/{disk['id']}/{taken}", json=body, headers=responder).status_code == 200
    assert promote(api, disk["id"], responder, severity="P1").status_code in (200, 201)
    incident = api.get("/api/v1/incidents/INC-1", headers=responder).json()
    assert incident["acknowledged_by"] == "responder-user", incident
    run_at(Worker(context, name="w1"), T0 + timedelta(minutes=30))
    assert sent_pages(context) == []


def test_an_alert_is_not_moved_off_a_closed_incident(
    api: TestClient, context: AppContext, generic_key: str, responder: dict[str, str]
) -> None:
    """Promoting or attaching moved an alert off a closed incident and wrote on its final record."""
    clock.set(T0)
    disk = fire(api, generic_key, "DiskFull", "warning")
    assert promote(api, disk["id"], responder, severity="P3").status_code in (200, 201)
    for status in ("resolved", "closed"):
        changed = api.patch("/api/v1/incidents/INC-1", json={"status": status}, headers=responder)
        assert changed.status_code == 200, changed.text
    before = len(api.get("/api/v1/incidents/INC-1/timeline", headers=responder).json()["items"])
    moved = promote(api, disk["id"], responder, move=True, force=True)
    assert moved.status_code == 409 and "INC-1, which is closed" in moved.text, moved.text
    other = api.post("/api/v1/incidents", json={"title": "db1", "severity": "P3"}, headers=responder).json()
    attached = api.post(
        f"/api/v1/alerts/{disk['id']}/attach", json={"incident": other["id"]}, headers=responder
    )
    assert attached.status_code == 409 and "which is closed" in attached.text, attached.text
    assert len(api.get("/api/v1/incidents/INC-1/timeline", headers=responder).json()["items"]) == before
    assert api.get(f"/api/v1/alerts/{disk['id']}", headers=responder).json()["incident"] == "INC-1"
    assert incidents(context) == 2  # the refused promotion opened nothing
