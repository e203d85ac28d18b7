"""A rule's ``incident.group_window: 0s``: no grouping, each alert of the rule opens its own incident (the
automation block's window, 1h in the example, is not used in its place)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from typer.testing import CliRunner

from tests.alerts.test_source_ack import run_at
from tests.conftest import EXAMPLE_CONFIG
from warroom.alerts import automation, backtest
from warroom.alerts.adapters import from_generic
from warroom.alerts.models import Alert
from warroom.cli.main import app
from warroom.clock import clock
from warroom.context import AppContext
from warroom.incidents.models import Incident
from warroom.jobs.worker import Worker
from warroom.orgconfig import ConfigError, OrgConfig, parse_org_config

T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)


def example_with(**incident: Any) -> str:
    """The example org file, with these settings on the critical-monitoring rule's incident action."""
    document = yaml.safe_load(EXAMPLE_CONFIG.read_text())
    for rule in document["automation"]["rules"]:
        if rule["name"] == "critical-monitoring":
            rule["incident"].update(incident)
    return yaml.safe_dump(document)


@pytest.fixture
def org() -> OrgConfig:
    return parse_org_config(example_with(group_window="0s"))


def fire(api: TestClient, key: str, dedup_key: str, status: str = "firing") -> dict[str, Any]:
    body = {
        "summary": "search failing",
        "severity": "critical",
        "dedup_key": dedup_key,
        "status": status,
        "service": "search",
        "labels": {"alertname": "SearchDown"},
    }
    answer = api.post(f"/api/v1/alerts?key={key}", json=body)
    assert answer.status_code == 202, answer.text
    [result] = answer.json()["alerts"]
    return result  # type: ignore[no-any-return]


def incident_ids(context: AppContext) -> list[int | None]:
    with context.db.read() as session:
        return list(session.scalars(select(Alert.incident_id).order_by(Alert.id)))


def test_a_rule_with_a_group_window_of_0s_opens_an_incident_per_alert(
    api: TestClient, context: AppContext, generic_key: str
) -> None:
    clock.set(T0)
    fire(api, generic_key, "search-1")
    fire(api, generic_key, "search-2")  # same service and alertname, the same instant
    fire(api, generic_key, "search-1", status="resolved")
    clock.advance(timedelta(minutes=1))
    fire(api, generic_key, "search-1")  # the same alert firing again
    assert incident_ids(context) == [1, 2, 3]
    with context.db.read() as session:
        replayed = backtest.replay(session, context.org, since=T0, until=T0 + timedelta(hours=1))
    assert replayed.incidents == 3


def test_waiting_alerts_of_a_rule_with_a_group_window_of_0s_each_open_their_own(
    api: TestClient, context: AppContext, generic_key: str
) -> None:
    context.org = parse_org_config(example_with(group_window="0s", delay="5m"))
    clock.set(T0)
    worker = Worker(context, name="w1")
    fire(api, generic_key, "search-1")
    clock.set(T0 + timedelta(minutes=1))
    fire(api, generic_key, "search-2")
    run_at(worker, T0 + timedelta(minutes=5, seconds=1))
    assert incident_ids(context) == [1, None]  # the second waits out its own delay
    run_at(worker, T0 + timedelta(minutes=6, seconds=1))
    assert incident_ids(context) == [1, 2]
    with context.db.read() as session:
        assert session.scalar(select(func.count()).select_from(Incident)) == 2


def test_the_preview_says_the_rule_groups_nothing(org: OrgConfig, tmp_path: Path) -> None:
    [event] = from_generic(
        {
            "summary": "search failing",
            "severity": "critical",
            "service": "search",
            "labels": {"alertname": "X"},
        }
    )
    shown = automation.preview(org, "generic", event).incident
    assert shown is not None and shown.rule == "critical-monitoring"
    assert shown.group_window == timedelta(0)
    config = tmp_path / "org.yaml"
    config.write_text(example_with(group_window="0s"))
    alert = tmp_path / "alert.json"
    alert.write_text(json.dumps({"summary": "search failing", "severity": "critical", "service": "search"}))
    printed = CliRunner().invoke(app, ["config", "test-alert", str(alert), "--config", str(config)])
    assert printed.exit_code == 0, printed.output
    assert "a new one, as the rule groups no alerts (group_window 0s)" in " ".join(printed.stdout.split())


def test_a_negative_group_window_is_refused() -> None:
    with pytest.raises(ConfigError) as error:
        parse_org_config(example_with(group_window="-PT5M"))
    assert "group_window must be 0s or longer" in str(error.value)


def test_an_alert_still_firing_keeps_its_group_together_past_the_window(
    api: TestClient, context: AppContext, generic_key: str
) -> None:
    """A script sends its alert once and never again until it resolves: its incident stays the group's while
    it fires, however long after the window, and the backtest replays it so. Once every alert of the group
    resolved and the window passed, the next one opens a new incident."""
    context.org = parse_org_config(example_with(group_window="20s"))
    clock.set(T0)
    fire(api, generic_key, "search-1")
    clock.advance(timedelta(minutes=10))
    assert fire(api, generic_key, "search-2")["incident"] == "INC-1"
    clock.advance(timedelta(minutes=10))
    fire(api, generic_key, "search-1", status="resolved")
    fire(api, generic_key, "search-2", status="resolved")
    clock.advance(timedelta(seconds=21))
    assert fire(api, generic_key, "search-3")["incident"] == "INC-2"
    with context.db.read() as session:
        replayed = backtest.replay(session, context.org, since=T0, until=T0 + timedelta(hours=1))
    assert replayed.incidents == 2
