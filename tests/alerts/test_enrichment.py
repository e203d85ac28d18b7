"""automation.enrich: arriving alerts are filled in or corrected (service, severity, labels, links) before
any rule, window or person sees them, without changing which alert an event belongs to."""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from fastapi.testclient import TestClient

from tests.alerts.test_intake import alerts
from tests.conftest import EXAMPLE_CONFIG
from warroom.context import AppContext
from warroom.orgconfig import ConfigError, OrgConfig, parse_org_config

ENRICH = [
    {
        "name": "shop-namespaces",
        "match": {"labels_regex": {"namespace": "shop-.+"}},
        "service": "payments",
        "labels": {"team": "{{ alert.labels.namespace | replace('shop-', '') }}"},
        "links": [
            {
                "href": "https://grafana.example/d/node?var-instance={{ alert.labels.instance }}",
                "text": "Node dashboard",
            }
        ],
    },
    {"name": "watchdog-is-info", "match": {"type": ["Watchdog"]}, "severity": "info"},
    {
        "name": "broken",
        "match": {"labels": {"broken": "yes"}},
        "labels": {"bad": "{{ alert.summary + 1 }}", "good": "{{ alert.source }}"},
    },
]


def org_data(enrich: list[dict[str, Any]]) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(EXAMPLE_CONFIG.read_text())
    data["automation"]["enrich"] = enrich
    return data


@pytest.fixture
def org() -> OrgConfig:
    return parse_org_config(yaml.safe_dump(org_data(ENRICH)))


def send(api: TestClient, key: str, **alert: Any) -> dict[str, Any]:
    response = api.post(f"/api/v1/alerts?key={key}", json={"severity": "critical", **alert})
    assert response.status_code == 202, response.text
    result: dict[str, Any] = response.json()["alerts"][0]
    return result


def test_enrichment_comes_before_the_rules(api: TestClient, context: AppContext, generic_key: str) -> None:
    labels = {"alertname": "CheckoutErrors", "namespace": "shop-eu", "instance": "web-1"}
    first = send(api, generic_key, summary="5xx on checkout", labels=labels)
    # The service it got routes it: the example's payments-down rule (service payments, critical) opens a P0.
    assert first["incident"] == "INC-1"
    [alert] = alerts(context)
    assert (alert.service, alert.labels["team"]) == ("payments", "eu")
    assert alert.links == [
        {"href": "https://grafana.example/d/node?var-instance=web-1", "text": "Node dashboard"}
    ]
    # The identity was made from what the source sent: the repeat is the same alert.
    again = send(api, generic_key, summary="5xx on checkout (more)", labels=labels)
    assert again["id"] == first["id"] and again["outcome"] == "updated"
    assert [a.occurrences for a in alerts(context)] == [2]


def test_a_severity_fix_holds_for_every_occurrence(
    api: TestClient, context: AppContext, generic_key: str
) -> None:
    for beat in range(2):  # bodies that differ: an identical one would be taken for a retry
        send(api, generic_key, summary=f"the pipeline works ({beat})", type="Watchdog", dedup_key="watchdog")
    [alert] = alerts(context)
    assert (alert.severity, alert.occurrences, alert.incident_id) == ("info", 2, None)


def test_a_template_that_fails_loses_nothing(api: TestClient, context: AppContext, generic_key: str) -> None:
    def failures() -> float:
        text = api.get("/metrics").text
        line = next(
            (
                x
                for x in text.splitlines()
                if x.startswith('warroom_alert_enrichment_errors_total{entry="broken"}')
            ),
            None,
        )
        return float(line.split()[-1]) if line else 0.0

    before = failures()
    send(api, generic_key, summary="odd", labels={"broken": "yes"})
    assert failures() == before + 1  # something to alert on
    [alert] = alerts(context)
    assert alert.labels["good"] == "generic" and "bad" not in alert.labels
    [error] = alert.annotations["enrichment_errors"]
    assert error.startswith("broken: labels.bad: TypeError")


def test_a_link_the_sender_makes_a_script_is_left_out(
    api: TestClient, context: AppContext, generic_key: str
) -> None:
    """Links are shown to people as links; a sender's label made an enrichment link to javascript:."""
    linked = {
        "name": "dash",
        "match": {"labels": {"t": "dash"}},
        "links": [{"href": "{{ alert.labels.dash }}"}],
    }
    context.org = parse_org_config(yaml.safe_dump(org_data([linked])))
    send(api, generic_key, summary="odd", labels={"t": "dash", "dash": "javascript:alert(document.cookie)"})
    send(api, generic_key, summary="fine", labels={"t": "dash", "dash": "https://grafana.example/d/1"})
    odd, fine = sorted(alerts(context), key=lambda alert: alert.id)
    assert odd.links == [] and fine.links == [{"href": "https://grafana.example/d/1"}]
    assert odd.annotations["enrichment_errors"] == [
        "dash: links[0].href: not an http://, https:// or mailto: address"
    ]


def test_preview_shows_the_enriched_alert(api: TestClient, responder: dict[str, str]) -> None:
    body = {"summary": "5xx", "severity": "critical", "labels": {"namespace": "shop-us", "instance": "web-2"}}
    [shown] = api.post("/api/v1/alerts/preview", json=body, headers=responder).json()
    assert shown["service"] == "payments" and shown["labels"]["team"] == "us"
    assert [rule["rule"] for rule in shown["rules"] if rule["applied"]] == ["payments-down"]


@pytest.mark.parametrize(
    ("entry", "problem"),
    [
        ({"name": "x", "service": "nope"}, "'nope' is not a service"),
        ({"name": "x", "labels": {"team": "{{ alert.labels.team "}}, "enrich[0]"),
        ({"name": "x", "match": {"service": ["nope"]}}, "enrich[0].match.service"),
        ({"name": "x", "severity": "urgent"}, "enrich[0].severity"),
        (
            {"name": "x", "links": [{"href": "javascript:alert(1)"}]},
            "must be an http://, https:// or mailto:",
        ),
        # Its scheme written before the template: never a web link, whatever it renders.
        ({"name": "x", "links": [{"href": "javascript:{{ alert.summary }}"}]}, "must be an http://"),
    ],
)
def test_bad_entries_are_refused(entry: dict[str, Any], problem: str) -> None:
    with pytest.raises(ConfigError) as refused:
        parse_org_config(yaml.safe_dump(org_data([entry])))
    assert any(problem in str(p) for p in refused.value.problems), refused.value.problems
