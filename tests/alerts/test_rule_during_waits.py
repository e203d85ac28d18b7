"""A rule's ``during`` with an incident that waits (``delay``, ``wait_for_business_hours``): the rules are
matched again when the wait is over, so a rule that no longer applies then opens nothing. ``config check``
refuses the rule that could never open one, and the dry run says when a delay would end outside its hours."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from tests.alerts.test_rule_delay import incident_ids
from tests.alerts.test_wait_for_business_hours import run_until
from tests.conftest import EXAMPLE_CONFIG
from warroom.alerts import automation
from warroom.alerts.adapters import from_generic
from warroom.alerts.config import AutomationRule
from warroom.cli.main import app
from warroom.clock import clock
from warroom.context import AppContext
from warroom.jobs.worker import Worker
from warroom.orgconfig import OrgConfig, load_org_config

TUESDAY_NIGHT = datetime(2026, 12, 8, 2, 0, tzinfo=UTC)  # 03:00 in Berlin
TUESDAY_CLOSING = datetime(2026, 12, 8, 16, 55, tzinfo=UTC)  # 17:55 in Berlin, 5 minutes before 18:00
TUESDAY_MORNING = datetime(2026, 12, 8, 9, 0, tzinfo=UTC)  # 10:00 in Berlin

NIGHT_WAITS = {
    "name": "night-low",
    "during": "outside_business_hours",
    "match": {"labels": {"team": "x"}},
    "incident": {"wait_for_business_hours": True, "severity": "P3"},
}
DAY_DELAY = {
    "name": "day-delay",
    "during": "business_hours",
    "match": {"labels": {"team": "y"}},
    "incident": {"delay": "10m", "severity": "P3", "title": "db lag"},
}


def with_rule(rule: dict[str, Any]) -> OrgConfig:
    org = load_org_config(EXAMPLE_CONFIG)
    rules = [AutomationRule.model_validate(rule), *org.automation.rules]
    return org.model_copy(update={"automation": org.automation.model_copy(update={"rules": rules})})


def org_file(tmp_path: Path, rule: dict[str, Any]) -> Path:
    data = yaml.safe_load(EXAMPLE_CONFIG.read_text())
    data["automation"]["rules"].insert(0, rule)
    path = tmp_path / "org.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def test_config_check_refuses_a_night_rule_that_waits_for_business_hours(tmp_path: Path) -> None:
    refused = CliRunner().invoke(app, ["config", "check", str(org_file(tmp_path, NIGHT_WAITS))])
    assert refused.exit_code == 2, refused.output
    assert "automation.rules[0]" in refused.output
    assert "during: outside_business_hours with incident.wait_for_business_hours never opens an" in " ".join(
        refused.output.split()
    )
    # Each alone is fine; and so is a rule by day that waits for business hours (it opens within them).
    for rule in (
        {**NIGHT_WAITS, "incident": {"severity": "P3"}},
        {**NIGHT_WAITS, "during": "always"},
        {**NIGHT_WAITS, "during": "business_hours"},
    ):
        assert AutomationRule.model_validate(rule).incident is not None


def preview(org: OrgConfig) -> str | None:
    [event] = from_generic({"summary": "db lag", "severity": "warning", "labels": {"team": "y"}})
    shown = automation.preview(org, "generic", event)
    assert shown.incident is not None and shown.incident.rule == "day-delay"
    return shown.incident.not_opened_then


def test_the_dry_run_says_a_delay_that_ends_after_hours_opens_nothing(tmp_path: Path) -> None:
    org = with_rule(DAY_DELAY)
    clock.set(TUESDAY_CLOSING)
    assert preview(org) == "outside business hours then (the rule is for business hours)"
    clock.set(TUESDAY_MORNING)
    assert preview(org) is None
    # ``config test-alert`` says so rather than promising an incident.
    alert = tmp_path / "alert.json"
    alert.write_text('{"summary": "db lag", "severity": "warning", "labels": {"team": "y"}}')
    path = org_file(tmp_path, DAY_DELAY)
    clock.set(TUESDAY_CLOSING)
    shown = CliRunner().invoke(app, ["config", "test-alert", str(alert), "--config", str(path)])
    assert shown.exit_code == 0, shown.output
    text = " ".join(shown.output.split())
    assert (
        "-> no incident: rule day-delay would open P3 'db lag' after 10m, but it no longer applies then "
        "(outside business hours then (the rule is for business hours)): the alert is then unrouted unless "
        "another rule takes it then"
    ) in text
    assert "if the alert is still open then" not in text
    clock.set(TUESDAY_MORNING)
    shown = CliRunner().invoke(app, ["config", "test-alert", str(alert), "--config", str(path)])
    assert "-> incident P3 'db lag' (rule day-delay) after 10m, if the alert is still open then" in " ".join(
        shown.output.split()
    )


def test_what_the_dry_run_says_is_what_happens(
    api: TestClient, context: AppContext, generic_key: str
) -> None:
    context.org = with_rule(DAY_DELAY)
    worker = Worker(context, name="w1")
    body = {"summary": "db lag", "severity": "warning", "labels": {"team": "y"}}
    clock.set(TUESDAY_MORNING)
    assert (
        api.post(f"/api/v1/alerts?key={generic_key}", json={**body, "dedup_key": "early"}).status_code == 202
    )
    run_until(worker, TUESDAY_MORNING + timedelta(minutes=11))
    clock.set(TUESDAY_CLOSING)
    assert (
        api.post(f"/api/v1/alerts?key={generic_key}", json={**body, "dedup_key": "late"}).status_code == 202
    )
    run_until(worker, TUESDAY_CLOSING + timedelta(minutes=11))
    early, late = incident_ids(context)
    assert early is not None and late is None
