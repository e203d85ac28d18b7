"""``warroom config test-alert``: which rules an alert would match, and why the others do not (a dry run)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from typer.testing import CliRunner

from tests.alerts.conftest import PAYLOADS, make_key
from tests.conftest import EXAMPLE_CONFIG
from tests.e2e.server import run_cli, serve_for_cli
from warroom.alerts import automation
from warroom.alerts.adapters import from_generic
from warroom.alerts.config import AlertFacts, AutomationConfig, RuleMatch
from warroom.alerts.models import Alert
from warroom.auth.models import IntegrationKey
from warroom.cli.main import app
from warroom.clock import clock
from warroom.context import AppContext
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
    assert missing.exit_code == 2 and "cannot read" in missing.output
    wrong = runner.invoke(
        app, ["config", "test-alert", str(bad), "--source", "nagios", "--config", str(EXAMPLE_CONFIG)]
    )
    assert wrong.exit_code == 2 and "unknown source" in wrong.output


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


def payments_alert(dedup_key: str, summary: str = "charges failing") -> dict[str, Any]:
    return {
        "summary": summary,
        "severity": "critical",
        "dedup_key": dedup_key,
        # A name of its own: without one, only the same dedup key would join its group.
        "labels": {"service": "payments", "alertname": "ChargeErrors"},
    }


def stored_alerts(context: AppContext) -> int:
    with context.db.read() as session:
        return session.scalar(select(func.count()).select_from(Alert)) or 0


def integration_ids(context: AppContext) -> dict[str, int]:
    with context.db.read() as session:
        return {row.name: row.id for row in session.execute(select(IntegrationKey.name, IntegrationKey.id))}


def test_the_server_preview_knows_what_is_open(
    api: TestClient,
    context: AppContext,
    generic_key: str,
    viewer: dict[str, str],
    responder: dict[str, str],
) -> None:
    def preview(body: Any, **params: str) -> dict[str, Any]:
        response = api.post("/api/v1/alerts/preview", json=body, params=params, headers=viewer)
        assert response.status_code == 200, response.text
        [shown] = response.json()
        return shown  # type: ignore[no-any-return]

    first = preview(payments_alert("charges-1"))
    assert first["live"] and first["open_alert"] is None and first["maintenance_window"] is None
    assert first["incident"]["rule"] == "payments-down" and first["incident"]["open_incident"] is None
    assert stored_alerts(context) == 0  # a dry run

    fired = api.post(f"/api/v1/alerts?key={generic_key}", json=payments_alert("charges-1"))
    assert fired.status_code == 202, fired.text
    # The same alert again would only be an update of the open one.
    assert preview(payments_alert("charges-1"))["open_alert"] == "ALR-1"
    # Another alert of its group (service and alertname) would join the group's open incident.
    sibling = preview(payments_alert("charges-2", "refunds failing"), source="generic")
    assert sibling["open_alert"] is None and sibling["incident"]["open_incident"] == "INC-1"

    window = {"reason": "PSP migration", "services": ["payments"], "duration": "1h"}
    assert api.post("/api/v1/maintenance", json=window, headers=responder).status_code == 201
    assert preview(payments_alert("charges-3"))["maintenance_window"] == "MW-1"
    assert stored_alerts(context) == 1

    # Asked for one integration, the open alert is looked up among its alerts only, as intake dedups them.
    make_key(context, "generic", "second-app")
    make_key(context, "alertmanager", "prometheus")
    ids = integration_ids(context)
    assert preview(payments_alert("charges-1"), integration=str(ids["scripts"]))["open_alert"] == "ALR-1"
    assert preview(payments_alert("charges-1"), integration=str(ids["second-app"]))["open_alert"] is None

    # Refusals change nothing.
    assert api.post("/api/v1/alerts/preview", json=payments_alert("x")).status_code == 401
    for body, params, status in (
        (b"{not json", {}, 400),
        (b'{"summary": "x", "severity": "bogus"}', {}, 400),
        (b'{"summary": "x"}', {"source": "nagios"}, 422),
        (b'{"summary": "x"}', {"integration": "999"}, 404),
        (b'{"summary": "x"}', {"integration": "0"}, 422),
        (b"Subject: x\r\n\r\nbody", {"integration": "2147483648"}, 422),  # past a row id (found by fuzzing)
        (b'{"summary": "x"}', {"integration": str(ids["prometheus"])}, 422),  # another kind of sender
    ):
        refused = api.post("/api/v1/alerts/preview", content=body, params=params, headers=viewer)
        assert refused.status_code == status, refused.text
    assert stored_alerts(context) == 1


@pytest.mark.e2e
def test_config_test_alert_asks_the_server(tmp_path: Path) -> None:
    delivery = tmp_path / "alert.json"
    delivery.write_text(json.dumps(payments_alert("charges-1")))
    with serve_for_cli(EXAMPLE_CONFIG, tmp_path, token_name="preview-e2e", role="viewer") as env:
        shown = run_cli("config", "test-alert", str(delivery), "--server", env=env).stdout
        assert "payments-down" in shown and "a new one, as its group" in shown
        created = run_cli("integration", "create", "--name", "app", "--type", "generic", env=env).stdout
        key = created.strip().splitlines()[-1]
        fired = httpx.post(f"{env['WARROOM_URL']}/api/v1/alerts?key={key}", content=delivery.read_bytes())
        assert fired.status_code == 202, fired.text
        again = run_cli("config", "test-alert", str(delivery), "--server", env=env).stdout
        # The very delivery applied to it: no occurrence counted (fix g; test_fixg_preview_unchanged).
        assert "the open alert ALR-1" in again and "without counting" in " ".join(again.split())
        rows = json.loads(
            run_cli("config", "test-alert", str(delivery), "--server", "--json", env=env).stdout
        )
        assert rows[0]["live"] and rows[0]["open_alert"] == "ALR-1"
        scoped = run_cli("config", "test-alert", str(delivery), "--server", "--integration", "1", env=env)
        assert "the open alert ALR-1" in scoped.stdout
        offline = run_cli("config", "test-alert", str(delivery), "--integration", "1", env=env, check=False)
        assert offline.returncode == 2 and "--integration needs --server" in offline.stderr
        unknown = run_cli(
            "config", "test-alert", str(delivery), "--server", "--integration", "9", env=env, check=False
        )
        assert unknown.returncode == 1 and "integration with id 9" in unknown.stderr


def test_a_dry_run_needs_an_org_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without one every alert would look unrouted, which would say nothing true."""
    monkeypatch.delenv("WARROOM_CONFIG", raising=False)
    alert = tmp_path / "alert.json"
    alert.write_text('{"summary": "redis down", "severity": "critical", "service": "cache"}')
    result = CliRunner().invoke(app, ["config", "test-alert", str(alert)])
    assert result.exit_code == 2 and "no org file to test against" in result.output


def test_reports_from_people_can_be_dry_run(tmp_path: Path, api: TestClient, viewer: dict[str, str]) -> None:
    """A rule for customer reports or internal discoveries is tried on the body their endpoints take: a
    customer's report is told by its fields, an internal one is named with --source."""
    runner = CliRunner()
    customer = tmp_path / "report.json"
    customer.write_text(
        json.dumps(
            {
                "contact": "ann@example.com",
                "description": "Checkout spins\nforever",
                "affected_feature": "checkout",
            }
        )
    )
    shown = runner.invoke(
        app, ["config", "test-alert", str(customer), "--json", "--config", str(EXAMPLE_CONFIG)]
    )
    assert shown.exit_code == 0, shown.output
    [preview] = json.loads(shown.stdout)
    assert (preview["source"], preview["type"]) == ("customer-report", "customer-report")
    assert preview["summary"] == "Customer report (checkout): Checkout spins"
    assert preview["incident"]["rule"] == "customer-reports"
    assert preview["incident"]["title"] == "Customer report: checkout"
    internal = tmp_path / "internal.json"
    internal.write_text(json.dumps({"description": "search results are stale", "service": "search"}))
    as_internal = ["config", "test-alert", str(internal), "--source", "internal-discovery"]
    named = runner.invoke(app, [*as_internal, "--config", str(EXAMPLE_CONFIG)])
    assert named.exit_code == 0, named.output
    assert "search results are stale" in named.stdout and "(internal-discovery, warning" in named.stdout
    # Refused as their endpoints refuse them.
    internal.write_text(json.dumps({"description": "x", "service": "nowhere"}))
    unknown = runner.invoke(app, [*as_internal, "--config", str(EXAMPLE_CONFIG)])
    assert unknown.exit_code == 1 and "nowhere" in unknown.output
    customer.write_text(json.dumps({"contact": "ann@example.com", "affected_feature": "checkout"}))
    incomplete = runner.invoke(app, ["config", "test-alert", str(customer), "--config", str(EXAMPLE_CONFIG)])
    assert incomplete.exit_code == 1 and "description" in incomplete.output
    # The server's dry run takes them too.
    body = {"contact": "ann@example.com", "description": "Checkout spins", "affected_feature": "checkout"}
    [served] = api.post("/api/v1/alerts/preview", json=body, headers=viewer).json()
    assert served["incident"]["rule"] == "customer-reports" and served["source"] == "customer-report"
    internal_body = {"description": "search results are stale", "service": "search"}
    answer = api.post("/api/v1/alerts/preview?source=internal-discovery", json=internal_body, headers=viewer)
    assert answer.status_code == 200, answer.text
    assert answer.json()[0]["source"] == "internal-discovery"


def test_an_opsgenie_alert_can_be_dry_run_as_intake_reads_it(
    tmp_path: Path, api: TestClient, context: AppContext, viewer: dict[str, str]
) -> None:
    """QA: an Opsgenie create-alert body was read as plain JSON ("summary: Field required; message: Extra
    inputs are not permitted"), --source opsgenie was an unknown source, and the list of sources left out
    the reports that were taken. Teams moving from Opsgenie could not try their alerts."""
    runner = CliRunner()
    body = {
        "message": "Disk almost full on db-1",
        "alias": "disk-db1",
        "tags": ["disk"],
        "details": {"alertname": "DiskFull", "service": "database"},
        "priority": "P1",
        "responders": [{"type": "team", "name": "dba"}],  # Opsgenie's routing: ignored, as intake does
    }
    delivery = tmp_path / "opsgenie.json"
    delivery.write_text(json.dumps(body))
    previews = []
    for source in ([], ["--source", "opsgenie"]):  # told by its fields, or named
        shown = runner.invoke(
            app, ["config", "test-alert", str(delivery), *source, "--json", "--config", str(EXAMPLE_CONFIG)]
        )
        assert shown.exit_code == 0, shown.output
        [preview] = json.loads(shown.stdout)
        previews.append(preview)
    assert previews[0] == previews[1]
    assert previews[0]["incident"]["rule"] == "critical-monitoring"
    # What intake makes of the same body.
    genie = {"Authorization": f"GenieKey {make_key(context, 'opsgenie')}"}
    assert api.post("/v2/alerts", json=body, headers=genie).status_code == 202
    with context.db.read() as session:
        [alert] = session.scalars(select(Alert))
    assert (
        previews[0]["source"],
        previews[0]["summary"],
        previews[0]["severity"],
        previews[0]["type"],
        previews[0]["service"],
        previews[0]["dedup_key"],
        previews[0]["labels"],
    ) == (
        alert.source,
        alert.summary,
        alert.severity,
        alert.alert_type,
        alert.service,
        alert.dedup_key,
        alert.labels,
    )
    # The server's dry run reads it too.
    for params in ({}, {"source": "opsgenie"}):
        served = api.post("/api/v1/alerts/preview", json=body, params=params, headers=viewer)
        assert served.status_code == 200, served.text
        assert served.json()[0]["source"] == "opsgenie"

    # A plain alert written with a message is still refused as a plain alert, naming what it lacks.
    delivery.write_text(json.dumps({"message": "x", "severity": "critical"}))
    plain = runner.invoke(app, ["config", "test-alert", str(delivery), "--config", str(EXAMPLE_CONFIG)])
    assert plain.exit_code == 1 and "summary" in plain.output
    # An unknown source names every source that is read; a heartbeat's is said to hold no alert.
    for server in ([], ["--server"]):
        wrong = runner.invoke(
            app,
            [
                "config",
                "test-alert",
                str(delivery),
                "--source",
                "nagios",
                *server,
                "--config",
                str(EXAMPLE_CONFIG),
            ],
        )
        assert wrong.exit_code == 2, wrong.output
        assert (
            "unknown source 'nagios'; one of alertmanager, grafana, pagerduty, opsgenie, generic, email, "
            "webhook, customer-report, internal-discovery"
        ) in " ".join(wrong.output.split())
        ping = runner.invoke(
            app,
            [
                "config",
                "test-alert",
                str(delivery),
                "--source",
                "heartbeat",
                *server,
                "--config",
                str(EXAMPLE_CONFIG),
            ],
        )
        assert ping.exit_code == 2 and "a heartbeat ping is not read by a dry run" in " ".join(
            ping.output.split()
        )


def test_the_preview_route_takes_every_source_a_dry_run_reads() -> None:
    from typing import get_args

    from warroom.alerts.api import PreviewSource
    from warroom.alerts.reports import DRY_RUN_SOURCES

    assert get_args(PreviewSource) == ("auto", *DRY_RUN_SOURCES)
