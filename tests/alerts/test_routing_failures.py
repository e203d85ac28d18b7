"""A delivery is never refused for what the rules make of one alert: a notify message that renders too long is
cut, and a routing failure of any other kind leaves that alert unrouted with the failure, not the whole
delivery lost to a 500 its sender retries for ever."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.alerts.test_rule_templates_strict import org_with_rules
from warroom.alerts import automation
from warroom.alerts.models import Alert
from warroom.context import AppContext
from warroom.incidents.schemas import LONG_TEXT

TRACE_RULE: dict[str, Any] = {
    "name": "trace",
    "match": {"labels": {"t": "desc"}},
    "incident": {"title": "{{ alert.summary }}"},
    "notify": [
        {"audience": "internal", "message": "{{ alert.summary }}: {{ alert.annotations.description }}"}
    ],
}
CATCH_ALL: dict[str, Any] = {"name": "everything", "incident": {}}


def test_a_notify_message_longer_than_an_update_holds_is_cut_and_the_delivery_kept(
    api: TestClient, context: AppContext, generic_key: str, viewer: dict[str, str]
) -> None:
    """A 24,500-character stack trace in a description made the rule's update fail validation: 500, and the
    alert beside it in the delivery was lost too."""
    context.org = org_with_rules(TRACE_RULE, CATCH_ALL)
    stack_trace = "\n".join(f"    at com.acme.Checkout.step{i}(Checkout.java:{i})" for i in range(600))
    delivery = [
        {
            "summary": "checkout crashed",
            "severity": "critical",
            "labels": {"t": "desc"},
            "annotations": {"description": stack_trace},
        },
        {"summary": "disk full on db1", "severity": "critical", "dedup_key": "disk-db1"},
    ]
    assert len(stack_trace) > LONG_TEXT
    response = api.post(f"/api/v1/alerts?key={generic_key}", json=delivery)
    assert response.status_code == 202, response.text
    crashed, disk = response.json()["alerts"]
    assert crashed["incident"] and disk["incident"]
    [update] = api.get(f"/api/v1/incidents/{crashed['incident']}/updates", headers=viewer).json()
    assert len(update["message"]) == LONG_TEXT
    assert update["message"].startswith("checkout crashed:     at com.acme.Checkout.step0(")
    assert update["message"].endswith("…")


def test_a_rule_that_fails_on_one_alert_leaves_it_unrouted_and_keeps_the_others(
    api: TestClient,
    context: AppContext,
    generic_key: str,
    viewer: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    context.org = org_with_rules(CATCH_ALL)
    routed = automation.on_created

    def failing_on_one(session: Any, org: Any, alert: Alert, **options: Any) -> None:
        routed(session, org, alert, **options)  # writes first, so the savepoint has something to undo
        if alert.summary == "poison":
            raise RuntimeError("the rules tripped over this alert")

    monkeypatch.setattr(automation, "on_created", failing_on_one)
    delivery = [
        {"summary": "poison", "severity": "critical", "dedup_key": "poison"},
        {"summary": "disk full on db1", "severity": "critical", "dedup_key": "disk-db1"},
    ]
    response = api.post(f"/api/v1/alerts?key={generic_key}", json=delivery)
    assert response.status_code == 202, response.text
    poison, disk = response.json()["alerts"]
    assert poison["incident"] is None and disk["incident"]
    kept = api.get(f"/api/v1/alerts/{poison['id']}", headers=viewer).json()
    assert kept["incident"] is None and kept["status"] == "firing"
    assert [(e["handler"], e["event"], e["error"]) for e in kept["handler_errors"]] == [
        ("automation", "created", "RuntimeError: the rules tripped over this alert")
    ]
    # What the rules did before failing is undone: only the other alert's incident is there.
    incidents = api.get("/api/v1/incidents", headers=viewer).json()
    assert [incident["id"] for incident in incidents["items"]] == [disk["incident"]]
