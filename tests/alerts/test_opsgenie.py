"""Opsgenie's Alert API shape (``POST /v2/alerts``, close and acknowledge by alias): tools set up for Opsgenie
work when pointed at Warroom."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from tests.alerts.conftest import make_key
from tests.alerts.test_intake import alerts
from tests.alerts.test_source_ack import timeline
from warroom.alerts.models import Alert
from warroom.auth import integrations
from warroom.auth.models import IntegrationType
from warroom.context import AppContext
from warroom.incidents.models import Incident


@pytest.fixture
def genie_key(context: AppContext) -> dict[str, str]:
    return {"Authorization": f"GenieKey {make_key(context, 'opsgenie', 'opsgenie-shaped')}"}


def create(**fields: Any) -> dict[str, Any]:
    return {
        "message": "Disk almost full on db-1",
        "alias": "disk-db1",
        "description": "/var/lib/postgresql at 96%",
        "tags": ["disk", "prod"],
        "details": {"alertname": "DiskFull", "instance": "db-1"},
        "entity": "db-1",
        "priority": "P2",
        "responders": [{"type": "team", "name": "dba"}],
        **fields,
    }


def test_create_acknowledge_close_by_alias(
    api: TestClient, context: AppContext, genie_key: dict[str, str]
) -> None:
    created = api.post("/v2/alerts", json=create(), headers=genie_key)
    assert created.status_code == 202, created.text
    answer = created.json()
    assert answer["result"] == "Request will be processed" and len(answer["requestId"]) == 36
    [alert] = alerts(context)
    assert (alert.source, alert.status, alert.severity, alert.summary, alert.dedup_key) == (
        "opsgenie",
        "firing",
        "error",
        "Disk almost full on db-1",
        "disk-db1",
    )
    assert alert.alert_type == "DiskFull"
    assert alert.labels == {"alertname": "DiskFull", "instance": "db-1", "entity": "db-1"}
    assert alert.annotations["tags"] == ["disk", "prod"]
    assert alert.annotations["description"] == "/var/lib/postgresql at 96%"
    # The same alias again is another occurrence of the same alert, as in Opsgenie; the identical body again
    # is taken as a retry of the delivery and changes nothing.
    for body in (create(), create(description="/var/lib/postgresql at 97%")):
        assert api.post("/v2/alerts", json=body, headers=genie_key).status_code == 202
    assert [a.occurrences for a in alerts(context)] == [2]
    acked = api.post(
        "/v2/alerts/disk-db1/acknowledge?identifierType=alias", json={"user": "alice"}, headers=genie_key
    )
    assert acked.status_code == 202 and alerts(context)[0].status == "acknowledged"
    closed = api.post("/v2/alerts/disk-db1/close?identifierType=alias", headers=genie_key)
    assert closed.status_code == 202 and alerts(context)[0].status == "resolved"
    # No alias: each request is an alert of its own.
    for _ in range(2):
        api.post("/v2/alerts", json={"message": "Backup failed"}, headers=genie_key)
    assert [a.severity for a in alerts(context)[1:]] == ["warning", "warning"]  # P3, Opsgenie's default


def test_an_alias_with_a_slash_is_acted_on_by_its_encoded_path(
    api: TestClient, context: AppContext, genie_key: dict[str, str]
) -> None:
    """Aliases are free text (``host/check`` in Nagios and Zabbix style); clients encode them in the path, and
    the decoded ``/`` used to split the route: the alert was created but could never be closed (404)."""
    alias = "db-1/disk usage"
    assert api.post("/v2/alerts", json=create(alias=alias), headers=genie_key).status_code == 202
    path = "/v2/alerts/db-1%2Fdisk%20usage"
    for method, action, body in [
        ("POST", "notes", {"note": "looking", "user": "alice"}),
        ("POST", "tags", {"tags": ["dba"]}),
        ("PUT", "message", {"message": "Disk full on db-1"}),
        ("DELETE", "tags", None),
        ("POST", "acknowledge", {"user": "alice"}),
    ]:
        query = "?identifierType=alias" + ("&tags=dba" if method == "DELETE" else "")
        answer = api.request(method, f"{path}/{action}{query}", json=body, headers=genie_key)
        assert answer.status_code == 202, (action, answer.text)
    [alert] = alerts(context)
    assert (alert.dedup_key, alert.status, alert.summary) == (alias, "acknowledged", "Disk full on db-1")
    assert api.post(f"{path}/close?identifierType=alias", headers=genie_key).status_code == 202
    assert alerts(context)[0].status == "resolved"
    # An empty alias names no alert.
    empty = api.post("/v2/alerts//close?identifierType=alias", headers=genie_key)
    assert empty.status_code == 422 and "identifier" in empty.json()["errors"], empty.text


def test_refusals_keep_opsgenie_shapes_and_store_nothing(
    api: TestClient, context: AppContext, genie_key: dict[str, str], generic_key: str
) -> None:
    for headers, status in [
        ({}, 401),
        ({"Authorization": genie_key["Authorization"].replace("GenieKey", "Bearer")}, 401),
        ({"Authorization": "GenieKey " + "0" * 32}, 401),
        ({"Authorization": f"GenieKey {generic_key}"}, 403),
    ]:
        refused = api.post("/v2/alerts", json=create(), headers=headers)
        assert refused.status_code == status, refused.text
        assert set(refused.json()) == {"message", "took", "requestId"}
    for body, field in [
        (create(message=""), "message"),
        (create(priority="P9"), "priority"),
        (create(details={"count": 3}), "details.count"),
        ([create()], "body"),
    ]:
        refused = api.post("/v2/alerts", json=body, headers=genie_key)
        assert refused.status_code == 422, refused.text
        assert field in refused.json()["errors"], refused.json()
    garbage = api.post("/v2/alerts", content=b"{", headers={**genie_key, "Content-Type": "application/json"})
    assert garbage.status_code == 422
    by_id = api.post("/v2/alerts/disk-db1/close", headers=genie_key)  # Opsgenie's default: by id
    assert by_id.status_code == 422 and "identifierType" in by_id.json()["errors"]  # Opsgenie's shape
    assert by_id.json()["message"] == "Request body is not processable. Please check the errors."
    assert (
        api.post("/v2/alerts/x/close?identifierType=alias", content=b"[1]", headers=genie_key).status_code
        == 422
    )
    assert alerts(context) == []


def test_updates_change_the_open_alert_without_a_new_occurrence(
    api: TestClient, context: AppContext, genie_key: dict[str, str]
) -> None:
    """Alertmanager's update_alerts sends PUT .../message and .../description after each create; priority and
    notes are Opsgenie's too. They change the open alert of the alias and count no occurrence."""
    assert api.post("/v2/alerts", json=create(priority="P1"), headers=genie_key).status_code == 202
    base = "/v2/alerts/disk-db1/{}?identifierType=alias"
    for update, body in [
        ("message", {"message": "Disk full on db-1"}),
        ("description", {"description": "/var/lib/postgresql at 99%"}),
        ("priority", {"priority": "P4"}),
    ]:
        changed = api.put(base.format(update), json=body, headers=genie_key)
        assert changed.status_code == 202, changed.text
        assert changed.json()["result"] == "Request will be processed"
    noted = api.post(
        base.format("notes"), json={"note": "moved the WAL to /data", "user": "alice"}, headers=genie_key
    )
    assert noted.status_code == 202, noted.text
    [alert] = alerts(context)
    assert (alert.summary, alert.severity, alert.occurrences) == ("Disk full on db-1", "info", 1)
    assert alert.annotations["description"] == "/var/lib/postgresql at 99%"
    assert alert.annotations["tags"] == ["disk", "prod"]  # the rest is kept
    with context.db.read() as session:
        [note] = session.get_one(Alert, alert.id).notes
        assert (note.author, note.body) == ("alice (via opsgenie-shaped)", "moved the WAL to /data")
    # The example's critical-monitoring rule opened an incident for the P1: the note is on its timeline too.
    assert alert.incident_id is not None
    assert any("moved the WAL" in entry.action for entry in timeline(context, alert.incident_id))


def test_update_refusals_change_nothing(
    api: TestClient, context: AppContext, genie_key: dict[str, str], generic_key: str
) -> None:
    assert api.post("/v2/alerts", json=create(), headers=genie_key).status_code == 202
    before = [(a.summary, a.severity, dict(a.annotations)) for a in alerts(context)]
    base = "/v2/alerts/disk-db1/{}?identifierType=alias"
    for method, path, body, headers, status in [
        ("PUT", base.format("message"), {"message": ""}, genie_key, 422),
        ("PUT", base.format("message"), {}, genie_key, 422),
        ("PUT", base.format("priority"), {"priority": "P0"}, genie_key, 422),
        ("POST", base.format("notes"), {"note": "   "}, genie_key, 422),
        ("PUT", base.format("message"), [1], genie_key, 422),
        ("PUT", "/v2/alerts/nope/message?identifierType=alias", {"message": "x"}, genie_key, 404),
        ("PUT", "/v2/alerts/disk-db1/message", {"message": "x"}, genie_key, 422),  # by id: not taken
        ("PUT", base.format("tags"), {"message": "x"}, genie_key, 422),
        ("PUT", base.format("message"), {"message": "x"}, {}, 401),
        ("PUT", base.format("message"), {"message": "x"}, {"Authorization": f"GenieKey {generic_key}"}, 403),
    ]:
        refused = api.request(method, path, json=body, headers=headers)
        assert refused.status_code == status, (method, path, body, refused.text)
    assert [(a.summary, a.severity, dict(a.annotations)) for a in alerts(context)] == before
    # Closed: the alias has no open alert any more.
    api.post(base.format("close"), headers=genie_key)
    assert api.put(base.format("message"), json={"message": "x"}, headers=genie_key).status_code == 404


def test_tags_and_details_are_added_and_removed_by_alias(
    api: TestClient, context: AppContext, genie_key: dict[str, str], viewer: dict[str, str]
) -> None:
    assert api.post("/v2/alerts", json=create(), headers=genie_key).status_code == 202
    base = "/v2/alerts/disk-db1"

    def added(what: str, body: dict[str, Any]) -> Any:
        return api.post(f"{base}/{what}?identifierType=alias", json=body, headers=genie_key)

    def removed(what: str, query: str) -> Any:
        return api.delete(f"{base}/{what}?identifierType=alias&{query}", headers=genie_key)

    assert (
        added(
            "tags", {"tags": ["dba", "disk", "dba"], "user": "alice", "note": "the DBAs have it"}
        ).status_code
        == 202
    )
    assert added("details", {"details": {"runbook": "disk-full", "instance": "db-1a"}}).status_code == 202
    [alert] = alerts(context)
    assert alert.annotations["tags"] == ["disk", "prod", "dba"]  # kept in order, no duplicates
    assert alert.labels == {
        "alertname": "DiskFull",
        "instance": "db-1a",
        "entity": "db-1",
        "runbook": "disk-full",
    }
    assert alert.occurrences == 1  # a change, not another occurrence
    shown = api.get(f"/api/v1/alerts/{alert.id}", headers=viewer).json()
    assert [(n["author"], n["body"]) for n in shown["notes"]] == [
        ("alice (via opsgenie-shaped)", "the DBAs have it")
    ]

    assert removed("tags", "tags=prod,dba").status_code == 202
    assert removed("details", "keys=runbook").status_code == 202
    [alert] = alerts(context)
    assert alert.annotations["tags"] == ["disk"]
    assert "runbook" not in alert.labels
    assert removed("tags", "tags=disk").status_code == 202
    assert "tags" not in alerts(context)[0].annotations
    # Over Opsgenie's 50 characters a tag is shortened, and a blank one dropped, not the request refused.
    long_tag = "instance:ip-10-0-1-23.eu-west-1.compute.internal:9100"
    assert added("tags", {"tags": [long_tag, " ", "dba"]}).status_code == 202
    assert alerts(context)[0].annotations["tags"] == [long_tag[:50], "dba"]
    assert removed("tags", "tags=dba," + long_tag[:50]).status_code == 202

    # Refusals change nothing, in Opsgenie's shapes.
    before = (alerts(context)[0].labels, alerts(context)[0].annotations)
    assert added("tags", {"tags": []}).status_code == 422
    assert added("details", {"details": {"n": 3}}).status_code == 422
    assert added("tags", {"tags": "disk"}).status_code == 422
    assert added("tags", {"tags": [" ", ""]}).status_code == 422  # nothing but blanks names no tag
    assert removed("tags", "tags=").status_code == 422
    assert removed("details", "tags=a").status_code == 422  # details are removed by keys
    assert api.post(f"{base}/labels?identifierType=alias", json={}, headers=genie_key).status_code == 422
    assert (
        api.post(
            "/v2/alerts/nope/tags?identifierType=alias", json={"tags": ["a"]}, headers=genie_key
        ).status_code
        == 404
    )
    assert api.delete(f"{base}/tags?identifierType=id&tags=a", headers=genie_key).status_code == 422
    assert api.delete(f"{base}/tags?identifierType=alias&tags=a").status_code == 401
    assert (alerts(context)[0].labels, alerts(context)[0].annotations) == before


def alertmanager_create(alias: str, **labels: str) -> dict[str, Any]:
    """What Alertmanager's opsgenie_configs sends for a firing group (0.25, defaults): the group's common
    labels as details, priority from the receiver's template."""
    return {
        "alias": alias,
        "message": f"[FIRING:1] {labels.get('alertname', 'alert')}",
        "description": "Alerts Firing:\nLabels:\n - alertname = PaymentsDown\n",
        "details": labels,
        "source": "http://alertmanager:9093",
        "tags": [],
        "priority": "P1",
    }


def test_a_service_detail_is_the_alerts_service(
    api: TestClient, context: AppContext, genie_key: dict[str, str]
) -> None:
    """Alertmanager's opsgenie_configs puts the alert's labels in details: a service label names the service
    there as it does on Alertmanager's own webhook, so the rules, windows and grouping by service see it."""
    body = alertmanager_create("g1", alertname="PaymentsDown", service="payments", severity="critical")
    assert api.post("/v2/alerts", json=body, headers=genie_key).status_code == 202
    [alert] = alerts(context)
    assert (alert.service, alert.severity) == ("payments", "critical")
    assert alert.labels == {"alertname": "PaymentsDown", "service": "payments", "severity": "critical"}
    # The example file's payments rule matches on the service: it opened the P0, not "… on unknown service".
    assert alert.rules == ["payments-down"]
    with context.db.read() as session:
        [incident] = session.scalars(select(Incident)).all()
        assert (incident.severity, incident.title) == ("P0", "Payments: [FIRING:1] PaymentsDown")

    # A job detail is a guess at the service, as on Alertmanager's webhook; no such detail, no service.
    for alias, details in [("g2", {"alertname": "NodeDown", "job": "node"}), ("g3", {"alertname": "X"})]:
        assert (
            api.post("/v2/alerts", json=alertmanager_create(alias, **details), headers=genie_key).status_code
            == 202
        )
    assert [a.service for a in alerts(context)[1:]] == ["node", None]


def test_an_integrations_service_wins_over_a_job_detail_only(api: TestClient, context: AppContext) -> None:
    with context.db.write() as session:
        key = integrations.create_integration(
            session, org=context.org, name="am-payments", type=IntegrationType.opsgenie, service="payments"
        ).key
    headers = {"Authorization": f"GenieKey {key}"}
    for alias, details in [
        ("g1", {"alertname": "ChargesFailing", "job": "psp-exporter"}),
        ("g2", {"alertname": "SearchSlow", "job": "psp-exporter", "service": "search"}),
        ("g3", {"alertname": "Plain"}),
    ]:
        assert (
            api.post("/v2/alerts", json=alertmanager_create(alias, **details), headers=headers).status_code
            == 202
        )
    assert [(a.alert_type, a.service) for a in alerts(context)] == [
        ("ChargesFailing", "payments"),
        ("SearchSlow", "search"),
        ("Plain", "payments"),
    ]


def test_close_and_acknowledge_keep_the_note_and_name_the_user(
    api: TestClient, context: AppContext, genie_key: dict[str, str], viewer: dict[str, str]
) -> None:
    """The optional body of close and acknowledge: the note is added to the alert as the notes request adds
    one (and to its incident's timeline), and the acknowledgement names the user."""
    assert (
        api.post("/v2/alerts", json=create(priority="P1", alias="og-1"), headers=genie_key).status_code == 202
    )
    base = "/v2/alerts/og-1/{}?identifierType=alias"
    acked = api.post(base.format("acknowledge"), json={"user": "bob", "note": "looking"}, headers=genie_key)
    assert acked.status_code == 202, acked.text
    # A retried acknowledgement changes nothing: no second note.
    assert (
        api.post(
            base.format("acknowledge"), json={"user": "bob", "note": "looking"}, headers=genie_key
        ).status_code
        == 202
    )
    closed = api.post(base.format("close"), json={"note": "fixed"}, headers=genie_key)
    assert closed.status_code == 202, closed.text
    [alert] = alerts(context)
    assert alert.status == "resolved" and alert.incident_id is not None
    shown = api.get(f"/api/v1/alerts/{alert.id}", headers=viewer).json()
    assert [(n["author"], n["body"]) for n in shown["notes"]] == [
        ("bob (via opsgenie-shaped)", "looking"),
        ("opsgenie-shaped", "fixed"),
    ]
    actions = [entry.action for entry in timeline(context, alert.incident_id)]
    assert any(
        action.startswith(f"Alert {alert.ref} acknowledged at its source (opsgenie) by bob")
        for action in actions
    ), actions
    assert f"Note on alert {alert.ref}: looking" in actions
    assert f"Note on alert {alert.ref}: fixed" in actions
    # A close of an alias with no open alert is dropped, its note with it.
    assert (
        api.post(
            "/v2/alerts/nope/close?identifierType=alias", json={"note": "x"}, headers=genie_key
        ).status_code
        == 202
    )


def test_a_close_note_is_kept_on_an_alert_with_no_incident(
    api: TestClient, context: AppContext, genie_key: dict[str, str], viewer: dict[str, str]
) -> None:
    assert (
        api.post("/v2/alerts", json=create(priority="P5", alias="og-2"), headers=genie_key).status_code == 202
    )
    closed = api.post(
        "/v2/alerts/og-2/close?identifierType=alias",
        json={"source": "cron", "note": " fixed "},
        headers=genie_key,
    )
    assert closed.status_code == 202, closed.text
    [alert] = alerts(context)
    assert alert.status == "resolved" and alert.incident_id is None
    shown = api.get(f"/api/v1/alerts/{alert.id}", headers=viewer).json()
    assert [(n["author"], n["body"]) for n in shown["notes"]] == [("cron (via opsgenie-shaped)", "fixed")]


def test_the_user_a_sender_names_is_one_visible_line(
    api: TestClient, context: AppContext, genie_key: dict[str, str], viewer: dict[str, str]
) -> None:
    """``user`` (else ``source``) becomes a note's author and the timeline's actor: a line break in it laid
    out a line of its own ("INC-1 resolved by alice") where responders read, and an escape or a direction
    mark made it print as something else. It is one visible line, as other names are; still at most 100
    characters."""
    assert (
        api.post("/v2/alerts", json=create(priority="P1", alias="og-9"), headers=genie_key).status_code == 202
    )
    base = "/v2/alerts/og-9/{}?identifierType=alias"
    forged = "bob\r\nINC-1 resolved by alice"
    noted = api.post(base.format("notes"), json={"note": "n", "user": forged}, headers=genie_key)
    assert noted.status_code == 202, noted.text
    acked = api.post(
        base.format("acknowledge"), json={"user": "eve\x1b[2J\u202etxt", "note": "ack"}, headers=genie_key
    )
    assert acked.status_code == 202, acked.text
    tagged = api.post(
        base.format("tags"),
        json={"tags": ["t"], "user": " \t ", "source": "cron\njob", "note": "tag"},
        headers=genie_key,
    )
    assert tagged.status_code == 202, tagged.text
    removed = api.delete(
        "/v2/alerts/og-9/tags?identifierType=alias&tags=t&note=untag&user=" + "carol%0D%0Aevil",
        headers=genie_key,
    )
    assert removed.status_code == 202, removed.text
    [alert] = alerts(context)
    shown = api.get(f"/api/v1/alerts/{alert.id}", headers=viewer).json()
    assert [(n["author"], n["body"]) for n in shown["notes"]] == [
        ("bob INC-1 resolved by alice (via opsgenie-shaped)", "n"),
        ("eve [2J txt (via opsgenie-shaped)", "ack"),
        ("cron job (via opsgenie-shaped)", "tag"),
        ("carol evil (via opsgenie-shaped)", "untag"),
    ]
    assert alert.incident_id is not None
    actions = [entry.action for entry in timeline(context, alert.incident_id)]
    assert any("acknowledged at its source (opsgenie) by eve [2J txt" in a for a in actions), actions
    assert not any("\n" in a or "\r" in a or "\x1b" in a or "\u202e" in a for a in actions), actions
    too_long = api.post(base.format("notes"), json={"note": "n", "user": "x" * 101}, headers=genie_key)
    assert too_long.status_code == 422, too_long.text
