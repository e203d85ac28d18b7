"""A rule's ``integrations``: only alerts that came in through those integrations (by name), so a staging
Prometheus can be routed to nobody while production pages."""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from fastapi.testclient import TestClient
from sqlalchemy import select

from tests.alerts.conftest import make_key
from tests.conftest import EXAMPLE_CONFIG
from warroom.alerts.models import Alert
from warroom.auth.models import IntegrationKey
from warroom.context import AppContext
from warroom.orgconfig import OrgConfig, parse_org_config

CRITICAL = {"summary": "api 5xx", "severity": "critical", "labels": {"alertname": "ApiErrors"}}


@pytest.fixture
def org() -> OrgConfig:
    data: dict[str, Any] = yaml.safe_load(EXAMPLE_CONFIG.read_text())
    # No incident action: staging's alerts are routed to nothing, on purpose.
    data["automation"]["rules"].insert(0, {"name": "staging-is-quiet", "integrations": ["prom-staging"]})
    return parse_org_config(yaml.safe_dump(data))


def send(api: TestClient, key: str, dedup_key: str) -> dict[str, Any]:
    answer = api.post(f"/api/v1/alerts?key={key}", json={**CRITICAL, "dedup_key": dedup_key})
    assert answer.status_code == 202, answer.text
    result: dict[str, Any] = answer.json()["alerts"][0]
    return result


def integration_id(context: AppContext, name: str) -> int:
    with context.db.read() as session:
        return session.scalars(select(IntegrationKey.id).where(IntegrationKey.name == name)).one()


def test_rules_match_on_the_integration_an_alert_came_in_through(
    api: TestClient, context: AppContext, responder: dict[str, str]
) -> None:
    staging, production = (
        make_key(context, "generic", "prom-staging"),
        make_key(context, "generic", "prom-prod"),
    )
    assert send(api, staging, "staging")["incident"] is None
    assert send(api, production, "prod")["incident"] is not None
    with context.db.read() as session:
        assert session.scalars(select(Alert.rules).order_by(Alert.id)).all() == [
            ["staging-is-quiet"],
            ["critical-monitoring"],
        ]
    # The preview asked with an integration says why a rule does or does not apply.
    for name, applied in (("prom-staging", "staging-is-quiet"), ("prom-prod", "critical-monitoring")):
        url = f"/api/v1/alerts/preview?source=generic&integration={integration_id(context, name)}"
        [shown] = api.post(url, json=CRITICAL, headers=responder).json()
        assert [v["rule"] for v in shown["rules"] if v["applied"]] == [applied]
    [unasked] = api.post("/api/v1/alerts/preview", json=CRITICAL, headers=responder).json()
    why = {v["rule"]: v["why_not"] for v in unasked["rules"]}
    assert why["staging-is-quiet"] == "came in through no integration, not one of ['prom-staging']"


def test_the_name_counts_when_the_alert_arrives(
    api: TestClient, context: AppContext, admin: dict[str, str]
) -> None:
    staging = make_key(context, "generic", "prom-staging")
    renamed = api.patch(
        f"/api/v1/integrations/{integration_id(context, 'prom-staging')}",
        json={"name": "prom-qa"},
        headers=admin,
    )
    assert renamed.status_code == 200, renamed.text
    assert send(api, staging, "after-rename")["incident"] is not None  # no longer the staging rule's
