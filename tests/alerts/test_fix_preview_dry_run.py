"""The dry run (``config test-alert --server``, ``POST /api/v1/alerts/preview``) predicts what intake does
with a repeat of an open alert: a more severe one on no incident runs the rules again (it opens an
incident and pages), and a firing that joins an incident in monitoring moves it back and pages again."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from warroom.alerts.models import Alert
from warroom.alerts.schemas import RoutingPreview
from warroom.cli import main as cli_main
from warroom.context import AppContext
from warroom.incidents.models import Incident


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
