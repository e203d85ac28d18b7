"""The dry run (``config test-alert --server``, ``POST /api/v1/alerts/preview``) predicts what intake does
with a repeat of an open alert: a more severe one on no incident runs the rules again (it opens an
incident and pages), and a firing that joins an incident in monitoring moves it back and pages again."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from tests.alerts.conftest import make_key
from tests.oncall.test_paging import T0, run_at, sent, timeline
from warroom.alerts.models import Alert
from warroom.alerts.schemas import RoutingPreview
from warroom.cli import main as cli_main
from warroom.clock import clock
from warroom.context import AppContext
from warroom.incidents.models import Incident, IncidentStatus
from warroom.jobs.worker import Worker
from warroom.oncall import service as oncall_service

API_5XX = {
    "summary": "api 5xx above 5%",
    "severity": "critical",
    "labels": {"service": "api", "alertname": "Api5xx"},
    "dedup_key": "api-5xx",
}


def held_in_monitoring(
    api: TestClient, context: AppContext, resolved_after: timedelta
) -> tuple[Callable[..., None], Worker, Incident]:
    """``API_5XX`` fired at T0 (its incident opens and pages step 1 of platform-escalation), then resolved
    ``resolved_after`` later: the incident is in monitoring, its escalation held. Returns how to fire it again
    (with fields changed), the worker, and the incident."""
    key = make_key(context, "generic", "scripts")

    def fire(**fields: Any) -> None:
        response = api.post(f"/api/v1/alerts?key={key}", json=API_5XX | fields)
        assert response.status_code == 202, response.text

    clock.set(T0)
    worker = Worker(context, name="w1")
    fire()
    run_at(worker, T0)
    clock.set(T0 + resolved_after)
    fire(status="resolved")
    run_at(worker, T0 + resolved_after)
    with context.db.read() as session:
        [incident] = session.scalars(select(Incident))
        assert incident.status == IncidentStatus.monitoring
    return fire, worker, incident


def cert(severity: str) -> dict[str, Any]:
    return {"summary": "cert expiring", "severity": severity, "dedup_key": "cert1"}


def test_a_more_severe_repeat_on_no_incident_is_shown_running_the_rules_again(
    api: TestClient,
    context: AppContext,
    generic_key: str,
    viewer: dict[str, str],
    capsys: pytest.CaptureFixture[str],
) -> None:
    def preview(body: Any) -> dict[str, Any]:
        response = api.post("/api/v1/alerts/preview", json=body, headers=viewer)
        assert response.status_code == 200, response.text
        [shown] = response.json()
        return shown  # type: ignore[no-any-return]

    def said(shown: dict[str, Any]) -> str:
        cli_main._print_preview(RoutingPreview.model_validate(shown))
        return " ".join(capsys.readouterr().out.split())

    fired = api.post(f"/api/v1/alerts?key={generic_key}", json=cert("warning"))
    assert fired.status_code == 202, fired.text
    with context.db.read() as session:
        [alert] = session.scalars(select(Alert))
        assert alert.incident_id is None and alert.rules is None  # unrouted

    # The same severity again: an update, the rules do not run.
    same = preview(cert("warning") | {"summary": "cert expiring soon"})
    assert same["open_alert"] == "ALR-1" and same["rules_run_again"] is False
    assert "run again only if it comes more severe" in said(same)

    worse = preview(cert("critical"))
    assert worse["open_alert"] == "ALR-1" and worse["open_alert_severity"] == "warning"
    assert worse["rules_run_again"] is True
    assert worse["incident"]["rule"] == "critical-monitoring"
    assert worse["incident"]["open_incident"] is None
    assert worse["incident"]["page"] == ["platform-escalation"]
    text = said(worse)
    assert "updates the open alert ALR-1" in text, text
    assert "makes it critical (was warning)" in text and "the rules run again" in text, text
    assert "(rule critical-monitoring)" in text and "page: platform-escalation" in text, text

    # As predicted: the real delivery opens the incident and pages.
    fired = api.post(f"/api/v1/alerts?key={generic_key}", json=cert("critical"))
    assert fired.status_code == 202, fired.text
    with context.db.read() as session:
        [incident] = session.scalars(select(Incident))
        [alert] = session.scalars(select(Alert))
        assert alert.incident_id == incident.id
    # On its incident now: a repeat no longer runs the rules.
    again = preview(cert("critical") | {"summary": "cert expiring today"})
    assert again["rules_run_again"] is False
    assert "run again only if" in said(again)


def test_a_firing_that_joins_an_incident_in_monitoring_is_shown_moving_it_back_and_paging_again(
    api: TestClient,
    context: AppContext,
    viewer: dict[str, str],
    capsys: pytest.CaptureFixture[str],
) -> None:
    fire, worker, incident = held_in_monitoring(api, context, resolved_after=timedelta(minutes=5))

    clock.set(T0 + timedelta(hours=1))
    response = api.post("/api/v1/alerts/preview", json=API_5XX, headers=viewer)
    assert response.status_code == 200, response.text
    [shown] = response.json()
    joining = shown["incident"]
    assert joining["open_incident"] == incident.ref
    assert joining["back_to_investigating"] is True
    assert joining["resumes"] == ["platform-escalation at step 1"]
    cli_main._print_preview(RoutingPreview.model_validate(shown))
    text = " ".join(capsys.readouterr().out.split())
    assert f"{incident.ref} goes back from monitoring to investigating (the fix did not hold)" in text, text
    assert "its held escalation pages again (platform-escalation at step 1)" in text, text
    assert "nobody is paged again" not in text, text

    # As predicted: back to investigating, and step 1 is paged again.
    fire()
    run_at(worker, T0 + timedelta(hours=1))
    with context.db.read() as session:
        assert session.get(Incident, incident.id).status == IncidentStatus.investigating  # type: ignore[union-attr]
    assert ("carol", "email", 2, 1) in sent(context, incident.id)


@pytest.mark.parametrize("back_after", [timedelta(minutes=2), timedelta(hours=1)])
def test_the_dry_run_and_the_delivery_agree_on_paging_a_held_step_again(
    api: TestClient,
    context: AppContext,
    viewer: dict[str, str],
    capsys: pytest.CaptureFixture[str],
    back_after: timedelta,
) -> None:
    """A step paged less than its delay ago is not paged again when the incident comes back (an alert
    flapping): the dry run said it was."""
    delay = oncall_service.get_policy(context.org, "platform-escalation").steps[0].delay
    assert timedelta(minutes=2) < delay < timedelta(hours=1)
    fire, worker, incident = held_in_monitoring(api, context, resolved_after=timedelta(minutes=1))
    before = sent(context, incident.id)
    assert ("carol", "email", 1, 1) in before

    clock.set(T0 + back_after)
    response = api.post("/api/v1/alerts/preview", json=API_5XX, headers=viewer)
    assert response.status_code == 200, response.text
    [shown] = response.json()
    joining = shown["incident"]
    assert joining["back_to_investigating"] is True
    cli_main._print_preview(RoutingPreview.model_validate(shown))
    text = " ".join(capsys.readouterr().out.split())
    pages_again = back_after > delay
    if pages_again:
        assert joining["resumes"] == ["platform-escalation at step 1"]
        assert joining["resumes_not_paged"] == []
        assert "its held escalation pages again (platform-escalation at step 1)" in text, text
    else:
        assert joining["resumes"] == []
        assert joining["resumes_not_paged"] == ["platform-escalation at step 1, paged 2m ago"]
        assert (
            "its held escalation goes on (platform-escalation at step 1, paged 2m ago, not paged again)"
            in text
        ), text
        assert "pages again" not in text, text

    fire()
    run_at(worker, T0 + back_after)
    with context.db.read() as session:
        assert session.get(Incident, incident.id).status == IncidentStatus.investigating  # type: ignore[union-attr]
    assert (sent(context, incident.id) != before) is pages_again
    said = [
        entry.action
        for entry in timeline(context, incident.id)
        if entry.action.startswith("Escalation goes on")
    ]
    if pages_again:
        assert ("carol", "email", 2, 1) in sent(context, incident.id)
    else:
        assert said and "platform-escalation at step 1, paged 2m ago, not paged again" in said[-1], said


def test_a_more_severe_repeat_held_by_a_maintenance_window_names_the_window(
    api: TestClient,
    generic_key: str,
    viewer: dict[str, str],
    responder: dict[str, str],
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The text said only "they run again only if it comes more severe while on no incident", though the
    repeat was both: the window holding it is why they do not (its JSON named the window)."""
    window = api.post(
        "/api/v1/maintenance",
        json={"reason": "disk swap", "services": ["search"], "duration": "1h"},
        headers=responder,
    )
    assert window.status_code == 201, window.text
    disk = {"summary": "disk", "type": "DiskFull", "service": "search", "dedup_key": "disk-1"}
    fired = api.post(f"/api/v1/alerts?key={generic_key}", json=disk | {"severity": "warning"})
    assert fired.status_code == 202, fired.text
    response = api.post("/api/v1/alerts/preview", json=disk | {"severity": "critical"}, headers=viewer)
    assert response.status_code == 200, response.text
    [shown] = response.json()
    assert shown["open_alert"] == "ALR-1" and shown["rules_run_again"] is False
    assert shown["maintenance_window"] == window.json()["ref"]
    cli_main._print_preview(RoutingPreview.model_validate(shown))
    text = " ".join(capsys.readouterr().out.split())
    assert f"maintenance window {shown['maintenance_window']} holds it, so they do not run again" in text, (
        text
    )
    assert "only if it comes more severe" not in text, text
