"""An incident an alert opens carries no business impact nobody judged: it is unknown (null), unless the
rule's assessment gives it; unknown meets no suggestion rule's impact threshold, and people can fill it in."""

from __future__ import annotations

from fastapi.testclient import TestClient

from tests.alerts.test_dependency_grouping import fire
from warroom.context import AppContext


def test_automation_leaves_business_impact_unknown(
    api: TestClient, context: AppContext, generic_key: str, viewer: dict[str, str], responder: dict[str, str]
) -> None:
    # A rule that gives the business impact keeps it (payments-down: {revenue: high}).
    fire(api, generic_key, "payments", "CheckoutErrors")
    given = api.get("/api/v1/incidents/INC-1", headers=viewer).json()["assessment"]
    assert given["business_impact"]["revenue"] == "high" and given["symptoms"] == ["payment_failure"]
    fire(api, generic_key, "api", "HighErrorRate")  # critical-monitoring: no assessment of its own
    assessment = api.get("/api/v1/incidents/INC-2", headers=viewer).json()["assessment"]
    assert assessment["business_impact"] is None
    assert assessment["source"] == "monitoring-alert" and assessment["affected_systems"] == ["api"]

    # Unknown is asked about as an assessment: no impact rule matches it, and nothing fails.
    suggested = api.post(
        "/api/v1/severities/suggest", json={"assessment": {"business_impact": None}}, headers=viewer
    )
    assert suggested.status_code == 200, suggested.text
    assert suggested.json()["severity"] == context.org.default_severity
    # The stored assessment reads back, and a person's update fills it in.
    updated = api.patch(
        "/api/v1/incidents/INC-2",
        json={"assessment": {**assessment, "business_impact": {"revenue": "low"}}},
        headers=responder,
    )
    assert updated.status_code == 200, updated.text
    assert updated.json()["assessment"]["business_impact"]["revenue"] == "low"


def test_a_rule_s_assessment_without_business_impact_leaves_it_unknown(
    api: TestClient, context: AppContext, generic_key: str, viewer: dict[str, str]
) -> None:
    rules = [
        rule.model_copy(
            update={
                "incident": rule.incident.model_copy(
                    update={"assessment": type(rule.incident.assessment).model_validate({"scope": "all api"})}
                )
            }
        )
        if rule.name == "payments-down" and rule.incident is not None and rule.incident.assessment is not None
        else rule
        for rule in context.org.automation.rules
    ]
    context.org = context.org.model_copy(
        update={"automation": context.org.automation.model_copy(update={"rules": rules})}
    )
    fire(api, generic_key, "payments", "CheckoutErrors")
    assessment = api.get("/api/v1/incidents/INC-1", headers=viewer).json()["assessment"]
    assert assessment["scope"] == "all api" and assessment["business_impact"] is None
