"""``integrations`` is a condition like any other: maintenance windows, enrichment, inhibit rules and
auto-resolve entries can name the integrations an alert came in through, as rules do."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import yaml
from fastapi.testclient import TestClient
from pydantic import ValidationError

from tests.alerts.conftest import make_key
from tests.alerts.test_rule_integrations import integration_id
from tests.conftest import EXAMPLE_CONFIG
from warroom.alerts.config import AutomationRule
from warroom.alerts.expiry import expire_stale
from warroom.alerts.models import Alert
from warroom.clock import clock
from warroom.context import AppContext
from warroom.orgconfig import ConfigError, OrgConfig, parse_org_config

T0 = datetime(2026, 12, 2, 10, 0, tzinfo=UTC)


@pytest.fixture
def org() -> OrgConfig:
    data: dict[str, Any] = yaml.safe_load(EXAMPLE_CONFIG.read_text())
    automation = data["automation"]
    automation["enrich"] = [
        {
            "name": "staging-label",
            "match": {"integrations": ["prom-staging"]},
            "labels": {"env": "staging", "via": "{{ alert.integration }}"},
        }
    ]
    automation["inhibit_rules"] = [
        {
            "name": "staging-outage-mutes-staging",
            "source": {"integrations": ["prom-staging"], "labels": {"alertname": "StagingDown"}},
            "target": {"integrations": ["prom-staging"], "labels_missing": ["never"]},
        }
    ]
    automation["auto_resolve"] = [{"match": {"integrations": ["cron-scripts"]}, "after": "1h"}]
    return parse_org_config(yaml.safe_dump(data))


def send(api: TestClient, key: str, dedup_key: str, **fields: Any) -> dict[str, Any]:
    body = {"summary": f"{dedup_key} failing", "severity": "critical", "dedup_key": dedup_key, **fields}
    answer = api.post(f"/api/v1/alerts?key={key}", json=body)
    assert answer.status_code == 202, answer.text
    result: dict[str, Any] = answer.json()["alerts"][0]
    return result


def alert(context: AppContext, alert_id: int) -> Alert:
    with context.db.read() as session:
        row = session.get(Alert, alert_id)
        assert row is not None
        return row


def test_enrichment_and_inhibition_by_integration(api: TestClient, context: AppContext) -> None:
    staging = make_key(context, "generic", "prom-staging")
    production = make_key(context, "generic", "prom-prod")
    down = send(api, staging, "staging-down", labels={"alertname": "StagingDown"})
    assert alert(context, down["id"]).labels == {
        "alertname": "StagingDown",
        "env": "staging",
        "via": "prom-staging",
    }
    # While staging is down, its other alerts are held; production's are not (same labels otherwise).
    held = send(api, staging, "staging-api", labels={"alertname": "ApiErrors"})
    routed = send(api, production, "prod-api", labels={"alertname": "ApiErrors"})
    assert alert(context, held["id"]).inhibited_by_id == down["id"] and held["incident"] is None
    assert alert(context, routed["id"]).inhibited_by_id is None and routed["incident"] is not None
    assert "env" not in alert(context, routed["id"]).labels


def test_auto_resolve_by_integration(api: TestClient, context: AppContext) -> None:
    scripts = make_key(context, "generic", "cron-scripts")
    other = make_key(context, "generic", "other-scripts")
    clock.set(T0)
    first = send(api, scripts, "backup", severity="warning")
    second = send(api, other, "backup", severity="warning")
    with context.db.write() as session:
        assert expire_stale(session, context.org, T0 + timedelta(hours=2)) == 1
    assert (alert(context, first["id"]).status, alert(context, second["id"]).status) == ("resolved", "firing")


def test_a_maintenance_window_for_one_integration(
    api: TestClient, context: AppContext, responder: dict[str, str]
) -> None:
    staging = make_key(context, "generic", "prom-staging")
    production = make_key(context, "generic", "prom-prod")
    window = api.post(
        "/api/v1/maintenance",
        json={
            "reason": "moving staging's Prometheus",
            "match": {"integrations": ["prom-staging"]},
            "duration": "1h",
        },
        headers=responder,
    )
    assert window.status_code == 201, window.text
    assert window.json()["match"]["integrations"] == ["prom-staging"]
    in_window = send(api, staging, "staging-api", labels={"alertname": "ApiErrors"})
    outside = send(api, production, "prod-api", labels={"alertname": "ApiErrors"})
    assert alert(context, in_window["id"]).maintenance_window_id == window.json()["id"]
    assert alert(context, outside["id"]).maintenance_window_id is None
    # The preview, asked for either integration, says the same.
    for name, held in (("prom-staging", f"MW-{window.json()['id']}"), ("prom-prod", None)):
        url = f"/api/v1/alerts/preview?source=generic&integration={integration_id(context, name)}"
        body = {"summary": "x", "severity": "critical", "dedup_key": "new-one"}
        [shown] = api.post(url, json=body, headers=responder).json()
        assert shown["maintenance_window"] == held
    # A window that names no integration by a wrong type is refused, and nothing is stored.
    refused = api.post(
        "/api/v1/maintenance",
        json={"reason": "x", "match": {"integrations": "prom-staging"}, "duration": "1h"},
        headers=responder,
    )
    assert refused.status_code == 422


def test_integrations_beside_a_rules_match_are_read_into_it() -> None:
    rule = AutomationRule.model_validate({"name": "quiet", "integrations": ["prom-staging"]})
    assert rule.match.integrations == ["prom-staging"]
    together = AutomationRule.model_validate(
        {"name": "quiet", "integrations": ["a"], "match": {"severity": ["critical"]}}
    )
    assert (together.match.integrations, together.match.severity) == (["a"], ["critical"])
    with pytest.raises(ValidationError, match="not both"):
        AutomationRule.model_validate(
            {"name": "quiet", "integrations": ["a"], "match": {"integrations": ["b"]}}
        )
    data: dict[str, Any] = yaml.safe_load(EXAMPLE_CONFIG.read_text())
    data["automation"]["rules"][0]["match"]["integrations"] = "prom-staging"
    with pytest.raises(ConfigError, match="integrations"):
        parse_org_config(yaml.safe_dump(data))


def test_names_are_looked_up_only_when_a_condition_names_integrations(context: AppContext) -> None:
    assert context.org.automation.matches_integrations is True  # this module's org
    example = parse_org_config(EXAMPLE_CONFIG.read_text())
    assert example.automation.matches_integrations is False
