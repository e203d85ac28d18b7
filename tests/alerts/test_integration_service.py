"""An integration's default service: the service of its alerts and changes that name none (PagerDuty ties
every integration to a service), and rules that match on an alert's service."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from typer.testing import CliRunner

from tests.alerts.conftest import integration_rows
from tests.conftest import EXAMPLE_CONFIG
from warroom.alerts.config import AlertFacts, RuleMatch
from warroom.alerts.models import Alert, ChangeEvent
from warroom.app import create_app
from warroom.auth.models import IntegrationKey
from warroom.cli.main import app as cli_app
from warroom.context import AppContext
from warroom.incidents.models import Incident
from warroom.orgconfig import ConfigError, parse_org_config
from warroom.settings import Settings


def create(api: TestClient, admin: dict[str, str], type_: str, **fields: Any) -> dict[str, Any]:
    response = api.post(
        "/api/v1/integrations", json={"name": f"{type_}-source", "type": type_, **fields}, headers=admin
    )
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def alertmanager(*alerts: dict[str, str]) -> dict[str, Any]:
    return {
        "version": "4",
        "status": "firing",
        "receiver": "warroom",
        "alerts": [{"status": "firing", "labels": labels} for labels in alerts],
    }


def services(context: AppContext) -> dict[str, str | None]:
    """Each alert's service, by its type."""
    with context.db.read() as session:
        return {
            alert_type: service
            for alert_type, service in session.execute(select(Alert.alert_type, Alert.service))
        }


def test_alerts_that_name_no_service_get_their_integrations(
    api: TestClient, context: AppContext, admin: dict[str, str]
) -> None:
    payments = create(api, admin, "alertmanager", service="payments")
    assert payments["service"] == "payments"
    plain = create(api, admin, "alertmanager", name="alertmanager-plain")
    assert plain["service"] is None

    # A job label is only a guess at the service: the integration's service wins over it, a service label
    # over both.
    body = alertmanager(
        {"alertname": "ChargesFailing", "job": "psp-exporter", "severity": "critical"},
        {"alertname": "SearchSlow", "job": "psp-exporter", "service": "search"},
    )
    assert api.post(f"/api/v1/alerts/alertmanager?key={payments['key']}", json=body).status_code == 202
    other = alertmanager({"alertname": "NodeDown", "job": "node"})
    assert api.post(f"/api/v1/alerts/alertmanager?key={plain['key']}", json=other).status_code == 202
    assert services(context) == {"ChargesFailing": "payments", "SearchSlow": "search", "NodeDown": "node"}

    # The example file's payments rule matches on the service, so the integration's alert opened its P0.
    with context.db.read() as session:
        [incident] = session.scalars(select(Incident)).all()
        assert incident.severity == "P0" and incident.title.startswith("Payments: ")

    # A PagerDuty event has no service field: its component is a guess too. A generic alert that names its
    # service keeps it.
    pagerduty = create(api, admin, "pagerduty", service="database")
    event = {
        "routing_key": pagerduty["key"],
        "event_action": "trigger",
        "payload": {"summary": "replica lag", "source": "db-3", "severity": "warning", "component": "mysql"},
    }
    assert api.post("/v2/enqueue", json=event).status_code == 202
    generic = create(api, admin, "generic", service="queue")
    alerts = [
        {"summary": "backlog", "type": "Backlog"},
        {"summary": "cache misses", "type": "CacheMisses", "service": "cache"},
    ]
    assert api.post(f"/api/v1/alerts?key={generic['key']}", json=alerts).status_code == 202
    shown = services(context)
    assert (shown["mysql"], shown["Backlog"], shown["CacheMisses"]) == ("database", "queue", "cache")


def test_a_new_default_service_applies_to_alerts_opened_after_it(
    api: TestClient, context: AppContext, admin: dict[str, str]
) -> None:
    created = create(api, admin, "alertmanager", service="search")
    url = f"/api/v1/alerts/alertmanager?key={created['key']}"
    assert api.post(url, json=alertmanager({"alertname": "First", "job": "es"})).status_code == 202

    changed = api.patch(f"/api/v1/integrations/{created['id']}", json={"service": "cache"}, headers=admin)
    assert changed.status_code == 200 and changed.json()["service"] == "cache"
    listed = api.get("/api/v1/integrations", headers=admin).json()
    assert [row["service"] for row in listed] == ["cache"]
    # The open alert keeps the service it was opened with, also when it fires again.
    assert api.post(url, json=alertmanager({"alertname": "First", "job": "es"})).status_code == 202
    assert api.post(url, json=alertmanager({"alertname": "Second", "job": "es"})).status_code == 202

    cleared = api.patch(f"/api/v1/integrations/{created['id']}", json={"service": None}, headers=admin)
    assert cleared.status_code == 200 and cleared.json()["service"] is None
    assert api.post(url, json=alertmanager({"alertname": "Third", "job": "es"})).status_code == 202
    assert services(context) == {"First": "search", "Second": "cache", "Third": "es"}


@pytest.mark.parametrize(
    ("service", "status"),
    [("nowhere", 422), ("", 422), ("Payments", 422), ("x" * 201, 422), (7, 422)],
)
def test_a_service_the_org_file_lacks_is_refused_and_changes_nothing(
    api: TestClient, context: AppContext, admin: dict[str, str], service: Any, status: int
) -> None:
    created = create(api, admin, "generic", service="api")
    columns = (IntegrationKey.name, IntegrationKey.service, IntegrationKey.key_hash)
    before = integration_rows(context, *columns)

    refused = api.post(
        "/api/v1/integrations", json={"name": "n", "type": "generic", "service": service}, headers=admin
    )
    assert refused.status_code == status, refused.text
    assert "service" in json.dumps(refused.json()["error"])
    patched = api.patch(f"/api/v1/integrations/{created['id']}", json={"service": service}, headers=admin)
    assert patched.status_code == status, patched.text
    assert integration_rows(context, *columns) == before


def test_the_service_is_for_admins(
    api: TestClient, context: AppContext, admin: dict[str, str], responder: dict[str, str]
) -> None:
    created = create(api, admin, "generic")
    url = f"/api/v1/integrations/{created['id']}"
    assert api.patch(url, json={"service": "api"}, headers=responder).status_code == 403
    assert api.patch(url, json={"service": "api"}).status_code == 401
    assert integration_rows(context, IntegrationKey.service) == [(None,)]


def test_a_change_event_without_a_service_gets_its_integrations(
    api: TestClient, context: AppContext, admin: dict[str, str]
) -> None:
    created = create(api, admin, "pagerduty", service="payments")

    def change(**payload: Any) -> None:
        body = {"routing_key": created["key"], "payload": {"summary": "deploy", **payload}}
        assert api.post("/v2/change/enqueue", json=body).status_code == 202

    change(source="jenkins")
    change(source="database")  # a service's name as the source is a guess: the key's service wins
    change(source="jenkins", custom_details={"service": "search"})  # named outright: it wins
    with context.db.read() as session:
        recorded = session.scalars(select(ChangeEvent.service).order_by(ChangeEvent.id)).all()
    assert recorded == ["payments", "payments", "search"]


def test_the_server_preview_applies_the_integrations_service(
    api: TestClient, admin: dict[str, str], viewer: dict[str, str]
) -> None:
    created = create(api, admin, "generic", service="payments")
    body = {"summary": "charges failing", "severity": "critical"}
    unscoped = api.post("/api/v1/alerts/preview", json=body, headers=viewer).json()[0]
    assert unscoped["service"] is None and unscoped["incident"]["rule"] == "critical-monitoring"
    params = {"integration": str(created["id"])}
    scoped = api.post("/api/v1/alerts/preview", json=body, params=params, headers=viewer).json()[0]
    assert scoped["service"] == "payments" and scoped["incident"]["rule"] == "payments-down"


def test_a_rule_matches_on_the_service() -> None:
    match = RuleMatch.model_validate({"service": ["payments", "api"]})

    def why(service: str | None) -> str | None:
        return match.mismatch(AlertFacts("generic", "critical", "X", service, {}))

    assert why("api") is None
    assert why("search") == "service is 'search', not one of ['payments', 'api']"
    assert why(None) == "service is none, not one of ['payments', 'api']"

    org = """
services: [{name: payments}]
automation:
  rules:
    - {name: r, match: {service: [payment]}, incident: {}}
  auto_resolve:
    - {match: {service: [billing]}, after: 1h}
"""
    with pytest.raises(ConfigError) as refused:
        parse_org_config(org)
    problems = [str(problem) for problem in refused.value.problems]
    assert problems == [
        # The names the file has, or the nearest one when it is a typo.
        "automation.rules[0].match.service[0] (line 5): 'payment' is not a service in this file; "
        "did you mean 'payments'?",
        "automation.auto_resolve[0].match.service[0] (line 7): 'billing' is not a service in this file "
        "(known: payments)",
    ]


def test_cli_sets_and_clears_the_service(database_url: str) -> None:
    runner = CliRunner()
    where = ["--config", str(EXAMPLE_CONFIG), "--database-url", database_url]
    created = runner.invoke(
        cli_app,
        ["integration", "create", "--name", "prom", "--type", "alertmanager", "--service", "api", *where],
    )
    assert created.exit_code == 0, created.output
    assert "(id 1, service api)" in created.output

    def listed() -> list[Any]:
        shown = runner.invoke(cli_app, ["integration", "list", "--json", "--database-url", database_url])
        return [row["service"] for row in json.loads(shown.stdout)]

    assert listed() == ["api"]
    wide = {"COLUMNS": "200"}
    table = runner.invoke(cli_app, ["integration", "list", "--database-url", database_url], env=wide).stdout
    assert "service" in table and "api" in table

    for args, message in [
        (
            ["create", "--name", "x", "--type", "generic", "--service", "nowhere"],
            "--service: unknown service",
        ),
        (["update", "1", "--service", "nowhere"], "--service: unknown service 'nowhere'"),
        (["update", "1", "--service", "api", "--no-service"], "either --service or --no-service"),
    ]:
        refused = runner.invoke(cli_app, ["integration", *args, *where])
        assert refused.exit_code != 0 and message in refused.output, (args, refused.output)
    assert listed() == ["api"]

    moved = runner.invoke(cli_app, ["integration", "update", "1", "--service", "search", *where])
    assert moved.exit_code == 0 and "default service: search" in moved.output, moved.output
    cleared = runner.invoke(cli_app, ["integration", "update", "1", "--no-service", *where])
    assert cleared.exit_code == 0 and "no default service" in cleared.output, cleared.output
    assert listed() == [None]


SEARCH_ONLY = "services:\n  - name: search\n"


def test_a_default_service_the_org_file_dropped_is_flagged(
    api: TestClient,
    context: AppContext,
    admin: dict[str, str],
    settings: Settings,
    caplog: pytest.LogCaptureFixture,
) -> None:
    dropped = create(api, admin, "alertmanager", service="payments")
    kept = create(api, admin, "generic", service="search")
    plain = create(api, admin, "grafana")
    assert (dropped["service_known"], kept["service_known"], plain["service_known"]) == (True, True, None)
    revoked = create(api, admin, "generic", service="payments", name="generic-old")
    assert api.delete(f"/api/v1/integrations/{revoked['id']}", headers=admin).status_code == 200

    # The server restarts with an org file that no longer has the payments service.
    shrunk = AppContext(settings=settings, db=context.db, org=parse_org_config(SEARCH_ONLY, "warroom.yaml"))
    caplog.set_level(logging.WARNING, logger="warroom")
    with TestClient(create_app(context=shrunk)) as restarted:
        listed = restarted.get("/api/v1/integrations", headers=admin).json()
    assert [(row["service"], row["service_known"]) for row in listed] == [
        ("payments", False),
        ("search", True),
        (None, None),
        ("payments", False),
    ]
    # Warned of at start, once per live integration: the revoked one takes no alerts.
    warnings = [r.getMessage() for r in caplog.records if "the org file has no service" in r.getMessage()]
    assert warnings == [
        f"integration {dropped['id']} (alertmanager-source): the org file has no service 'payments'; its "
        "alerts get that name, but no rule, maintenance window or incident knows it. Give it another: "
        f"warroom integration update {dropped['id']} --service NAME (or --no-service)"
    ]
    # Renaming it says the same; moving it to a service of the file clears it.
    with TestClient(create_app(context=shrunk)) as restarted:
        renamed = restarted.patch(f"/api/v1/integrations/{dropped['id']}", json={"name": "am"}, headers=admin)
        assert renamed.json()["service_known"] is False
        moved = restarted.patch(
            f"/api/v1/integrations/{dropped['id']}", json={"service": "search"}, headers=admin
        )
        assert (moved.json()["service"], moved.json()["service_known"]) == ("search", True)


def test_every_answer_about_an_integration_checks_its_service(api: TestClient, admin: dict[str, str]) -> None:
    """Rotate answered ``service_known: null`` for a service the org file has; create, update and list said
    true."""
    created = create(api, admin, "generic", service="search")
    path = f"/api/v1/integrations/{created['id']}"
    answers = {
        "create": created,
        "update": api.patch(path, json={"name": "search-jobs"}, headers=admin).json(),
        "list": api.get("/api/v1/integrations", headers=admin).json()[0],
        "rotate": api.post(f"{path}/rotate", headers=admin).json(),
        "revoke": api.delete(path, headers=admin).json(),
    }
    assert {answer: read["service_known"] for answer, read in answers.items()} == dict.fromkeys(answers, True)


def test_cli_list_flags_a_default_service_the_org_file_dropped(database_url: str, tmp_path: Path) -> None:
    runner = CliRunner()
    where = ["--config", str(EXAMPLE_CONFIG), "--database-url", database_url]
    created = runner.invoke(
        cli_app,
        ["integration", "create", "--name", "psp", "--type", "generic", "--service", "payments", *where],
    )
    assert created.exit_code == 0, created.output
    smaller = tmp_path / "warroom.yaml"
    smaller.write_text(SEARCH_ONLY)
    wide = {"COLUMNS": "200"}
    checked = runner.invoke(
        cli_app, ["integration", "list", "--config", str(smaller), "--database-url", database_url], env=wide
    )
    assert checked.exit_code == 0, checked.output
    assert "payments (not in the org file)" in checked.stdout
    assert "integration 1 (psp): the org file has no service 'payments'" in checked.stderr
    as_json = runner.invoke(
        cli_app, ["integration", "list", "--json", "--config", str(smaller), "--database-url", database_url]
    )
    assert json.loads(as_json.stdout)[0]["service_known"] is False
    # Without an org file nothing is checked, and nothing is flagged.
    unchecked = runner.invoke(cli_app, ["integration", "list", "--database-url", database_url], env=wide)
    assert "not in the org file" not in unchecked.output
