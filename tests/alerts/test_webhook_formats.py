"""automation.webhook_formats: a tool's own webhook JSON (Uptime Kuma, Datadog, a CI system), read as alerts
by templates of the org file and posted to ``/api/v1/alerts/webhook/<format>``."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import hashlib
import hmac
import json
import threading
from pathlib import Path
from typing import Any

import pytest
import yaml
from fastapi.testclient import TestClient
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import select
from typer.testing import CliRunner

from tests.alerts.conftest import PAYLOADS, integration_rows, make_key
from tests.alerts.test_intake import alerts
from tests.conftest import EXAMPLE_CONFIG
from warroom.alerts import adapters, fastpath
from warroom.alerts.adapters import InvalidPayload, from_webhook, parse_webhook_body
from warroom.alerts.config import WebhookFormat
from warroom.alerts.models import Alert
from warroom.auth import integrations
from warroom.auth.models import IntegrationKey, IntegrationType
from warroom.cli.main import app
from warroom.context import AppContext
from warroom.incidents.models import Incident
from warroom.orgconfig import ConfigError, OrgConfig, load_org_config, parse_org_config

# A batch-shaped tool: one delivery carries several checks, each with its own state word.
CHECKS = {
    "name": "checks",
    "each": "payload.checks",
    "skip": "item.state == 'pending'",
    "alert": "{{ item.check }}",
    "summary": "{{ item.check }} on {{ item.host }}: {{ item.output }}",
    "service": "{{ payload.team }}",
    "severity": "{{ item.level }}",
    "severity_map": {"sev1": "critical", "sev2": "error"},
    "resolve": "item.state == 'ok'",
    "acknowledge": "item.state == 'acked'",
    "labels": {"host": "{{ item.host }}", "zone": "{{ item.zone }}"},
    "annotations": {"output": "{{ item.output }}"},
    "links": [{"href": "{{ item.url }}", "text": "Check"}],
}


def kuma(
    status: int = 0, monitor_id: int = 29, message: str = "getaddrinfo ENOTFOUND shop.example.com"
) -> Any:
    """What Uptime Kuma's Webhook notification posts (application/json): heartbeat, monitor and msg."""
    return {
        "heartbeat": {
            "monitorID": monitor_id,
            "status": status,
            "time": "2026-12-05 01:51:35.527",
            "msg": message,
            "important": True,
            "duration": 0,
            "timezone": "Europe/Berlin",
            "timezoneOffset": "+01:00",
            "localDateTime": "2026-12-05 02:51:35",
        },
        "monitor": {
            "id": monitor_id,
            "name": f"Shop {monitor_id}",
            "url": "https://shop.example.com",
            "type": "http",
            "hostname": None,
            "port": None,
            "active": True,
            "tags": [],
        },
        "msg": f"[Shop {monitor_id}] [{'✅ Up' if status == 1 else '🔴 Down'}] {message}",
    }


KUMA_TEST = {"heartbeat": None, "monitor": None, "msg": "Uptime Kuma Webhook Testing"}


def check(state: str = "critical", host: str = "web-1", **fields: Any) -> dict[str, Any]:
    return {
        "check": "disk",
        "host": host,
        "state": state,
        "level": "sev1",
        "output": "/ at 97%",
        "url": f"https://checks.example/{host}/disk",
        **fields,
    }


def example_format(name: str) -> WebhookFormat:
    found = load_org_config(EXAMPLE_CONFIG).automation.webhook_format(name)
    assert found is not None
    return found


def org_with(*formats: dict[str, Any]) -> OrgConfig:
    data = yaml.safe_load(EXAMPLE_CONFIG.read_text())
    data["automation"]["webhook_formats"] = data["automation"]["webhook_formats"] + list(formats)
    return parse_org_config(yaml.safe_dump(data))


# Older tools and scripts post forms (curl -d): fields, and sometimes JSON inside one of them.
NAGIOS_FORM = {
    "name": "nagios-form",
    "alert": "{{ payload.service }}",
    "dedup_key": "{{ payload.host }}/{{ payload.service }}",
    "summary": "{{ payload.service }} on {{ payload.host }} is {{ payload.state }}",
    "severity": "{{ payload.state }}",
    "resolve": "payload.state == 'OK'",
    "labels": {"host": "{{ payload.host }}", "contacts": "{{ payload.contact | join(',') }}"},
}
JSON_IN_FORM = {
    "name": "json-in-form",
    "summary": "{{ (payload.data | from_json).msg }}",
    "dedup_key": "{{ (payload.data | from_json).id }}",
}
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


@pytest.fixture
def org() -> OrgConfig:
    return org_with(CHECKS, NAGIOS_FORM, JSON_IN_FORM)


@pytest.fixture
def webhook_key(context: AppContext) -> str:
    return make_key(context, "webhook", "tools")


def test_uptime_kuma_down_and_up_are_one_alert() -> None:
    uptime_kuma = example_format("uptime-kuma")
    [down] = from_webhook(kuma(0), uptime_kuma)
    [up] = from_webhook(kuma(1, message="200 - OK"), uptime_kuma)
    assert (down.action, down.severity, down.alert_type) == ("trigger", "critical", "Shop 29")
    assert down.summary == "Shop 29: getaddrinfo ENOTFOUND shop.example.com"
    assert down.labels == {"monitor": "Shop 29", "alertname": "Shop 29", "webhook_format": "uptime-kuma"}
    assert down.links == [{"href": "https://shop.example.com", "text": "Monitored URL"}]
    assert down.raw == kuma(0)  # the payload is kept as evidence
    assert up.action == "resolve"
    assert down.dedup_key == up.dedup_key == "kuma-29"
    assert from_webhook(kuma(0, monitor_id=30), uptime_kuma)[0].dedup_key == "kuma-30"
    # The test button sends no heartbeat: nothing to store.
    assert from_webhook(KUMA_TEST, uptime_kuma) == []


def test_a_monitored_address_that_is_not_a_web_link_is_left_out_and_the_alert_kept(
    api: TestClient, context: AppContext, webhook_key: str
) -> None:
    """Uptime Kuma's TCP and ping monitors post their target (tcp://db:5432, a bare host) as its url.
    Before, the delivery was refused (400) and, since tools do not resend on a 4xx, the alert lost."""
    for monitor_id, url in (
        (41, "tcp://db.internal:5432"),
        (42, "db.internal:5432"),
        (43, "javascript:alert(1)"),
    ):
        down = kuma(0, monitor_id=monitor_id)
        down["monitor"]["url"] = url
        answer = api.post(f"/api/v1/alerts/webhook/uptime-kuma?key={webhook_key}", json=down)
        assert answer.status_code == 202, answer.text
    with context.db.read() as session:
        stored = session.execute(select(Alert.dedup_key, Alert.links).order_by(Alert.id)).all()
    assert stored == [("kuma-41", []), ("kuma-42", []), ("kuma-43", [])]


def test_each_item_is_an_alert_with_its_own_state() -> None:
    checks = WebhookFormat.model_validate(CHECKS)
    payload = {
        "team": "storage",
        "checks": [
            check(),
            check("acked", host="web-2", level="warn"),
            check("ok", host="web-3", level="whatever"),
            check("pending", host="web-4"),
            check(host="web-5", zone=None, url=""),
        ],
    }
    events = from_webhook(payload, checks)
    assert [(e.action, e.severity, e.labels["host"]) for e in events] == [
        ("trigger", "critical", "web-1"),  # sev1 by the format's map
        ("acknowledge", "warning", "web-2"),  # warn: one of the usual words
        ("resolve", "warning", "web-3"),  # an unknown word: the default severity
        ("trigger", "critical", "web-5"),  # web-4 is pending: skipped
    ]
    first = events[0]
    assert (first.summary, first.service, first.alert_type) == ("disk on web-1: / at 97%", "storage", "disk")
    assert first.annotations == {"output": "/ at 97%"}
    assert first.raw == payload["checks"][0]
    # Without a dedup key, the identity is the name, service and labels: a zone the tool leaves out (null or
    # missing) is no label, and a link that renders empty is left out.
    assert "zone" not in events[3].labels and events[3].links == []
    assert len({e.dedup_key for e in events}) == 4
    again = from_webhook({"team": "storage", "checks": [check("ok", output="back to 60%")]}, checks)
    assert again[0].dedup_key == first.dedup_key


def test_fields_named_like_methods_are_the_payloads_fields() -> None:
    """``payload.items`` read the dict's method: ``each: payload.items`` was "not a list", and a summary of
    ``payload.values`` rendered ``<built-in method values of dict object at 0x7f…>``, whose address changed
    the dedup key on every delivery: each one opened a new alert and a resolve never found its problem."""
    tool = WebhookFormat.model_validate(
        {
            "name": "items-tool",
            "each": "payload.items",
            "alert": "{{ item.name }}",
            "summary": "{{ item.name }} {{ payload.values }} {{ payload.title }}",
            "labels": {"k": "{{ payload.keys }}", "count": "{{ payload.count }}"},
        }
    )
    first, second = (
        from_webhook({"items": [{"name": "job1"}], "values": "v1", "title": None, "keys": "k1"}, tool),
        from_webhook({"items": [{"name": "job1"}], "values": "v1", "title": None, "keys": "k1"}, tool),
    )
    assert [(e.summary, e.labels["k"]) for e in first] == [("job1 v1", "k1")]
    assert "count" not in first[0].labels
    assert first[0].dedup_key == second[0].dedup_key
    # A method a payload has no field for reads as a missing field (empty), and can still be called.
    without = WebhookFormat.model_validate(
        {"name": "plain", "summary": "[{{ payload.values }}] {{ payload.keys() | list | join(',') }}"}
    )
    [event] = from_webhook({"a": 1, "b": 2}, without)
    assert event.summary == "[] a,b"
    # Called, a method is the method whatever fields the sender's data has (tags with an "items" key made
    # tags.items() call a string: the delivery was refused).
    looped = WebhookFormat.model_validate(
        {
            "name": "looped",
            "summary": "{% for k, v in payload.tags.items() %}{{ k }}={{ v }};{% endfor %}"
            "{{ payload.tags.get('env') }} {{ payload.tags.items }}",
        }
    )
    [event] = from_webhook({"tags": {"env": "prod", "items": "3", "get": "x"}}, looped)
    assert event.summary == "env=prod;items=3;get=x;prod 3"


def test_long_values_are_shortened_not_refused() -> None:
    checks = WebhookFormat.model_validate({**CHECKS, "dedup_key": "{{ item.id }}"})
    [event] = from_webhook({"checks": [check(output="x" * 5000, id="k" * 300, host="h" * 300)]}, checks)
    assert len(event.summary) == 1024 and event.summary.endswith("…")
    assert len(event.dedup_key) == 64  # hashed: the tool's id is longer than a dedup key may be
    assert event.labels["host"] == "h" * 300


@pytest.mark.parametrize(
    ("fields", "payload", "at_fault"),
    [
        ({}, {"checks": {"a": 1}}, "each"),  # not a list
        ({}, {"checks": [check()] * 1001}, "each"),  # over the limit
        ({"summary": "{{ item.output + 1 }}"}, {"checks": [check(), check()]}, "[0].summary"),
        ({"labels": {"x": "{{ item.check.upper(1, 2) }}"}}, {"checks": [check()]}, "[0].labels.x"),
        # The sandbox: nothing in the payload can be changed, nor Python's internals reached.
        ({"summary": "{{ item.update({'a': 1}) }}"}, {"checks": [check()]}, "[0].summary"),
        ({"resolve": "item.__class__.__mro__[1].__subclasses__()"}, {"checks": [check()]}, "[0].resolve"),
    ],
)
def test_a_payload_the_format_cannot_read_is_refused_naming_the_field(
    fields: dict[str, Any], payload: Any, at_fault: str
) -> None:
    with pytest.raises(InvalidPayload) as refused:
        from_webhook(payload, WebhookFormat.model_validate({**CHECKS, **fields}))
    assert refused.value.details and refused.value.details[0]["field"] == at_fault, refused.value.details


def test_the_org_file_refuses_templates_that_do_not_compile() -> None:
    for fields, where in [
        ({"summary": "{{ item.check "}, "summary"),
        ({"resolve": "item.state =="}, "resolve"),
        ({"labels": {"host": "{% if %}"}}, "labels.host"),
        ({"name": "Bad Name"}, "name"),
    ]:
        with pytest.raises(ConfigError) as refused:
            org_with({**CHECKS, **fields})
        assert any("webhook_formats" in str(p) and where in str(p) for p in refused.value.problems), (
            refused.value.problems
        )
    with pytest.raises(ConfigError) as duplicate:
        org_with(CHECKS, copy.deepcopy(CHECKS))
    assert any("webhook_formats" in str(p) for p in duplicate.value.problems), duplicate.value.problems


def incidents(context: AppContext) -> list[Incident]:
    with context.db.read() as session:
        return list(session.scalars(select(Incident).order_by(Incident.id)))


def test_posted_webhook_opens_then_resolves(api: TestClient, context: AppContext, webhook_key: str) -> None:
    path = f"/api/v1/alerts/webhook/uptime-kuma?key={webhook_key}"
    down = api.post(path, json=kuma(0))
    assert down.status_code == 202, down.text
    assert [a["outcome"] for a in down.json()["alerts"]] == ["created"]
    [alert] = alerts(context)
    assert (alert.source, alert.status, alert.severity, alert.dedup_key) == (
        "webhook",
        "firing",
        "critical",
        "kuma-29",
    )
    # The example's critical-monitoring rule takes webhook alerts: an incident opens.
    [incident] = incidents(context)
    assert alert.incident_id == incident.id
    up = api.post(path, json=kuma(1, message="200 - OK"), headers={})
    assert up.status_code == 202 and alerts(context)[0].status == "resolved"
    # The test button: a good key is answered and nothing is stored; the key is still checked.
    tested = api.post(path, json=KUMA_TEST)
    assert tested.status_code == 202 and tested.json()["accepted"] == 0
    assert api.post("/api/v1/alerts/webhook/uptime-kuma?key=" + "0" * 32, json=KUMA_TEST).status_code == 401
    # Bearer works as for the other JSON sources; a batch format through the same route.
    batch = api.post(
        "/api/v1/alerts/webhook/checks",
        json={"checks": [check(), check(host="web-2")]},
        headers={"Authorization": f"Bearer {webhook_key}"},
    )
    assert batch.status_code == 202 and batch.json()["accepted"] == 2
    assert len(alerts(context)) == 3


def test_refusals_store_nothing(
    api: TestClient, context: AppContext, webhook_key: str, generic_key: str
) -> None:
    for path, body, status, code in [
        (f"/api/v1/alerts/webhook/nope?key={webhook_key}", json.dumps(kuma()), 404, "not_found"),
        (f"/api/v1/alerts/webhook/uptime-kuma?key={webhook_key}", "{not json", 400, "invalid_payload"),
        (f"/api/v1/alerts/webhook/checks?key={webhook_key}", '{"checks": 3}', 400, "invalid_payload"),
        ("/api/v1/alerts/webhook/uptime-kuma", json.dumps(kuma()), 401, "unauthorized"),
        (f"/api/v1/alerts/webhook/uptime-kuma?key={generic_key}", json.dumps(kuma()), 403, "forbidden"),
        (f"/api/v1/alerts/webhook/{'x' * 61}?key={webhook_key}", json.dumps(kuma()), 422, None),
    ]:
        refused = api.post(path, content=body)
        assert refused.status_code == status, (path, refused.text)
        if code is not None:
            assert refused.json()["error"]["code"] == code
    # A webhook key does not open the other intake endpoints either.
    assert api.post(f"/api/v1/alerts?key={webhook_key}", json={"summary": "x"}).status_code == 403
    assert alerts(context) == []


def test_preview_reads_with_the_servers_format(
    api: TestClient, context: AppContext, webhook_key: str, responder: dict[str, str]
) -> None:
    preview = api.post(
        "/api/v1/alerts/preview?webhook_format=uptime-kuma", content=json.dumps(kuma(0)), headers=responder
    )
    assert preview.status_code == 200, preview.text
    [shown] = preview.json()
    assert (shown["source"], shown["dedup_key"], shown["live"]) == ("webhook", "kuma-29", True)
    assert [rule["rule"] for rule in shown["rules"] if rule["matched"]] == ["critical-monitoring"]
    unknown = api.post("/api/v1/alerts/preview?webhook_format=nope", content=b"{}", headers=responder)
    assert unknown.status_code == 404
    wrong = api.post(
        "/api/v1/alerts/preview?source=pagerduty&webhook_format=uptime-kuma", content=b"{}", headers=responder
    )
    assert wrong.status_code == 400
    assert alerts(context) == []


def test_cli_test_alert_reads_a_payload_with_a_format(tmp_path: Path) -> None:
    runner = CliRunner()
    down = tmp_path / "down.json"
    down.write_text(json.dumps(kuma(0)))
    shown = runner.invoke(
        app, ["config", "test-alert", str(down), "--format", "uptime-kuma", "--config", str(EXAMPLE_CONFIG)]
    )
    assert shown.exit_code == 0, shown.output
    assert "Shop 29: getaddrinfo ENOTFOUND" in shown.output and "webhook_format=uptime-kuma" in shown.output
    assert "critical-monitoring" in shown.output
    test_ping = tmp_path / "test.json"
    test_ping.write_text(json.dumps(KUMA_TEST))
    skipped = runner.invoke(
        app,
        ["config", "test-alert", str(test_ping), "--format", "uptime-kuma", "--config", str(EXAMPLE_CONFIG)],
    )
    assert skipped.exit_code == 0 and "nothing would be stored" in " ".join(skipped.output.split())
    unknown = runner.invoke(
        app, ["config", "test-alert", str(down), "--format", "nope", "--config", str(EXAMPLE_CONFIG)]
    )
    assert unknown.exit_code != 0 and "no webhook format named 'nope'" in " ".join(unknown.output.split())


def test_forms_are_read_as_their_fields(api: TestClient, context: AppContext, webhook_key: str) -> None:
    path = f"/api/v1/alerts/webhook/nagios-form?key={webhook_key}"
    body = "host=db-1&service=Disk%20%2Fvar&state=CRITICAL&contact=ops&contact=dba"
    assert api.post(path, content=body, headers=FORM).status_code == 202
    [alert] = alerts(context)
    assert (alert.summary, alert.severity, alert.dedup_key) == (
        "Disk /var on db-1 is CRITICAL",
        "critical",
        "db-1/Disk /var",
    )
    assert alert.labels["contacts"] == "ops,dba"  # a repeated field is a list
    assert alert.raw["host"] == "db-1"
    ok = api.post(path, content="host=db-1&service=Disk%20%2Fvar&state=OK", headers=FORM)
    assert ok.status_code == 202 and alerts(context)[0].status == "resolved"
    # JSON in a field, read with from_json; JSON that is not is refused, naming the field.
    inner = "data=" + '{"id": 7, "msg": "backup failed"}'.replace(" ", "%20")
    answer = api.post(f"/api/v1/alerts/webhook/json-in-form?key={webhook_key}", content=inner, headers=FORM)
    assert answer.status_code == 202, answer.text
    assert alerts(context)[1].summary == "backup failed"
    refused = api.post(
        f"/api/v1/alerts/webhook/json-in-form?key={webhook_key}", content="data=oops", headers=FORM
    )
    assert refused.status_code == 400
    assert {d["field"] for d in refused.json()["error"]["details"]} == {"summary", "dedup_key"}
    # multipart/form-data, as Uptime Kuma's "form-data" preset posts: its JSON in the field "data".
    multipart = api.post(
        f"/api/v1/alerts/webhook/json-in-form?key={webhook_key}",
        files={"data": (None, '{"id": 8, "msg": "disk full"}'), "note": (None, "from kuma")},
    )
    assert multipart.status_code == 202, multipart.text
    assert alerts(context)[2].summary == "disk full" and alerts(context)[2].raw["note"] == "from kuma"
    broken = api.post(
        f"/api/v1/alerts/webhook/json-in-form?key={webhook_key}",
        content=b"no parts here",
        headers={"Content-Type": "multipart/form-data; boundary=xyz"},
    )
    assert broken.status_code == 400 and "not a readable form" in broken.text
    # The same body without the form's content type is not JSON: refused.
    assert api.post(path, content=body).status_code == 400
    assert len(alerts(context)) == 3


@pytest.mark.parametrize(
    ("body", "content_type", "reason"),
    [
        (
            b"no parts here",
            "multipart/form-data; boundary=xyz",
            "the boundary of the Content-Type (--xyz) is not in the body",
        ),
        (b"--b\r\n\r\nv\r\n--b--\r\n", "multipart/form-data", "the Content-Type names no boundary"),
        (
            b"--b\r\n\r\nv\r\n--b--\r\n",
            'multipart/form-data; boundary=""',
            "the Content-Type names no boundary",
        ),
        (
            b'--b\r\nContent-Disposition: form-data; name="a"\r\n\r\nv\r\n',
            "multipart/form-data; boundary=b",
            "the closing boundary (--b--) is missing",
        ),
    ],
)
def test_a_form_that_cannot_be_split_says_why(body: bytes, content_type: str, reason: str) -> None:
    """The MIME parser's defects have no message: the answer was "not a readable form: " and nothing."""
    with pytest.raises(InvalidPayload) as refused:
        parse_webhook_body(body, content_type)
    assert refused.value.message.startswith(f"the body is not a readable form: {reason}")


def test_an_alertname_label_names_the_alert_when_no_alert_template_does() -> None:
    named_by_label = WebhookFormat.model_validate(
        {"name": "by-label", "summary": "{{ payload.text }}", "labels": {"alertname": "{{ payload.rule }}"}}
    )
    [event] = from_webhook({"text": "queue backed up", "rule": "QueueDepth"}, named_by_label)
    assert (event.alert_type, event.labels["alertname"]) == ("QueueDepth", "QueueDepth")
    [unnamed] = from_webhook({"text": "queue backed up"}, named_by_label)
    assert unnamed.alert_type == "by-label"  # the format's name


@pytest.mark.parametrize(
    ("name", "shown"),
    [
        ("shop\there", "shop here"),
        ("shop\r\nINC-1 resolved", "shop INC-1 resolved"),
        ("evil\x1b[2Jname", "evil [2Jname"),
        ("abc\u202edef", "abc def"),
        (" \t\n ", "uptime-kuma"),  # nothing visible: the format's name, as with no name at all
        (" Shop 29 ", "Shop 29"),  # trimmed, as before
    ],
)
def test_a_rendered_name_with_hidden_characters_is_made_one_visible_line_not_refused(
    name: str, shown: str
) -> None:
    """The name is the tool's text (a monitor named with a tab), which it cannot change, and a refusal loses
    the alert, since tools do not resend on a 4xx. Its type is one visible line; the alertname label stays
    as rendered, so the alert's identity is unchanged."""
    down = kuma(0)
    down["monitor"]["name"] = name
    [event] = from_webhook(down, example_format("uptime-kuma"))
    assert event.alert_type == shown
    assert event.labels["alertname"] == (name.strip() or "uptime-kuma")  # as rendered (trimmed)
    service = WebhookFormat.model_validate(
        {"name": "svc", "summary": "{{ payload.text }}", "service": "{{ payload.team }}"}
    )
    [owned] = from_webhook({"text": "queue backed up", "team": "payments\u202e\t"}, service)
    assert owned.service == "payments"


def test_a_posted_name_with_a_tab_is_stored_as_one_line_and_a_plain_alert_s_type_still_refused(
    api: TestClient, context: AppContext, webhook_key: str, generic_key: str
) -> None:
    body = {
        "monitor": {"id": 8, "name": "shop\there", "url": "https://shop.example.com/"},
        "heartbeat": {"status": 0, "msg": "down"},
    }
    answer = api.post(f"/api/v1/alerts/webhook/uptime-kuma?key={webhook_key}", json=body)
    assert answer.status_code == 202, answer.text
    [alert] = alerts(context)
    assert (alert.alert_type, alert.dedup_key) == ("shop here", "kuma-8")
    # A script's own JSON alert says what it means: a type with a tab is refused, for the script to fix.
    refused = api.post(f"/api/v1/alerts?key={generic_key}", json={"summary": "s", "type": "a\tb"})
    assert refused.status_code == 400, refused.text
    assert "type: must not contain control or formatting characters" in refused.json()["error"]["message"]
    assert len(alerts(context)) == 1


@settings(max_examples=300, deadline=None)
@given(
    body=st.binary(max_size=2000)
    | st.builds(
        lambda parts: b"--b\r\n" + b"\r\n--b\r\n".join(parts) + b"\r\n--b--\r\n",
        st.lists(
            st.binary(max_size=200)
            | st.builds(
                lambda name, charset, encoding, value: (
                    (
                        f'Content-Disposition: form-data; name="{name}"\r\n'
                        f"Content-Type: text/plain; charset={charset}\r\n"
                        f"Content-Transfer-Encoding: {encoding}\r\n\r\n"
                    ).encode("latin-1", "replace")
                    + value
                ),
                st.text(max_size=10),
                st.sampled_from(["utf-8", "latin-1", "no-such-charset", ""]),
                st.sampled_from(["8bit", "base64", "quoted-printable", "x-odd"]),
                st.binary(max_size=100),
            ),
            max_size=5,
        ),
    ),
    content_type=st.sampled_from(
        [
            None,
            "application/json",
            "application/x-www-form-urlencoded",
            "multipart/form-data; boundary=b",
            "multipart/form-data",
            'multipart/form-data; boundary=""',
        ]
    ),
)
def test_any_body_is_read_or_refused_as_bad_input(body: bytes, content_type: str | None) -> None:
    with contextlib.suppress(InvalidPayload):
        parse_webhook_body(body, content_type)


# The formats the example org file ships for cloud monitors, each read from a payload of its documented shape.
def test_shipped_formats_read_google_cloud_azure_monitor_and_pingdom() -> None:
    def read(name: str, payload: dict[str, Any]) -> Any:
        [event] = from_webhook(payload, example_format(name))
        return event

    gcp = json.loads((PAYLOADS / "google-cloud-monitoring-1.2-open.json").read_text())
    opened = read("google-cloud", gcp)
    assert (opened.action, opened.dedup_key, opened.severity, opened.alert_type) == (
        "trigger",
        "gcp-0.opqiw61fsv7p",
        "critical",
        "Checkout uptime",
    )
    assert opened.summary.startswith("An uptime check on shop-prod")
    assert opened.labels["resource"] == "checkout.example.com" and opened.labels["project"] == "shop-prod"
    assert opened.links[0]["href"].startswith("https://console.cloud.google.com/")
    closed = copy.deepcopy(gcp)
    closed["incident"].update(state="closed", ended_at=1764934200)
    del closed["incident"]["severity"]  # older policies name none: the format's default
    assert (read("google-cloud", closed).action, read("google-cloud", closed).severity) == (
        "resolve",
        "error",
    )

    azure = json.loads((PAYLOADS / "azure-monitor-common-schema-fired.json").read_text())
    fired = read("azure-monitor", azure)
    assert (fired.action, fired.severity, fired.alert_type) == ("trigger", "error", "db-cpu-high")
    assert fired.summary == "db-cpu-high: CPU above 90% for 5 minutes"
    assert fired.labels["target"] == "db-1" and fired.labels["signal_type"] == "Metric"
    resolved = copy.deepcopy(azure)
    resolved["data"]["essentials"].update(monitorCondition="Resolved", description="")
    back = read("azure-monitor", resolved)
    assert back.action == "resolve" and back.dedup_key == fired.dedup_key
    assert back.summary == "db-cpu-high: Metric alert on db-1"

    pingdom = json.loads((PAYLOADS / "pingdom-check-down.json").read_text())
    down = read("pingdom", pingdom)
    assert (down.action, down.dedup_key, down.severity) == ("trigger", "pingdom-803318", "critical")
    assert down.summary == "Shop front page is DOWN: HTTP Error 502"
    up = read(
        "pingdom", {**pingdom, "previous_state": "DOWN", "current_state": "UP", "importance_level": "LOW"}
    )
    assert (up.action, up.dedup_key) == ("resolve", "pingdom-803318")


def test_shipped_sentry_format_reads_metric_and_issue_alerts() -> None:
    def read(payload: dict[str, Any]) -> Any:
        [event] = from_webhook(payload, example_format("sentry"))
        return event

    metric = json.loads((PAYLOADS / "sentry-metric-alert-critical.json").read_text())
    critical = read(metric)
    assert (critical.action, critical.dedup_key, critical.severity, critical.alert_type) == (
        "trigger",
        "sentry-metric-4",
        "critical",
        "Too many errors",
    )
    assert critical.summary == "Critical: Too many errors"
    assert critical.labels["project"] == "checkout-web" and critical.labels["environment"] == "production"
    assert critical.annotations["description"].startswith("1000 events in the last 10 minutes")
    assert critical.links[0]["href"].startswith("https://sentry.io/organizations/acme/alerts/")
    warning = read({**metric, "action": "warning"})
    assert (warning.dedup_key, warning.severity) == ("sentry-metric-4", "warning")
    resolved = copy.deepcopy(metric)
    resolved["action"] = "resolved"
    resolved["data"]["description_title"] = "Resolved: Too many errors"
    back = read(resolved)
    assert (back.action, back.dedup_key) == ("resolve", "sentry-metric-4")

    issue = read(json.loads((PAYLOADS / "sentry-issue-alert.json").read_text()))
    assert (issue.action, issue.dedup_key, issue.severity, issue.alert_type) == (
        "trigger",
        "sentry-issue-1117540176",
        "critical",  # level fatal
        "Page on new checkout errors",
    )
    assert issue.summary == "ZeroDivisionError: division by zero"
    assert issue.labels["project"] == "1" and issue.annotations["description"] == "checkout/views.py in pay"
    # The issue's own webhook (resource "issue") ends it when the issue is resolved or archived ...
    issue_webhook = {
        "action": "resolved",
        "data": {
            "issue": {"id": "1117540176", "title": "ZeroDivisionError: division by zero", "level": "fatal"}
        },
    }
    ended = read(issue_webhook)
    assert (ended.action, ended.dedup_key) == ("resolve", "sentry-issue-1117540176")
    assert read({**issue_webhook, "action": "archived"}).action == "resolve"
    # ... and its other actions (created, assigned, unresolved) are answered but not stored.
    for action in ("created", "assigned", "unresolved"):
        assert from_webhook({**issue_webhook, "action": action}, example_format("sentry")) == []


def test_a_webhook_integration_can_require_the_sender_s_signature(
    api: TestClient, context: AppContext
) -> None:
    """Sentry signs each delivery with its client secret (hex HMAC-SHA256 of the body in
    Sentry-Hook-Signature): an integration made with that secret and header name refuses what is not so
    signed, so a leaked URL is not enough to post alerts."""
    secret = "d5c1a0b2e4f6a8c0d2e4f6a8b0c2d4e6f8a0b2c4d6e8f0a2b4c6d8e0f2a4b6c8"
    with context.db.write() as session:
        key = integrations.create_integration(
            session,
            org=context.org,
            name="sentry",
            type=IntegrationType.webhook,
            signing_secret=secret,
            signature_header="Sentry-Hook-Signature",
        ).key
    body = (PAYLOADS / "sentry-metric-alert-critical.json").read_bytes()
    signature = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    url = f"/api/v1/alerts/webhook/sentry?key={key}"
    headers = {"Content-Type": "application/json", "Sentry-Hook-Resource": "metric_alert"}

    unsigned = api.post(url, content=body, headers=headers)
    assert unsigned.status_code == 401, unsigned.text
    forged = api.post(url, content=body, headers={**headers, "Sentry-Hook-Signature": "0" * 64})
    assert forged.status_code == 401
    # Grafana's timestamp header is no help to someone setting up Sentry, which sends none.
    assert "Grafana" not in forged.json()["error"]["message"], forged.text
    changed = body.replace(b"Too many errors", b"Too many kittens")
    tampered = api.post(url, content=changed, headers={**headers, "Sentry-Hook-Signature": signature})
    assert tampered.status_code == 401
    assert alerts(context) == []
    assert integration_rows(context, IntegrationKey.last_used_at) == [(None,)]  # a refusal is not a use

    signed = api.post(url, content=body, headers={**headers, "Sentry-Hook-Signature": signature})
    assert signed.status_code == 202, signed.text
    assert integration_rows(context, IntegrationKey.last_used_at) != [(None,)]
    [stored] = alerts(context)
    assert (stored.dedup_key, stored.source) == ("sentry-metric-4", "webhook")
    # Senders that copy GitHub's webhooks write the digest as "sha256=<hex>": read the same.
    prefixed = api.post(
        url, content=body, headers={**headers, "Sentry-Hook-Signature": f"sha256={signature}"}
    )
    assert prefixed.status_code == 202, prefixed.text
    assert len(alerts(context)) == 1  # the same delivery again: a retry, nothing new
    wrong = api.post(url, content=body, headers={**headers, "Sentry-Hook-Signature": f"sha256={'0' * 64}"})
    assert wrong.status_code == 401
    refusal = unsigned.json()["error"]["message"]
    assert "sending tool" in refusal and "Grafana" not in refusal, refusal


def test_templates_cut_text_out_with_regular_expressions() -> None:
    """A tool that puts the host only in its message: ``regex_search`` makes it a label, and
    ``regex_replace`` takes the changing numbers out of the alert's name so that it stays one alert."""
    text_only = WebhookFormat.model_validate(
        {
            "name": "legacy-tool",
            "summary": "{{ payload.message }}",
            "alert": "{{ payload.message | regex_replace('[0-9]+', 'N') }}",
            "dedup_key": "{{ payload.message | regex_replace('[0-9]+%', '') }}",
            "labels": {
                "host": "{{ payload.message | regex_search('on (?P<host>[a-z0-9-]+)', 'host') }}",
                "mount": "{{ payload.message | regex_search('(/[a-z/]*)') }}",
                "missing": "{{ payload.message | regex_search('nowhere=(\\\\d+)', 1) }}",
            },
        }
    )
    [event] = from_webhook({"message": "disk 91% full on db-1 at /var/lib"}, text_only)
    assert event.labels == {
        "host": "db-1",
        "mount": "/var/lib",
        "alertname": "disk N% full on db-N at /var/lib",
        "webhook_format": "legacy-tool",
    }  # "missing" matched nothing: empty, so left out
    assert event.dedup_key == "disk  full on db-1 at /var/lib"
    # A bad pattern is the format's fault: the delivery is refused, naming the field.
    broken = WebhookFormat.model_validate(
        {"name": "broken", "summary": "{{ payload.message | regex_search('(') }}"}
    )
    with pytest.raises(InvalidPayload, match="summary"):
        from_webhook({"message": "x"}, broken)


def test_an_unknown_format_is_named_only_to_a_caller_with_a_good_key(
    api: TestClient, context: AppContext, webhook_key: str, generic_key: str
) -> None:
    """Without a key that could deliver, a caller cannot probe which format names the org file defines: it
    gets the key's refusal, for a format that exists as for one that does not, and whatever the body."""
    with context.db.write() as session:
        revoked = integrations.create_integration(
            session, org=context.org, name="old", type=IntegrationType.webhook
        )
        integrations.revoke_integration(session, org=None, integration_id=revoked.id)
        signing = integrations.create_integration(
            session, org=context.org, name="signs", type=IntegrationType.webhook, signing=True
        ).key
    for name, body in [
        ("nope", "{}"),
        ("uptime-kuma", json.dumps(kuma())),
        ("uptime-kuma", "{not json"),
        ("checks", '{"checks": 3}'),  # a payload the format cannot read
    ]:
        for query, headers, status in [
            ("", {}, 401),
            ("?key=zzz", {}, 401),
            (f"?key={revoked.key}", {}, 401),
            (f"?key={generic_key}", {}, 403),
            ("", {"Authorization": f"Bearer {generic_key}"}, 403),
            (f"?key={signing}", {}, 401),  # the key alone, without the signature it needs
        ]:
            refused = api.post(f"/api/v1/alerts/webhook/{name}{query}", content=body, headers=headers)
            assert refused.status_code == status, (name, body, query, refused.text)
            assert "format" not in refused.text, refused.text
    unknown = api.post(f"/api/v1/alerts/webhook/nope?key={webhook_key}", content="{}")
    assert unknown.status_code == 404, unknown.text
    assert unknown.json()["error"]["message"].startswith("no webhook format named 'nope'")
    # A refused delivery is not a use of the key.
    assert integration_rows(context, IntegrationKey.last_used_at) == [(None,)] * 4
    assert alerts(context) == []


# Bodies that cost the MIME parser time or stack: many parts (seconds to build 100,000 of them) and parts
# nested thousands deep (its recursion overflowed: a 500).
MANY_PARTS = b"".join(b"--T\r\n\r\n" for _ in range(100_000)) + b"--T--\r\n"
MANY_PARTS_TYPE = "multipart/form-data; boundary=T"


def nested_form(depth: int) -> bytes:
    opening = b"".join(
        b'--B%d\r\nContent-Disposition: form-data; name="f"\r\n' % level
        + b"Content-Type: multipart/mixed; boundary=B%d\r\n\r\n" % (level + 1)
        for level in range(depth)
    )
    return opening + b"--B%d\r\n\r\nx\r\n--B%d--\r\n" % (depth, depth)


NESTED_TYPE = "multipart/form-data; boundary=B0"


@pytest.fixture
def body_reads(monkeypatch: pytest.MonkeyPatch) -> list[tuple[threading.Thread, bool]]:
    """Each webhook body read (by a form's or JSON's parser): its thread, and whether a loop runs there."""
    reads: list[tuple[threading.Thread, bool]] = []
    parse = adapters.parse_webhook_body

    def spy(body: bytes, content_type: str | None) -> Any:
        try:
            asyncio.get_running_loop()
            on_loop = True
        except RuntimeError:
            on_loop = False
        reads.append((threading.current_thread(), on_loop))
        return parse(body, content_type)

    monkeypatch.setattr(adapters, "parse_webhook_body", spy)
    return reads


def test_the_key_is_checked_before_the_body_is_read(
    api: TestClient, context: AppContext, generic_key: str, body_reads: list[Any]
) -> None:
    """A body that takes long to parse stalled every other request while it was read, key or none, and the
    delay told a format that exists (seconds) from one that does not (at once). Now a caller without a key
    that could deliver is refused before its body or the format name is looked at."""
    for name in ("uptime-kuma", "json-in-form", "nope"):
        for query, status in [("", 401), ("?key=zzz", 401), (f"?key={generic_key}", 403)]:
            for body, content_type in [(MANY_PARTS, MANY_PARTS_TYPE), (nested_form(3000), NESTED_TYPE)]:
                refused = api.post(
                    f"/api/v1/alerts/webhook/{name}{query}",
                    content=body,
                    headers={"Content-Type": content_type},
                )
                assert refused.status_code == status, (name, query, refused.text)
                assert "format" not in refused.text and "form" not in refused.text, refused.text
    assert body_reads == []
    assert alerts(context) == []


def test_a_webhook_body_is_read_off_the_event_loop(
    api: TestClient,
    context: AppContext,
    webhook_key: str,
    body_reads: list[tuple[threading.Thread, bool]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    loop_threads: list[threading.Thread] = []
    writer_for = fastpath.writer_for

    def on_the_loop(state: Any, context: AppContext) -> Any:  # called by the handler, on the loop
        loop_threads.append(threading.current_thread())
        return writer_for(state, context)

    monkeypatch.setattr(fastpath, "writer_for", on_the_loop)
    answer = api.post(
        f"/api/v1/alerts/webhook/json-in-form?key={webhook_key}",
        files={"data": (None, '{"id": 8, "msg": "disk full"}')},
    )
    assert answer.status_code == 202, answer.text
    [(thread, on_loop)] = body_reads
    assert loop_threads and thread not in loop_threads and not on_loop
    assert len(alerts(context)) == 1


def test_too_many_form_fields_are_refused_before_the_parts_are_made(
    api: TestClient, context: AppContext, webhook_key: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    made: list[bytes] = []
    parse_mime = adapters.parse_mime

    def spy(raw: bytes, *args: Any, **kwargs: Any) -> Any:
        made.append(raw)
        return parse_mime(raw, *args, **kwargs)

    monkeypatch.setattr(adapters, "parse_mime", spy)
    refused = api.post(
        f"/api/v1/alerts/webhook/json-in-form?key={webhook_key}",
        content=MANY_PARTS,
        headers={"Content-Type": MANY_PARTS_TYPE},
    )
    assert refused.status_code == 400, refused.text
    assert refused.json()["error"]["message"] == "the body is not a readable form: over 1000 fields"
    assert made == []
    # 1,000 fields are read; one more is refused.
    fields = [b'--T\r\nContent-Disposition: form-data; name="f%d"\r\n\r\nv\r\n' % i for i in range(1001)]
    assert len(parse_webhook_body(b"".join(fields[:1000]) + b"--T--\r\n", MANY_PARTS_TYPE)) == 1000
    with pytest.raises(InvalidPayload, match="over 1000 fields"):
        parse_webhook_body(b"".join(fields) + b"--T--\r\n", MANY_PARTS_TYPE)
    assert alerts(context) == []


def test_parts_nested_in_a_field_count_and_deep_nesting_is_a_400(
    api: TestClient, context: AppContext, webhook_key: str
) -> None:
    """Nested parts were a RecursionError (500) after seconds of CPU; parts inside a field escaped the limit
    on fields, which counted only the form's own."""
    deep = api.post(
        f"/api/v1/alerts/webhook/json-in-form?key={webhook_key}",
        content=nested_form(3000),
        headers={"Content-Type": NESTED_TYPE},
    )
    assert deep.status_code == 400, deep.text
    assert deep.json()["error"]["message"] == (
        f"the body is not a readable form: parts nested over {adapters.MIME_MAX_DEPTH} deep"
    )
    inner = b"".join(b"--I\r\n\r\nx\r\n" for _ in range(5000)) + b"--I--\r\n"
    one_field = (
        b'--T\r\nContent-Disposition: form-data; name="data"\r\n'
        b"Content-Type: multipart/mixed; boundary=I\r\n\r\n" + inner + b"--T--\r\n"
    )
    with pytest.raises(InvalidPayload, match="over 1000 fields"):
        parse_webhook_body(one_field, MANY_PARTS_TYPE)
    assert alerts(context) == []
