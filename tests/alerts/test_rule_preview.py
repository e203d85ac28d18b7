"""``warroom config test-alert``: which rules an alert would match, and why the others do not (a dry run)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from typer.testing import CliRunner

from tests.alerts.conftest import PAYLOADS
from tests.conftest import EXAMPLE_CONFIG
from warroom.alerts import automation
from warroom.alerts.adapters import from_generic
from warroom.alerts.config import AlertFacts, AutomationConfig, RuleMatch
from warroom.cli.main import app
from warroom.clock import clock
from warroom.orgconfig import load_org_config


def test_a_mismatch_names_the_first_condition_that_fails() -> None:
    match = RuleMatch.model_validate(
        {
            "source": ["alertmanager"],
            "labels": {"team": "db"},
            "labels_regex": {"instance": "db-[0-9]+"},
            "labels_missing": ["silenced"],
        }
    )

    def why(source: str = "alertmanager", **labels: str) -> str | None:
        return match.mismatch(AlertFacts(source, "critical", "X", None, labels))

    assert why(team="db", instance="db-1") is None
    assert why(team="web", instance="db-1") == "label team is 'web', not 'db'"
    assert why(instance="db-1") == "label team is missing, not 'db'"
    assert why("generic", team="db", instance="db-1") == "source is 'generic', not one of ['alertmanager']"
    assert why(team="db") == "no label 'instance' (to match 'db-[0-9]+')"
    assert why(team="db", instance="db-1a") == "label instance='db-1a' does not fully match 'db-[0-9]+'"
    assert why(team="db", instance="db-1", silenced="yes") == "label 'silenced' is present"


def test_the_preview_follows_the_rules_of_the_example_file() -> None:
    org = load_org_config(EXAMPLE_CONFIG)
    [event] = from_generic(
        {"summary": "charges failing", "severity": "critical", "labels": {"service": "payments"}}
    )
    preview = automation.preview(org, "generic", event)
    verdicts = {v.rule: (v.matched, v.applied) for v in preview.rules}
    assert verdicts["payments-down"] == (True, True)
    assert verdicts["critical-monitoring"] == (True, False)  # mode first: the earlier rule acts
    assert preview.incident is not None
    assert (preview.incident.rule, preview.incident.severity, preview.incident.title) == (
        "payments-down",
        "P0",
        "Payments: charges failing",
    )
    assert preview.incident.page == ["payments-escalation"] and preview.incident.runbooks == [
        "payments-failover"
    ]
    [quiet] = from_generic({"summary": "fyi", "severity": "info"})
    assert automation.preview(org, "generic", quiet).unrouted


def test_config_test_alert_reads_a_real_alertmanager_delivery(tmp_path: Path) -> None:
    runner = CliRunner()
    payload = PAYLOADS / "alertmanager-0.25-firing.json"
    shown = runner.invoke(app, ["config", "test-alert", str(payload), "--config", str(EXAMPLE_CONFIG)])
    assert shown.exit_code == 0, shown.output
    assert "critical-monitoring" in shown.stdout and "applies" in shown.stdout
    assert "-> incident P1" in shown.stdout and "page: platform-escalation" in shown.stdout
    as_json = runner.invoke(
        app, ["config", "test-alert", str(payload), "--json", "--config", str(EXAMPLE_CONFIG)]
    )
    previews = json.loads(as_json.stdout)
    assert [p["source"] for p in previews] == ["alertmanager"] * len(previews)
    assert all(p["incident"]["rule"] == "critical-monitoring" for p in previews)

    # Refusals: a clear message and a non-zero exit.
    bad = tmp_path / "bad.json"
    bad.write_text('{"summary": "x", "severity": "bogus"}')
    refused = runner.invoke(app, ["config", "test-alert", str(bad), "--config", str(EXAMPLE_CONFIG)])
    assert refused.exit_code == 1 and "severity" in refused.output
    missing = runner.invoke(
        app, ["config", "test-alert", str(tmp_path / "nope.json"), "--config", str(EXAMPLE_CONFIG)]
    )
    assert missing.exit_code == 1 and "cannot read" in missing.output
    wrong = runner.invoke(
        app, ["config", "test-alert", str(bad), "--source", "nagios", "--config", str(EXAMPLE_CONFIG)]
    )
    assert wrong.exit_code == 1 and "unknown source" in wrong.output


def test_the_preview_names_the_maintenance_schedules_that_would_hold_it() -> None:
    base = load_org_config(EXAMPLE_CONFIG)
    vacuum = {
        "name": "sunday-vacuum",
        "rrule": "FREQ=WEEKLY;BYDAY=SU;BYHOUR=2",
        "duration": "2h",
        "reason": "VACUUM",
        "services": ["database"],
        "match": {"labels_missing": ["page_anyway"]},
    }
    automation_config = AutomationConfig.model_validate(
        {**base.automation.model_dump(), "maintenance_schedules": [vacuum]}
    )
    org = base.model_copy(update={"automation": automation_config})
    clock.set(datetime(2026, 3, 2, 10, 0, tzinfo=UTC))  # a Monday
    [held] = from_generic({"summary": "replication lag", "severity": "warning", "service": "database"})
    assert automation.preview(org, "generic", held).maintenance_schedules == {
        "sunday-vacuum": datetime(2026, 3, 8, 2, 0, tzinfo=UTC)
    }
    [urgent] = from_generic(
        {"summary": "lag", "severity": "warning", "service": "database", "labels": {"page_anyway": "yes"}}
    )
    [other] = from_generic({"summary": "5xx", "severity": "warning", "service": "api"})
    assert automation.preview(org, "generic", urgent).maintenance_schedules == {}
    assert automation.preview(org, "generic", other).maintenance_schedules == {}
