"""``automation.mode: all``: every matching rule acts on the alert. The incident takes the most severe level
of the rules that put the alert on an incident (a rule that says P1 and pages is not lowered to an earlier
rule's P3), and a policy two rules page is requested once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import yaml
from fastapi.testclient import TestClient

from tests.conftest import EXAMPLE_CONFIG
from warroom.alerts import automation, backtest
from warroom.alerts.adapters import from_generic
from warroom.clock import clock
from warroom.context import AppContext
from warroom.events import DomainEvent
from warroom.orgconfig import OrgConfig, parse_org_config

T0 = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)  # a Monday morning in Berlin

RULES: list[dict[str, Any]] = [
    {"name": "api-everything", "match": {"service": ["api"]}, "incident": {"severity": "P3"}},
    {
        "name": "api-critical",
        "match": {"service": ["api"], "severity": ["critical"]},
        "incident": {"severity": "P1"},
        "page": "database-experts",
    },
    {
        "name": "api-storage",
        "match": {"service": ["api"], "severity": ["critical"], "labels": {"kind": "storage"}},
        "incident": {},
        "page": "database-experts",
    },
]


@pytest.fixture
def org() -> OrgConfig:
    document = yaml.safe_load(EXAMPLE_CONFIG.read_text())
    document["automation"].update(mode="all", rules=RULES, dependency_window="0s")
    return parse_org_config(yaml.safe_dump(document))


def fire(api: TestClient, key: str, severity: str, dedup_key: str, **labels: str) -> dict[str, Any]:
    body = {
        "summary": f"api {dedup_key}",
        "severity": severity,
        "service": "api",
        "dedup_key": dedup_key,
        "labels": {"alertname": "DiskIO", **labels},
    }
    answer = api.post(f"/api/v1/alerts?key={key}", json=body)
    assert answer.status_code == 202, answer.text
    [result] = answer.json()["alerts"]
    return result  # type: ignore[no-any-return]


def actions(api: TestClient, ref: str, viewer: dict[str, str]) -> list[str]:
    return [
        entry["action"]
        for entry in api.get(f"/api/v1/incidents/{ref}/timeline", headers=viewer).json()["items"]
    ]


def test_the_incident_opens_at_the_most_severe_level_of_its_rules_and_pages_each_policy_once(
    api: TestClient,
    context: AppContext,
    generic_key: str,
    viewer: dict[str, str],
    page_requests: list[DomainEvent],
) -> None:
    clock.set(T0)
    result = fire(api, generic_key, "critical", "disk-1", kind="storage")
    incident = api.get(f"/api/v1/incidents/{result['incident']}", headers=viewer).json()
    assert incident["severity"] == "P1"  # api-critical's, not the first rule's P3
    shown = actions(api, result["incident"], viewer)
    assert shown[0].startswith("Incident INC-1 declared at P1")
    assert "by rule api-everything; P1 as rule api-critical says" in shown[0]
    assert not any(action.startswith("Nobody paged") for action in shown), shown
    assert shown.count("Page requested: escalation policy database-experts") == 1
    assert [event.data for event in page_requests] == [{"policy": "database-experts", "rule": "api-critical"}]
    # The dry run and the replay agree.
    [event] = from_generic(
        {"summary": "api disk", "severity": "critical", "service": "api", "labels": {"kind": "storage"}}
    )
    preview = automation.preview(context.org, "generic", event).incident
    assert preview is not None and (preview.rule, preview.severity) == ("api-everything", "P1")
    assert preview.page == ["database-experts"]
    with context.db.read() as session:
        replayed = backtest.replay(session, context.org, since=T0, until=T0 + timedelta(hours=1))
    # Its own policy at P1 (the api's platform-escalation; P3 pages nobody), and the rules' database-experts.
    assert (replayed.incidents, replayed.pages) == (1, 2)


def test_a_joining_alert_raises_the_incident_to_the_most_severe_level_of_its_rules(
    api: TestClient, context: AppContext, generic_key: str, viewer: dict[str, str]
) -> None:
    clock.set(T0)
    warning = fire(api, generic_key, "warning", "disk-1")  # api-everything alone: P3
    assert api.get(f"/api/v1/incidents/{warning['incident']}", headers=viewer).json()["severity"] == "P3"
    clock.advance(timedelta(minutes=5))
    critical = fire(api, generic_key, "critical", "disk-2")  # the same group; api-critical says P1
    assert critical["incident"] == warning["incident"]
    assert api.get(f"/api/v1/incidents/{warning['incident']}", headers=viewer).json()["severity"] == "P1"
    # Another critical alert of the group calls for no more than the incident has: nothing changes.
    fire(api, generic_key, "critical", "disk-3")
    raised = [
        a for a in actions(api, warning["incident"], viewer) if a.startswith("Severity raised: P3 → P1")
    ]
    assert len(raised) == 1, raised
