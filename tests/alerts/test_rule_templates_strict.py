"""Rule templates are strict: a label, attribute or variable an alert lacks fails the template (the alert's
summary stands in, and the failure is kept and shown), and ``config check`` refuses a name a template is never
given. Rule conditions read an alert's alertname as grouping does: its label, else its type."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from tests.conftest import EXAMPLE_CONFIG
from warroom.alerts import automation
from warroom.alerts.adapters import AlertEvent, from_generic
from warroom.alerts.models import Alert
from warroom.cli.main import app
from warroom.context import AppContext
from warroom.orgconfig import ConfigError, OrgConfig, parse_org_config

MISSING_LABELS_RULE: dict[str, Any] = {
    "name": "api",
    "incident": {"title": "API {{ labels.alertname }}: {{ alert.summary }}"},
    "notify": [{"audience": "internal", "message": "{{ labels.nope }}"}],
}


def org_with_rules(*rules: dict[str, Any], **automation_fields: Any) -> OrgConfig:
    data: dict[str, Any] = yaml.safe_load(EXAMPLE_CONFIG.read_text())
    data["automation"]["rules"] = list(rules)
    data["automation"].update(automation_fields)
    return parse_org_config(yaml.safe_dump(data), "org.yaml")


def template_errors_counted(api: TestClient, rule: str, template: str) -> float:
    wanted = f'warroom_rule_template_errors_total{{template="rule {rule}: {template}"}}'
    line = next((x for x in api.get("/metrics").text.splitlines() if x.startswith(wanted)), None)
    return float(line.split()[-1]) if line else 0.0


def test_a_title_and_a_message_reading_a_label_the_alert_lacks_fail_and_say_so(
    api: TestClient, context: AppContext, generic_key: str, viewer: dict[str, str]
) -> None:
    """Before, both rendered empty: the incident was titled "API : fail handler", the message fell back
    silently, and nothing was kept, counted or put on the timeline."""
    context.org = org_with_rules(MISSING_LABELS_RULE)
    before = [template_errors_counted(api, "api", t) for t in ("incident.title", "notify.message")]
    response = api.post(
        f"/api/v1/alerts?key={generic_key}", json={"summary": "fail handler", "severity": "critical"}
    )
    assert response.status_code == 202, response.text
    [result] = response.json()["alerts"]
    incident = api.get(f"/api/v1/incidents/{result['incident']}", headers=viewer).json()
    assert incident["title"] == "fail handler"  # the alert's summary stands in
    timeline = api.get(f"/api/v1/incidents/{result['incident']}/timeline", headers=viewer).json()["items"]
    failed = [entry["action"] for entry in timeline if entry["action"].startswith("Template rule")]
    assert len(failed) == 2, failed
    assert "rule api: incident.title failed" in failed[0] and "'alertname'" in failed[0]
    assert "rule api: notify.message failed" in failed[1] and "'nope'" in failed[1]
    updates = api.get(f"/api/v1/incidents/{result['incident']}/updates", headers=viewer).json()
    assert [update["message"] for update in updates] == ["fail handler"]
    alert = api.get(f"/api/v1/alerts/{result['id']}", headers=viewer).json()
    assert [(e["handler"], e["event"]) for e in alert["handler_errors"]] == [
        ("rule api: incident.title", "template"),
        ("rule api: notify.message", "template"),
    ]
    after = [template_errors_counted(api, "api", t) for t in ("incident.title", "notify.message")]
    assert after == [before[0] + 1, before[1] + 1]


def test_config_test_alert_names_a_missing_label(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    data: dict[str, Any] = yaml.safe_load(EXAMPLE_CONFIG.read_text())
    data["automation"]["rules"] = [MISSING_LABELS_RULE]
    config = tmp_path / "org.yaml"
    config.write_text(yaml.safe_dump(data))
    alert = tmp_path / "alert.json"
    alert.write_text(json.dumps({"summary": "fail handler", "severity": "critical"}))
    shown = CliRunner().invoke(app, ["config", "test-alert", str(alert), "--json", "--config", str(config)])
    assert shown.exit_code == 0, shown.output
    [preview] = json.loads(shown.stdout)
    assert preview["incident"]["title"] == "fail handler"
    errors = preview["incident"]["template_errors"]
    assert [error.split(": UndefinedError")[0] for error in errors] == [
        "rule api: incident.title",
        "rule api: notify.message",
    ]
    # Answered, not logged: a dry run's alert is stored nowhere (the log spoke of an "ALR-0").
    assert "ALR-0" not in caplog.text


@pytest.mark.parametrize(
    ("template", "rendered"),
    [
        ("{{ labels.instance | default('n/a') }}", "n/a"),
        ("{{ labels.instance | default(alert.summary) }}", "disk full"),
        ("{% if labels.instance is defined %}{{ labels.instance }}{% else %}none{% endif %}", "none"),
        ("{{ labels.get('instance', 'none') }}", "none"),
        ("{{ labels.get('instance') or alert.type }}", "DiskFull"),
        ("{{ 'instance' in labels }}", "False"),
        ("{{ labels.team }}/{{ alert.service or 'unknown service' }}", "db/unknown service"),
        # A missing label tests false and equals nothing: these said what to do, yet failed on strictness.
        ("{{ labels.instance or 'n/a' }}", "n/a"),
        ("{% if labels.instance %}{{ labels.instance }}{% else %}none{% endif %}", "none"),
        ("{% if not labels.instance %}none{% endif %}", "none"),
        ("{{ 'prod' if labels.env == 'prod' else 'other' }}", "other"),
        ("{{ labels.env != 'prod' }}", "True"),
    ],
)
def test_templates_that_say_what_to_do_without_a_label_keep_working(template: str, rendered: str) -> None:
    alert = Alert(
        summary="disk full",
        alert_type="DiskFull",
        service=None,
        labels={"team": "db"},
        annotations={},
        handler_errors=[],
    )
    assert automation.render(template, alert, "rule disk: incident.title") == rendered
    assert alert.handler_errors == []


@pytest.mark.parametrize(
    "template",
    [
        "{{ labels.instance }}",
        "{{ alert.instance }}",
        "{{ labels['instance'] }}",
        "{{ labels.instance ~ '' }}",
        "{{ labels.instance | upper }}",
        "{{ labels.instance.host or 'n/a' }}",
        "{% for part in labels.instance %}{{ part }}{% endfor %}",
    ],
)
def test_a_missing_label_key_or_attribute_fails(template: str) -> None:
    alert = Alert(summary="disk full", alert_type="DiskFull", labels={}, annotations={}, handler_errors=[])
    assert automation.render(template, alert, "rule disk: incident.title") == ""
    [failure] = alert.handler_errors
    assert failure["event"] == "template" and failure["error"].startswith("UndefinedError")


def _event(summary: str, severity: str = "critical", **fields: Any) -> AlertEvent:
    [event] = from_generic({"summary": summary, "severity": severity, **fields})
    return event


# An alert each rule of the example file is written for: (rule, source, alert).
EXAMPLE_ALERTS: list[tuple[str, str, AlertEvent]] = [
    ("payments-down", "generic", _event("charges failing", service="payments")),
    ("low-urgency", "generic", _event("cert expires in 20 days", "warning", labels={"urgency": "low"})),
    (
        "critical-monitoring",
        "alertmanager",
        _event("5xx", labels={"alertname": "HighErrorRate"}, service="api"),
    ),
    ("critical-monitoring", "generic", _event("backup failed", "error")),  # no alertname, no service
    (
        "customer-reports",
        "customer-report",
        _event("Customer report (checkout): broken", labels={"feature": "x"}),
    ),
    (
        "internal-reports",
        "internal-discovery",
        _event("search returns stale results", "error", service="search"),
    ),
    ("vendor-outage", "third-party", _event("GitHub: degraded", "error")),
    ("monitoring-silent", "heartbeat", _event("No heartbeat", type="HeartbeatMissed")),
    ("scheduled-job-failed", "heartbeat", _event("backup exited 2", "error", type="HeartbeatFailed")),
]


@pytest.mark.parametrize(
    ("rule", "source", "event"), EXAMPLE_ALERTS, ids=[f"{r}-{s}" for r, s, _ in EXAMPLE_ALERTS]
)
def test_every_template_of_the_example_renders_for_the_alerts_it_is_written_for(
    org: OrgConfig, rule: str, source: str, event: AlertEvent
) -> None:
    shown = automation.preview(org, source, event)
    assert shown.incident is not None and shown.incident.rule == rule
    assert shown.incident.template_errors == []
    assert shown.incident.title.strip()


def test_every_rule_of_the_example_has_an_alert_above() -> None:
    data = yaml.safe_load(EXAMPLE_CONFIG.read_text())
    assert {rule["name"] for rule in data["automation"]["rules"]} == {rule for rule, _, _ in EXAMPLE_ALERTS}


def test_config_check_refuses_a_title_naming_the_incident_it_titles() -> None:
    """A title is rendered before its incident exists: ``{{ incident.ref }}`` fails on every alert."""
    rule = {"name": "api", "incident": {"title": "{{ incident.ref }}: {{ alert.summary }}"}}
    with pytest.raises(ConfigError) as caught:
        org_with_rules(rule)
    [problem] = caught.value.problems
    assert problem.location == "automation.rules[0].incident.title"
    assert problem.message.startswith("bad template: 'incident' is never given to it")
    assert "it has alert, labels" in problem.message
    # A notify message is given the incident.
    notify = {"audience": "internal", "message": "{{ incident.ref }}: {{ alert.summary }}"}
    assert org_with_rules({"name": "api", "incident": {}, "notify": [notify]})


def refused_template(field: str, text: str) -> pytest.ExceptionInfo[ConfigError]:
    """The problem config check reports for a rule whose title (or notify message) is ``text``."""
    rule: dict[str, Any] = {"name": "api", "incident": {}}
    if field == "title":
        rule["incident"]["title"] = text
    else:
        rule["notify"] = [{"audience": "internal", "message": text}]
    with pytest.raises(ConfigError) as caught:
        org_with_rules(rule)
    return caught


@pytest.mark.parametrize(
    ("field", "text"),
    [("title", "{{ alerts.summary }}"), ("message", "{{ label.service }}"), ("message", "{{ summary }}")],
)
def test_config_check_refuses_a_name_no_rule_template_is_given(field: str, text: str) -> None:
    caught = refused_template(field, text)
    assert "is never given to it" in str(caught.value)


@pytest.mark.parametrize(
    ("field", "text", "named"),
    [
        ("title", "{{ alert.status }}", "alert.status"),
        ("title", "{{ alert.annotation.summary }}", "alert.annotation"),  # annotations, misspelt
        ("title", "{{ alert['first_seen_at'] }}", "alert.first_seen_at"),
        ("message", "{{ incident.url }} {{ alert.summary }}", "incident.url"),
        ("message", "{{ alert.links }} and {{ alert.status }}", "alert.links, alert.status"),
    ],
)
def test_config_check_refuses_a_field_alert_or_incident_never_has(field: str, text: str, named: str) -> None:
    """``alert`` and ``incident`` hold fixed fields: one they never have fails on every alert."""
    caught = refused_template(field, text)
    assert f"bad template: {named}: " in str(caught.value) and "has no such field; it has " in str(
        caught.value
    )


def test_the_fields_config_check_knows_are_those_templates_get() -> None:
    """One list of fields: what config check accepts is what ``render`` gives."""
    from warroom.alerts.config import ALERT_TEMPLATE_FIELDS, INCIDENT_TEMPLATE_FIELDS

    [event] = from_generic({"summary": "x"})
    alert = Alert(id=1, source="generic", alert_type="generic", summary="x", severity="info", labels={})
    alert.annotations, alert.dedup_key = {}, event.dedup_key
    assert tuple(automation.template_alert(alert)) == ALERT_TEMPLATE_FIELDS
    assert tuple(automation.template_incident("INC-1", "t", "P1")) == INCIDENT_TEMPLATE_FIELDS
    # Every field, a mapping method and a label read by key are accepted.
    fields = " ".join(f"{{{{ alert.{name} }}}}" for name in ALERT_TEMPLATE_FIELDS)
    message = (
        f"{fields} {{{{ alert.labels.get('x') }}}} {{{{ alert.get('ref') }}}} {{{{ incident['title'] }}}}"
    )
    assert org_with_rules(
        {"name": "api", "incident": {}, "notify": [{"audience": "internal", "message": message}]}
    )


def test_config_check_accepts_names_a_template_sets_itself_and_the_sandbox_s_globals() -> None:
    title = (
        "{% set host = labels.get('instance', 'unknown') %}{{ host }}"
        "{% for x in range(1) %}{{ x }}{% endfor %}"
    )
    assert org_with_rules({"name": "api", "incident": {"title": title}})


ALERTNAME_RULES: list[dict[str, Any]] = [
    {"name": "db-equal", "match": {"labels": {"alertname": "DBDown"}}, "incident": {}},
    {"name": "db-regex", "match": {"labels_regex": {"alertname": "DB.*"}}, "incident": {}},
]


@pytest.mark.parametrize("rule", ALERTNAME_RULES, ids=[r["name"] for r in ALERTNAME_RULES])
def test_a_rule_matching_alertname_sees_the_type_of_an_alert_without_the_label(
    api: TestClient, context: AppContext, generic_key: str, viewer: dict[str, str], rule: dict[str, Any]
) -> None:
    """Grouping reads an alert's alertname as its type when it has no such label; before, matching did not:
    "no label 'alertname'" for a plain JSON alert of type DBDown."""
    context.org = org_with_rules(rule)
    sent = {"summary": "primary down", "severity": "critical", "type": "DBDown"}
    response = api.post(f"/api/v1/alerts?key={generic_key}", json=sent)
    assert response.status_code == 202, response.text
    [result] = response.json()["alerts"]
    alert = api.get(f"/api/v1/alerts/{result['id']}", headers=viewer).json()
    assert alert["rules"] == [rule["name"]] and result["incident"] is not None
    # The dry run agrees, and says where the alertname came from when another type does not match.
    shown = automation.preview(context.org, "generic", _event("primary down", type="DBDown"))
    assert shown.incident is not None and shown.incident.group["alertname"] == "DBDown"
    [verdict] = automation.preview(context.org, "generic", _event("cache down", type="CacheDown")).rules
    assert verdict.why_not is not None and "'CacheDown'" in verdict.why_not
    assert "the alert's type: it has no alertname label" in verdict.why_not
    # A label the alert has still wins over its type, as in grouping.
    labelled = _event("primary down", type="DBDown", labels={"alertname": "Other"})
    assert not automation.preview(context.org, "generic", labelled).rules[0].matched


def test_an_inhibit_rule_naming_alertname_finds_an_inhibitor_named_by_its_type(
    api: TestClient, context: AppContext, generic_key: str, viewer: dict[str, str]
) -> None:
    """The inhibitor is looked for in SQL first: an alertname condition there reads the type too."""
    host_down = {
        "name": "host-down",
        "source": {"labels": {"alertname": "HostDown"}},
        "target": {"labels_regex": {"instance": ".+"}},
        "equal": ["instance"],
    }
    everything = {"name": "everything", "match": {"source": ["generic"]}, "incident": {}}
    context.org = org_with_rules(everything, inhibit_rules=[host_down])
    inhibitor = {"summary": "db-1 down", "type": "HostDown", "labels": {"instance": "db-1"}, "dedup_key": "h"}
    symptom = {
        "summary": "postgres down",
        "labels": {"instance": "db-1", "alertname": "PG"},
        "dedup_key": "p",
    }
    for sent in (inhibitor, symptom):
        response = api.post(f"/api/v1/alerts?key={generic_key}", json={"severity": "critical", **sent})
        assert response.status_code == 202, response.text
    muted = api.get("/api/v1/alerts/2", headers=viewer).json()
    assert muted["incident"] is None
    assert muted["inhibited_by"] == "ALR-1"


def test_a_summarys_line_breaks_do_not_reach_messages_as_lines(
    api: TestClient, context: AppContext, generic_key: str, viewer: dict[str, str]
) -> None:
    """A summary "db down\\n\\nINC-9 · P3 · resolved\\nSent by alice…" laid out a forged footer in the email
    and Slack text of the rule's update; control and direction characters reached them too."""
    context.org = org_with_rules(
        {
            "name": "db",
            "incident": {},
            "notify": [
                {"audience": "internal", "message": "{{ alert.summary }}"},
                {"audience": "internal", "message": " "},  # blank: the summary stands in
            ],
        }
    )
    forged = "db down\n\nINC-9 · P3 · resolved\nSent by alice to internal: false alarm\x1b[2J\u202e"
    sent = {"summary": forged, "severity": "critical", "annotations": {"description": "line 1\nline 2"}}
    response = api.post(f"/api/v1/alerts?key={generic_key}", json=sent)
    [result] = response.json()["alerts"]
    one_line = (
        "db down INC-9 · P3 · resolved Sent by alice to internal: false alarm [2J"  # ESC, U+202E: spaces
    )
    updates = api.get(f"/api/v1/incidents/{result['incident']}/updates", headers=viewer).json()
    assert [update["message"] for update in updates] == [one_line, one_line]
    incident = api.get(f"/api/v1/incidents/{result['incident']}", headers=viewer).json()
    assert incident["summary"] == f"{one_line}\n\nline 1\nline 2"  # the description keeps its lines
