"""Grouping alerts that say nothing of what they are: a plain JSON alert with no type nor service, a PagerDuty
event with no class nor component. Their group-by values (service, alertname) are empty or only the source's
fallback type, so they are grouped by their own identity (the dedup key): unrelated alerts open incidents of
their own, while the same alert firing again joins its incident."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import func, select
from typer.testing import CliRunner

from tests.alerts.conftest import payload
from tests.conftest import EXAMPLE_CONFIG
from warroom.alerts import automation, backtest
from warroom.alerts.adapters import from_generic, from_pagerduty
from warroom.alerts.models import Alert
from warroom.cli.main import app
from warroom.clock import clock
from warroom.context import AppContext
from warroom.incidents.models import Incident
from warroom.orgconfig import load_org_config

T0 = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)


def fire(api: TestClient, key: str, **alert: Any) -> dict[str, Any]:
    response = api.post(f"/api/v1/alerts?key={key}", json={"severity": "critical", **alert})
    assert response.status_code == 202, response.text
    [result] = response.json()["alerts"]
    return result  # type: ignore[no-any-return]


def pagerduty(api: TestClient, key: str, action: str, dedup_key: str, summary: str = "") -> None:
    event: dict[str, Any] = {"routing_key": key, "event_action": action, "dedup_key": dedup_key}
    if action == "trigger":
        event["payload"] = {"summary": summary, "source": "probe-1", "severity": "critical"}
    assert api.post("/v2/enqueue", json=event).status_code == 202


def incidents_of(context: AppContext) -> dict[str, int | None]:
    """Each alert's incident, by summary (the latest alert of a summary wins)."""
    with context.db.read() as session:
        rows = session.execute(select(Alert.summary, Alert.incident_id).order_by(Alert.id))
        return {summary: incident for summary, incident in rows}


def test_unrelated_plain_alerts_open_incidents_of_their_own(
    api: TestClient, context: AppContext, generic_key: str
) -> None:
    clock.set(T0)
    database = fire(api, generic_key, summary="Primary database db-7 is down")
    clock.advance(timedelta(minutes=5))
    certificate = fire(api, generic_key, summary="TLS certificate on www expired")
    assert (database["incident"], certificate["incident"]) == ("INC-1", "INC-2")
    # The database alert resolves and fires again (a new alert, the same dedup key): it joins its incident.
    fire(api, generic_key, summary="Primary database db-7 is down", status="resolved")
    clock.advance(timedelta(minutes=5))
    again = fire(api, generic_key, summary="Primary database db-7 is down")
    assert again["id"] != database["id"] and again["incident"] == "INC-1"
    # So does an alert with the same explicit dedup key; another key on the same service is another alert.
    first = fire(api, generic_key, summary="disk 91% on db-7", dedup_key="disk-db-7", service="database")
    second = fire(api, generic_key, summary="replication lag", dedup_key="lag-db-7", service="database")
    assert first["incident"] != second["incident"]


def test_pagerduty_events_without_class_or_component_are_told_apart(
    api: TestClient, context: AppContext, pd_key: str
) -> None:
    clock.set(T0)
    pagerduty(api, pd_key, "trigger", "db-7", "Primary database db-7 is down")
    pagerduty(api, pd_key, "trigger", "cert-www", "TLS certificate on www expired")
    assert incidents_of(context) == {"Primary database db-7 is down": 1, "TLS certificate on www expired": 2}
    pagerduty(api, pd_key, "resolve", "db-7")
    clock.advance(timedelta(minutes=10))
    pagerduty(api, pd_key, "trigger", "db-7", "Primary database db-7 is down again")
    assert incidents_of(context)["Primary database db-7 is down again"] == 1


def test_alertmanager_alerts_of_one_name_and_service_still_share_an_incident(
    api: TestClient, context: AppContext, am_key: str
) -> None:
    delivery = payload("alertmanager-0.25-firing.json")
    other = copy.deepcopy(delivery["alerts"][0])
    other["fingerprint"] = "0000aaaa1111bbbb"
    other["labels"]["instance"] = "checkout-2"
    other["annotations"]["summary"] = "5xx rate above 5% on checkout-2"
    delivery["alerts"].append(other)
    response = api.post(f"/api/v1/alerts/alertmanager?key={am_key}", json=delivery)
    assert response.status_code == 202, response.text
    assert [alert["incident"] for alert in response.json()["alerts"]] == ["INC-1", "INC-1"]


def test_the_preview_shows_the_alerts_identity_in_its_group(tmp_path: Path) -> None:
    org = load_org_config(EXAMPLE_CONFIG)
    [plain] = from_generic({"summary": "Primary database db-7 is down", "severity": "critical"})
    shown = automation.preview(org, "generic", plain).incident
    assert shown is not None
    assert shown.group == {"service": "", "alertname": "generic", "dedup_key": plain.dedup_key}
    _, event = from_pagerduty(
        {
            "routing_key": "k",
            "event_action": "trigger",
            "dedup_key": "db-7",
            "payload": {"summary": "db-7 down", "source": "probe", "severity": "critical"},
        }
    )
    pd_shown = automation.preview(org, "pagerduty", event).incident
    assert pd_shown is not None and pd_shown.group["dedup_key"] == "db-7"
    # An alert with a name keeps the group-by values alone.
    [named] = from_generic(
        {"summary": "5xx", "severity": "critical", "service": "api", "labels": {"alertname": "HighErrorRate"}}
    )
    named_shown = automation.preview(org, "generic", named).incident
    assert named_shown is not None and named_shown.group == {"service": "api", "alertname": "HighErrorRate"}
    alert_file = tmp_path / "alert.json"
    alert_file.write_text(json.dumps({"summary": "Primary database db-7 is down", "severity": "critical"}))
    printed = CliRunner().invoke(
        app, ["config", "test-alert", str(alert_file), "--config", str(EXAMPLE_CONFIG)]
    )
    assert printed.exit_code == 0, printed.output
    assert f"dedup_key='{plain.dedup_key}'" in " ".join(printed.stdout.split())


def test_the_replay_tells_unrelated_plain_alerts_apart(
    api: TestClient, context: AppContext, generic_key: str
) -> None:
    clock.set(T0)
    fire(api, generic_key, summary="Primary database db-7 is down")
    clock.advance(timedelta(minutes=5))
    fire(api, generic_key, summary="TLS certificate on www expired")
    with context.db.read() as session:
        opened = session.scalar(select(func.count()).select_from(Incident))
        replayed = backtest.replay(session, context.org, since=T0, until=T0 + timedelta(days=1))
    assert replayed.incidents == opened == 2
