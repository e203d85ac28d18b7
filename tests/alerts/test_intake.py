"""Intake over HTTP: each wire format, keys, dedup, retries, bad input."""

from __future__ import annotations

import copy
import gzip
import json
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from prometheus_client import REGISTRY
from sqlalchemy import func, select

from tests.alerts.conftest import integration_rows, make_key, payload
from warroom.alerts import fastpath
from warroom.alerts.models import Alert
from warroom.app import create_app
from warroom.auth.models import IntegrationKey
from warroom.clock import clock
from warroom.context import AppContext
from warroom.incidents.models import Incident


def count(context: AppContext, model: type[Any]) -> int:
    with context.db.read() as session:
        return session.scalar(select(func.count()).select_from(model)) or 0


def alerts(context: AppContext) -> list[Alert]:
    with context.db.read() as session:
        return list(session.scalars(select(Alert).order_by(Alert.id)))


def test_alertmanager_firing_then_resolved(api: TestClient, context: AppContext, am_key: str) -> None:
    firing = payload("alertmanager-0.25-firing.json")
    response = api.post(f"/api/v1/alerts/alertmanager?key={am_key}", json=firing)
    assert response.status_code == 202, response.text
    body = response.json()
    assert body["alerts"][0]["outcome"] == "created"
    [alert] = alerts(context)
    assert alert.source == "alertmanager"
    assert alert.dedup_key == "ff774b3b5a5e3c3e"
    assert alert.status == "firing"
    assert alert.severity == "critical"
    assert alert.service == "checkout-api"
    assert alert.summary == "5xx rate above 5% for checkout-api"
    assert alert.alert_type == "HighErrorRate"
    assert alert.raw["alert"]["fingerprint"] == "ff774b3b5a5e3c3e"
    assert alert.raw["receiver"] == "webhook"
    assert alert.links[0]["href"].startswith("http://127.0.0.1:9090/graph")

    resolved = payload("alertmanager-0.25-resolved.json")
    response = api.post(
        "/api/v1/alerts/alertmanager", json=resolved, headers={"Authorization": f"Bearer {am_key}"}
    )
    assert response.status_code == 202, response.text
    assert response.json()["alerts"][0]["outcome"] == "resolved"
    [alert] = alerts(context)
    assert alert.status == "resolved"
    assert alert.open_dedup_key is None
    assert alert.resolved_at is not None

    # Firing again after a resolve opens a new alert (the old one stays closed).
    response = api.post(f"/api/v1/alerts/alertmanager?key={am_key}", json=firing)
    assert response.json()["alerts"][0]["outcome"] == "created"
    assert [a.status for a in alerts(context)] == ["resolved", "firing"]


def test_retry_of_identical_body_changes_nothing(api: TestClient, context: AppContext, am_key: str) -> None:
    firing = payload("alertmanager-0.25-firing.json")
    url = f"/api/v1/alerts/alertmanager?key={am_key}"
    api.post(url, json=firing)
    [before] = alerts(context)
    second = api.post(url, json=firing)
    assert second.status_code == 202
    assert second.json()["alerts"][0]["outcome"] == "unchanged"
    [after] = alerts(context)
    assert after.occurrences == 1
    assert after.last_seen_at == before.last_seen_at
    # A changed repeat of the same fingerprint counts as another occurrence.
    changed = copy.deepcopy(firing)
    changed["alerts"][0]["annotations"]["summary"] = "5xx rate above 9% for checkout-api"
    third = api.post(url, json=changed)
    assert third.json()["alerts"][0]["outcome"] == "updated"
    [again] = alerts(context)
    assert again.occurrences == 2
    assert again.summary == "5xx rate above 9% for checkout-api"
    assert count(context, Alert) == 1


def test_grafana_webhook(api: TestClient, context: AppContext) -> None:
    key = make_key(context, "grafana")
    body = payload("grafana-docs-example.json")  # the Grafana docs' example (wire-formats.md)
    response = api.post(f"/api/v1/alerts/grafana?key={key}", json=body)
    assert response.status_code == 202, response.text
    [alert] = alerts(context)
    assert alert.source == "grafana"
    assert alert.dedup_key == "c6eadffa33fcdf37"
    assert alert.severity == "warning"  # no severity label
    assert {link["text"] for link in alert.links} == {"source", "silence", "runbook"}
    assert alert.raw["alert"]["values"] == {"B": 44.23943737541908, "C": 1}
    # What the query returned is shown with the annotations; a screenshot, when Grafana took one, is a link.
    assert alert.annotations["values"] == {"B": 44.23943737541908, "C": 1}
    shot = payload("grafana-docs-example.json")
    shot["alerts"][0].update(fingerprint="0123456789abcdef", imageURL="https://grafana.example/shot.png")
    assert api.post(f"/api/v1/alerts/grafana?key={key}", json=shot).status_code == 202
    screenshot = alerts(context)[1].links[-1]
    assert screenshot == {
        "href": "https://grafana.example/shot.png",
        "text": "screenshot",
        "image": screenshot["href"],
    }
    # A contact point set to PUT delivers all the same (it used to get 405, which Grafana does not retry).
    shot["alerts"][0].update(fingerprint="fedcba9876543210")
    assert api.put(f"/api/v1/alerts/grafana?key={key}", json=shot).status_code == 202
    assert alerts(context)[2].dedup_key == "fedcba9876543210"
    assert api.put(f"/api/v1/alerts/grafana?key={key}", json={"alerts": 1}).status_code == 400
    assert api.put("/api/v1/alerts/grafana", json=shot).status_code == 401
    assert len(alerts(context)) == 3


def test_keys_wrong_revoked_or_for_another_source(
    api: TestClient, context: AppContext, am_key: str, admin: dict[str, str]
) -> None:
    firing = payload("alertmanager-0.25-firing.json")
    assert api.post("/api/v1/alerts/alertmanager", json=firing).status_code == 401
    assert api.post("/api/v1/alerts/alertmanager?key=nope", json=firing).status_code == 401
    grafana_key = make_key(context, "grafana")
    wrong_type = api.post(f"/api/v1/alerts/alertmanager?key={grafana_key}", json=firing)
    assert wrong_type.status_code == 403
    assert wrong_type.json()["error"]["code"] == "forbidden"
    listing = api.get("/api/v1/integrations", headers=admin).json()
    prometheus = next(i for i in listing if i["name"] == "prometheus")
    assert "key" not in prometheus and "key_hash" not in prometheus
    revoked = api.delete(f"/api/v1/integrations/{prometheus['id']}", headers=admin)
    assert revoked.json()["revoked_at"] is not None and revoked.json()["unchanged"] is False
    again = api.delete(f"/api/v1/integrations/{prometheus['id']}", headers=admin).json()
    assert again["unchanged"] is True and again["revoked_at"] == revoked.json()["revoked_at"]
    response = api.post(f"/api/v1/alerts/alertmanager?key={am_key}", json=firing)
    assert response.status_code == 401
    assert "revoked" in response.json()["error"]["message"]
    assert count(context, Alert) == 0


def test_integration_api_creates_usable_keys(
    api: TestClient, admin: dict[str, str], viewer: dict[str, str]
) -> None:
    assert (
        api.post("/api/v1/integrations", json={"name": "x", "type": "generic"}, headers=viewer).status_code
        == 403
    )
    bad = api.post("/api/v1/integrations", json={"name": "x", "type": "nagios"}, headers=admin)
    assert bad.status_code == 422
    created = api.post("/api/v1/integrations", json={"name": "scripts", "type": "generic"}, headers=admin)
    assert created.status_code == 201
    key = created.json()["key"]
    assert len(key) == 32
    response = api.post(
        "/api/v1/alerts", json={"summary": "hello"}, headers={"Authorization": f"Bearer {key}"}
    )
    assert response.status_code == 202


def test_malformed_payloads_get_400_with_fields_and_store_nothing(
    api: TestClient, context: AppContext, am_key: str, generic_key: str
) -> None:
    url = f"/api/v1/alerts/alertmanager?key={am_key}"
    not_json = api.post(url, content=b"{not json", headers={"Content-Type": "application/json"})
    assert not_json.status_code == 400
    assert not_json.json()["error"]["code"] == "invalid_payload"
    broken = payload("alertmanager-0.25-firing.json")
    broken["alerts"][0]["status"] = "exploding"
    del broken["alerts"][0]["labels"]
    response = api.post(url, json=broken)
    assert response.status_code == 400
    fields = {d["field"] for d in response.json()["error"]["details"]}
    assert fields == {"alerts.0.status", "alerts.0.labels"}
    assert api.post(url, json=[1, 2]).status_code == 400
    assert api.post(url, json={"alerts": []}).status_code == 400

    # A batch is accepted whole or not at all.
    batch = [{"summary": "one"}, {"summary": "two", "severity": "apocalyptic"}]
    response = api.post(f"/api/v1/alerts?key={generic_key}", json=batch)
    assert response.status_code == 400
    detail = response.json()["error"]["details"][0]
    assert detail["field"] == "1.severity"
    assert "critical" in detail["allowed"]
    assert (
        api.post(f"/api/v1/alerts?key={generic_key}", json={"summary": "x", "colour": "red"}).status_code
        == 400
    )
    assert api.post(f"/api/v1/alerts?key={generic_key}", json=[]).status_code == 400
    assert count(context, Alert) == 0


def test_a_plain_alerts_service_and_type_are_trimmed_and_never_blank(
    api: TestClient, context: AppContext, generic_key: str
) -> None:
    """ " payments " from a script went to another rule (a P1 paging the platform team instead of the payments
    one), and "   " was stored as a service."""
    sent = {"summary": "charges failing", "service": " payments ", "type": " ChargesFailing\t"}
    assert api.post(f"/api/v1/alerts?key={generic_key}", json=sent).status_code == 202
    [alert] = alerts(context)
    assert (alert.service, alert.alert_type) == ("payments", "ChargesFailing")
    for field, value in [("service", "   "), ("type", ""), ("service", "pay\nments"), ("service", "p" * 201)]:
        refused = api.post(f"/api/v1/alerts?key={generic_key}", json={"summary": "x", field: value})
        assert refused.status_code == 400, (field, value, refused.text)
        assert refused.json()["error"]["details"][0]["field"] == field
    assert count(context, Alert) == 1


def test_a_refused_body_is_explained_only_to_a_caller_with_a_good_key(
    api: TestClient, context: AppContext, am_key: str, generic_key: str
) -> None:
    """Validation messages describe what an endpoint expects: a caller without a key that could deliver gets
    the key's refusal (401, 403) for a bad body as for a good one, on each route of the fast path."""
    grafana_key = make_key(context, "grafana")
    good_keys = {"/api/v1/alerts": generic_key, "/api/v1/alerts/alertmanager": am_key}
    good_keys["/api/v1/alerts/grafana"] = grafana_key
    for path, good_key in good_keys.items():
        other_key = am_key if good_key != am_key else generic_key
        for body in [b"{not json", b'{"alerts": "many"}', b"[]"]:
            for query, headers, status in [
                ("", {}, 401),
                ("?key=zzz", {}, 401),
                (f"?key={other_key}", {}, 403),
                ("", {"Authorization": f"Bearer {other_key}"}, 403),
            ]:
                refused = api.post(f"{path}{query}", content=body, headers=headers)
                assert refused.status_code == status, (path, body, query, refused.text)
                assert refused.json()["error"]["code"] != "invalid_payload", refused.text
            explained = api.post(f"{path}?key={good_key}", content=body)
            assert explained.status_code == 400, (path, body, explained.text)
            assert explained.json()["error"]["code"] == "invalid_payload"
    # A refused delivery is not a use of the key.
    assert {row for row in integration_rows(context, IntegrationKey.last_used_at)} == {(None,)}
    assert count(context, Alert) == 0


def test_body_over_the_limit_is_413(api: TestClient, context: AppContext, generic_key: str) -> None:
    huge = {"summary": "x", "annotations": {"blob": "a" * (context.settings.max_body_bytes + 10)}}
    response = api.post(f"/api/v1/alerts?key={generic_key}", json=huge)
    assert response.status_code == 413
    assert count(context, Alert) == 0


def test_generic_batch_with_dedup_inside_the_batch(
    api: TestClient, context: AppContext, generic_key: str
) -> None:
    batch = [
        {"summary": "disk 91%", "dedup_key": "disk-db1", "severity": "warning", "service": "database"},
        {"summary": "disk 95%", "dedup_key": "disk-db1", "severity": "error", "service": "database"},
        {"summary": "queue slow", "labels": {"alertname": "QueueSlow", "service": "queue"}},
        {"summary": "queue slow", "labels": {"alertname": "QueueSlow", "service": "queue"}},
    ]
    response = api.post(f"/api/v1/alerts?key={generic_key}", json=batch)
    assert response.status_code == 202, response.text
    assert [a["outcome"] for a in response.json()["alerts"]] == ["created", "updated", "created", "unchanged"]
    rows = alerts(context)
    assert len(rows) == 2
    disk = next(a for a in rows if a.dedup_key == "disk-db1")
    assert disk.occurrences == 2
    assert disk.severity == "error"
    assert disk.summary == "disk 95%"
    # Without a dedup key, identical labels mean the same alert.
    queue = next(a for a in rows if a.dedup_key != "disk-db1")
    resolve = api.post(
        f"/api/v1/alerts?key={generic_key}",
        json={
            "summary": "queue ok",
            "status": "resolved",
            "labels": {"alertname": "QueueSlow", "service": "queue"},
        },
    )
    assert resolve.json()["alerts"][0] == {
        "id": queue.id,
        "dedup_key": queue.dedup_key,
        "status": "resolved",
        "outcome": "resolved",
        "incident": None,
    }
    ignored = api.post(
        f"/api/v1/alerts?key={generic_key}", json={"summary": "?", "status": "resolved", "dedup_key": "never"}
    )
    assert ignored.json()["alerts"][0]["outcome"] == "ignored"
    assert count(context, Alert) == 2


def test_an_alert_that_fires_and_resolves_within_one_batch(
    api: TestClient, context: AppContext, generic_key: str, am_key: str
) -> None:
    """A flapping alert whose firing and resolve arrive in one delivery (or in two that one commit takes
    together) is stored as an alert that opened and closed; firing once more opens the next one."""
    flap = [
        {"summary": "link down", "dedup_key": "link-1"},
        {"summary": "link down", "dedup_key": "link-1", "status": "resolved"},
        {"summary": "link down again", "dedup_key": "link-1"},
        {"summary": "link down again", "dedup_key": "link-1", "status": "resolved"},
        {"summary": "link down a third time", "dedup_key": "link-1"},
    ]
    response = api.post(f"/api/v1/alerts?key={generic_key}", json=flap)
    assert response.status_code == 202, response.text
    answered = response.json()["alerts"]
    assert [(a["outcome"], a["status"]) for a in answered] == [
        ("created", "firing"),
        ("resolved", "resolved"),
        ("created", "firing"),
        ("resolved", "resolved"),
        ("created", "firing"),
    ]
    rows = alerts(context)
    assert [(a.id, a.status, a.open_dedup_key) for a in rows] == [
        (answered[0]["id"], "resolved", None),
        (answered[2]["id"], "resolved", None),
        (answered[4]["id"], "firing", "link-1"),
    ]
    assert answered[0]["id"] == answered[1]["id"] and answered[2]["id"] == answered[3]["id"]
    assert rows[0].summary == "link down" and rows[0].resolved_at is not None

    # Alertmanager: one delivery with the same fingerprint firing, then resolved.
    delivery = payload("alertmanager-0.25-firing.json")
    resolved = copy.deepcopy(delivery["alerts"][0])
    resolved["status"] = "resolved"
    delivery["alerts"].append(resolved)
    response = api.post(f"/api/v1/alerts/alertmanager?key={am_key}", json=delivery)
    assert response.status_code == 202, response.text
    assert [a["outcome"] for a in response.json()["alerts"]] == ["created", "resolved"]
    [stored] = [a for a in alerts(context) if a.source == "alertmanager"]
    assert stored.status == "resolved"


def test_long_names_fit_and_links_are_web_addresses(
    api: TestClient, context: AppContext, am_key: str, generic_key: str, pd_key: str
) -> None:
    """Values a sender puts in labels are cut to their columns (PostgreSQL refuses longer text), and a
    link that is not a web or mail address is left out of what machines send and refused from what people
    write."""
    delivery = payload("alertmanager-0.25-firing.json")
    alert = delivery["alerts"][0]
    alert["labels"].update(alertname="A" * 300, service="s" * 300)
    alert["generatorURL"] = "javascript:alert(document.domain)"
    for _ in range(2):
        response = api.post(f"/api/v1/alerts/alertmanager?key={am_key}", json=delivery)
        assert response.status_code == 202, response.text
        delivery["alerts"][0]["annotations"]["summary"] = "changed"  # the second time: an update
    [stored] = alerts(context)
    assert (len(stored.alert_type), len(stored.service or "")) == (200, 200)
    assert stored.alert_type.endswith("A…") and stored.occurrences == 2
    assert all(link["href"].startswith("http") for link in stored.links)

    event = {
        "routing_key": pd_key,
        "event_action": "trigger",
        "payload": {"summary": "s", "source": "h", "severity": "info", "component": "c" * 300},
        "links": [{"href": "data:text/html,<script>alert(1)</script>"}, {"href": "https://ok.example"}],
    }
    assert api.post("/v2/enqueue", json=event).status_code == 202
    pagerduty_alert = alerts(context)[-1]
    assert len(pagerduty_alert.service or "") == 200
    assert pagerduty_alert.links == [{"href": "https://ok.example", "text": None}]

    written = {"summary": "x", "links": [{"href": " javascript:alert(1)"}]}
    refused = api.post(f"/api/v1/alerts?key={generic_key}", json=written)
    assert refused.status_code == 400
    assert "links.0.href" in refused.json()["error"]["message"]
    for blank in ({"summary": "  "}, {"summary": "x", "dedup_key": " "}):
        assert api.post(f"/api/v1/alerts?key={generic_key}", json=blank).status_code == 400, blank
    assert len(alerts(context)) == 2


def test_pagerduty_shape(api: TestClient, context: AppContext, pd_key: str) -> None:
    captured = payload("pdpyras-5.4.1-trigger-request.json")["body"]
    captured["routing_key"] = pd_key
    response = api.post("/v2/enqueue", json=captured)
    assert response.status_code == 202
    assert response.json() == {
        "status": "success",
        "message": "Event processed",
        "dedup_key": "probe-disk-db1",
    }
    [alert] = alerts(context)
    assert alert.source == "pagerduty"
    assert alert.severity == "error"
    assert alert.annotations["custom_details"] == {"free_pct": 1.5}
    assert "routing_key" not in alert.raw

    ack = api.post(
        "/v2/enqueue",
        json={"routing_key": pd_key, "event_action": "acknowledge", "dedup_key": "probe-disk-db1"},
    )
    assert ack.status_code == 202
    assert alerts(context)[0].status == "acknowledged"
    done = api.post(
        "/v2/enqueue", json={"routing_key": pd_key, "event_action": "resolve", "dedup_key": "probe-disk-db1"}
    )
    assert done.json()["dedup_key"] == "probe-disk-db1"
    assert alerts(context)[0].status == "resolved"

    # No dedup key on a trigger: one is made up and returned.
    made_up = api.post(
        "/v2/enqueue",
        json={
            "routing_key": pd_key,
            "event_action": "trigger",
            "payload": {"summary": "s", "source": "h", "severity": "info"},
        },
    )
    assert made_up.status_code == 202
    assert len(made_up.json()["dedup_key"]) == 32


def test_pagerduty_images_must_be_web_addresses_and_blank_summaries_still_page(
    api: TestClient, context: AppContext, pd_key: str
) -> None:
    """An image whose src is javascript: is left out (its href kept as a link); a blank summary is named by
    what sent it, so the page says something."""
    trigger = {
        "routing_key": pd_key,
        "event_action": "trigger",
        "dedup_key": "img",
        "payload": {"summary": "   ", "source": "db-1", "severity": "error", "class": "disk"},
        "images": [
            {"src": "javascript:alert(1)", "href": "https://ok.example/graph"},
            {"src": "https://ok.example/g.png", "alt": "graph"},
            {"src": "https://ok.example/h.png", "href": "javascript:alert(2)"},
            {"src": "https://"},
        ],
        "links": [{"href": "https://"}, {"href": "http:///path"}, {"href": "mailto:ops@example.com"}],
    }
    assert api.post("/v2/enqueue", json=trigger).status_code == 202
    blank = {
        **trigger,
        "dedup_key": "blank",
        "images": [],
        "links": [],
        "payload": {**trigger["payload"], "source": " "},
    }
    del blank["payload"]["class"]
    assert api.post("/v2/enqueue", json=blank).status_code == 202
    image, no_source = alerts(context)
    # Addresses with no host are no links either; a bad href leaves the image linking to itself.
    assert image.links == [
        {"href": "mailto:ops@example.com", "text": None},
        {"href": "https://ok.example/graph", "text": None},
        {"href": "https://ok.example/g.png", "text": "graph", "image": "https://ok.example/g.png"},
        {"href": "https://ok.example/h.png", "text": None, "image": "https://ok.example/h.png"},
    ]
    assert image.summary == "disk from db-1 (sent with a blank summary)"
    assert no_source.summary == "alert (sent with a blank summary)"


def test_pagerduty_errors_keep_pagerduty_shapes(api: TestClient, context: AppContext, pd_key: str) -> None:
    bad = api.post(
        "/v2/enqueue",
        json={
            "routing_key": pd_key,
            "event_action": "trigger",
            "payload": {"summary": "s", "severity": "bad"},
        },
    )
    assert bad.status_code == 400
    body = bad.json()
    assert body["status"] == "invalid event"
    assert body["message"] == "Event object is invalid"
    assert "'payload.source' is missing or blank" in body["errors"]  # PagerDuty's words
    assert any(e.startswith("payload.severity") for e in body["errors"])
    blank = api.post(
        "/v2/enqueue",
        json={"routing_key": pd_key, "event_action": "trigger", "payload": {"summary": "s", "source": ""}},
    )
    assert "'payload.source' is missing or blank" in blank.json()["errors"], blank.text
    no_routing_key = api.post("/v2/enqueue", json={"routing_key": "", "event_action": "trigger"})
    assert no_routing_key.status_code == 400
    assert "'routing_key' is missing or blank" in no_routing_key.json()["errors"], no_routing_key.text
    no_key = api.post("/v2/enqueue", json={"routing_key": pd_key, "event_action": "resolve"})
    assert no_key.status_code == 400
    assert no_key.json()["errors"] == ["dedup_key: required for resolve"]
    garbage = api.post("/v2/enqueue", content=b"nope", headers={"Content-Type": "application/json"})
    assert garbage.status_code == 400
    assert garbage.json()["status"] == "Unrecognized object"
    wrong = api.post(
        "/v2/enqueue",
        json={
            "routing_key": "0" * 32,
            "event_action": "trigger",
            "payload": {"summary": "s", "source": "h", "severity": "info"},
        },
    )
    assert wrong.status_code == 401
    assert set(wrong.json()) == {"status", "message", "errors"}
    assert count(context, Alert) == 0


def test_alert_reads_and_promotion(
    api: TestClient, context: AppContext, generic_key: str, viewer: dict[str, str], responder: dict[str, str]
) -> None:
    api.post(
        f"/api/v1/alerts?key={generic_key}",
        json=[
            {"summary": "cache misses high", "service": "cache", "severity": "warning", "dedup_key": "a"},
            {"summary": "old one", "dedup_key": "b"},
        ],
    )
    api.post(
        f"/api/v1/alerts?key={generic_key}",
        json={"summary": "old one", "dedup_key": "b", "status": "resolved"},
    )
    assert api.get("/api/v1/alerts").status_code == 401
    page = api.get("/api/v1/alerts", headers=viewer).json()
    assert page["total"] == 2
    assert [a["ref"] for a in page["items"]] == ["ALR-2", "ALR-1"]
    firing = api.get("/api/v1/alerts", params={"firing": True, "unrouted": True}, headers=viewer).json()
    assert [a["ref"] for a in firing["items"]] == ["ALR-1"]
    assert firing["items"][0]["unrouted"] is True
    detail = api.get("/api/v1/alerts/ALR-1", headers=viewer).json()
    assert detail["raw"]["summary"] == "cache misses high"
    assert api.get("/api/v1/alerts/999", headers=viewer).status_code == 404

    assert api.post("/api/v1/alerts/1/promote", headers=viewer).status_code == 403
    bad = api.post("/api/v1/alerts/1/promote", json={"severity": "P9"}, headers=responder)
    assert bad.status_code == 422
    promoted = api.post("/api/v1/alerts/1/promote", headers=responder)
    assert promoted.status_code == 201, promoted.text
    assert promoted.json()["incident"] == "INC-1"
    incident = api.get("/api/v1/incidents/INC-1", headers=viewer).json()
    assert incident["title"] == "cache misses high"
    assert incident["severity"] == "P2"
    assert incident["services"] == ["cache"]
    assert incident["created_by"] == "responder-user"
    assert incident["assessment"]["source"] == "monitoring-alert"
    timeline = api.get("/api/v1/incidents/INC-1/timeline", headers=viewer).json()["items"]
    assert "ALR-1" in timeline[-1]["action"]
    assert api.post("/api/v1/alerts/1/promote", headers=responder).status_code == 409
    assert api.get("/api/v1/alerts", params={"unrouted": True}, headers=viewer).json()["total"] == 1
    assert count(context, Incident) == 1


def test_framework_routes_give_the_same_answers(context: AppContext, am_key: str) -> None:
    """Without the fast path in front, the FastAPI routes run the same handler."""
    from warroom.app import create_app

    app = create_app(context=context)
    app.build_middleware_stack = type(app).build_middleware_stack.__get__(app)  # type: ignore[method-assign]
    with TestClient(app) as client:
        firing = payload("alertmanager-0.25-firing.json")
        response = client.post(f"/api/v1/alerts/alertmanager?key={am_key}", json=firing)
        assert response.status_code == 202, response.text
        assert response.json()["alerts"][0]["outcome"] == "created"
        assert client.post("/api/v1/alerts/alertmanager?key=bad", json=firing).status_code == 401
        pd_key = make_key(context, "pagerduty", "pd-shaped")  # the key comes first: a good one, a bad event
        bad = client.post("/v2/enqueue", json={"routing_key": pd_key, "event_action": "explode"})
        assert bad.status_code == 400
        assert bad.json()["status"] == "invalid event"
        assert "/api/v1/alerts/alertmanager" in client.get("/openapi.json").json()["paths"]
    assert count(context, Alert) == 1


def test_chunked_body_over_the_limit_is_413(api: TestClient, context: AppContext, generic_key: str) -> None:
    limit = context.settings.max_body_bytes

    def chunks() -> Any:
        yield b'{"summary": "x", "annotations": {"blob": "'
        for _ in range(limit // 65536 + 2):
            yield b"a" * 65536
        yield b'"}}'

    response = api.post(f"/api/v1/alerts?key={generic_key}", content=chunks())
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"
    assert count(context, Alert) == 0


def test_alertmanager_as_pagerduty_client(api: TestClient, context: AppContext, pd_key: str) -> None:
    """Alertmanager's own PagerDuty notifier (captured): trigger, then resolve by its sha256 dedup key."""
    trigger, resolve = (
        delivery["body"] for delivery in payload("alertmanager-0.25-as-pagerduty-client.json")
    )
    trigger["routing_key"] = resolve["routing_key"] = pd_key
    first = api.post("/v2/enqueue", json=trigger)
    assert first.status_code == 202
    assert first.json()["dedup_key"] == trigger["dedup_key"]
    [alert] = alerts(context)
    assert (alert.status, alert.severity, alert.source) == ("firing", "error", "pagerduty")
    assert alert.summary == "[FIRING:1] QueueBacklog billing (pagerduty warning)"
    assert alert.annotations["client"] == "Alertmanager"
    assert alert.links == [{"href": "http://vm:19093/#/alerts?receiver=pd", "text": "Alertmanager"}]
    assert api.post("/v2/enqueue", json=resolve).status_code == 202
    [alert] = alerts(context)
    assert alert.status == "resolved"
    assert alert.last_raw is not None
    assert alert.last_raw["payload"]["summary"].startswith("[RESOLVED]")


def test_truncated_notification_is_answered_and_kept_with_the_evidence(
    api: TestClient, context: AppContext, am_key: str
) -> None:
    url = f"/api/v1/alerts/alertmanager?key={am_key}"
    # 10**23 was stored, then answered 500: the answer echoing it could not be written (nor PostgreSQL read).
    for bad in (-1, "3", 1.5, True, 2**31, 10**23):
        broken = payload("alertmanager-0.25-firing.json")
        broken["truncatedAlerts"] = bad
        response = api.post(url, json=broken)
        assert response.status_code == 400, (bad, response.text)
        assert response.json()["error"]["details"][0]["field"] == "truncatedAlerts"
    assert count(context, Alert) == 0

    before = REGISTRY.get_sample_value("warroom_alerts_truncated_total", {"source": "alertmanager"}) or 0
    truncated = payload("alertmanager-0.25-firing.json")
    truncated["truncatedAlerts"] = 7
    response = api.post(url, json=truncated)
    assert response.status_code == 202, response.text
    body = response.json()
    delivered = len(truncated["alerts"])
    assert body["truncated_alerts"] == 7
    assert body["warning"] == (
        f"the sender left 7 alert(s) of this group out of the notification (its max_alerts); "
        f"only the {delivered} delivered are recorded"
    )
    assert all(alert.raw["truncatedAlerts"] == 7 for alert in alerts(context))
    after = REGISTRY.get_sample_value("warroom_alerts_truncated_total", {"source": "alertmanager"})
    assert after == before + 7

    # A complete notification (0, or null from older senders) says nothing of it.
    for complete in (0, None):
        again = payload("alertmanager-0.25-firing.json")
        again["truncatedAlerts"] = complete
        answer = api.post(url, json=again).json()
        assert "truncated_alerts" not in answer and "warning" not in answer


def test_alerts_filtered_by_service_and_severity(
    api: TestClient, context: AppContext, generic_key: str, viewer: dict[str, str]
) -> None:
    sent = [
        {"summary": "checkout 5xx", "service": "payments", "severity": "critical", "dedup_key": "a"},
        {"summary": "card latency", "service": "payments", "severity": "warning", "dedup_key": "b"},
        {"summary": "search slow", "service": "search", "severity": "critical", "dedup_key": "c"},
        {"summary": "cron late", "severity": "info", "dedup_key": "d"},
    ]
    assert api.post(f"/api/v1/alerts?key={generic_key}", json=sent).status_code == 202

    def summaries(**params: Any) -> set[str]:
        response = api.get("/api/v1/alerts", params=params, headers=viewer)
        assert response.status_code == 200, response.text
        page = response.json()
        assert page["total"] == len(page["items"])
        return {alert["summary"] for alert in page["items"]}

    assert summaries(service="payments") == {"checkout 5xx", "card latency"}
    assert summaries(severity="critical") == {"checkout 5xx", "search slow"}
    assert summaries(service="payments", severity="critical") == {"checkout 5xx"}
    assert summaries(service=["payments", "search"], severity=["critical", "info"]) == {
        "checkout 5xx",
        "search slow",
    }
    assert summaries(service="queue") == set()  # the org file's, with no alert
    bad = api.get("/api/v1/alerts", params={"severity": "apocalyptic"}, headers=viewer)
    assert bad.status_code == 422 and "severity" in bad.json()["error"]["message"]
    # A filter of one value given twice is refused (the last one was taken silently), as the CLI refuses it.
    for twice in ("limit=2&limit=3", "since=1h&since=2h", "search=a&search=b"):
        refused = api.get(f"/api/v1/alerts?{twice}", headers=viewer)
        name = twice.split("=")[0]
        assert refused.status_code == 422, refused.text
        assert f"{name} was given 2 times; it takes one value" in refused.json()["error"]["message"]
    # A filter that names nothing there is refused, rather than looking like "no alerts"; an incident that
    # does not exist is not found (404), as in every list's incident filter.
    assert summaries(source="generic", integration="scripts") == {a["summary"] for a in sent}
    nothing = [
        api.get("/api/v1/alerts", params={"source": "nagios"}, headers=viewer),
        api.get("/api/v1/alerts", params={"integration": "script"}, headers=viewer),
        api.get("/api/v1/alerts", params={"incident": "INC-999"}, headers=viewer),
    ]
    assert [answer.status_code for answer in nothing] == [422, 422, 404], [a.text for a in nothing]


def test_alerts_are_found_by_label_and_by_when_they_were_last_seen(
    api: TestClient, generic_key: str, viewer: dict[str, str]
) -> None:
    clock.set(datetime(2026, 3, 2, 10, 0, tzinfo=UTC))
    alerts = [
        {"summary": "disk full", "dedup_key": "a", "labels": {"instance": "db-1", "env": "prod"}},
        {"summary": "disk full", "dedup_key": "b", "labels": {"instance": "db-2", "env": "prod"}},
        {"summary": "disk full", "dedup_key": "c", "labels": {"instance": "db-1", "env": "staging"}},
    ]
    assert api.post(f"/api/v1/alerts?key={generic_key}", json=alerts).status_code == 202
    clock.advance(timedelta(hours=3))
    repeat = {**alerts[1], "summary": "disk still full"}
    assert api.post(f"/api/v1/alerts?key={generic_key}", json=repeat).status_code == 202

    def refs(**params: Any) -> list[str]:
        response = api.get("/api/v1/alerts", params=params, headers=viewer)
        assert response.status_code == 200, response.text
        return [alert["ref"] for alert in response.json()["items"]]

    assert refs(label="instance=db-1") == ["ALR-3", "ALR-1"]
    assert refs(label=["instance=db-1", "env=prod"]) == ["ALR-1"]
    assert refs(label="instance=db-9") == []
    assert refs(label="instance=") == []  # an empty value matches only an empty label
    assert refs(since="1h") == ["ALR-2"]
    assert refs(since="1h", label="env=staging") == []
    # Bad filters: 422 with the field at fault.
    for params, field in (
        ({"label": "instance"}, "label"),
        ({"since": "soon"}, "since"),
        ({"since": "0s"}, "since"),
    ):
        response = api.get("/api/v1/alerts", params=params, headers=viewer)
        assert response.status_code == 422, (params, response.text)
        assert field in response.text


def pagerduty_shape(answer: dict[str, Any]) -> bool:
    return set(answer) == {"status", "message", "errors"} and isinstance(answer["errors"], list)


def opsgenie_shape(answer: dict[str, Any]) -> bool:
    return set(answer) == {"message", "took", "requestId"}


def warroom_shape(answer: dict[str, Any]) -> bool:
    return set(answer) == {"error"}


# Each intake route, and the shape of its refusals: PagerDuty's and Opsgenie's own on their APIs.
SHAPED_ROUTES = [
    ("/v2/enqueue", pagerduty_shape),
    ("/generic/2010-04-15/create_event.json", pagerduty_shape),
    ("/v2/alerts", opsgenie_shape),
    ("/v2/alerts/disk/close?identifierType=alias", opsgenie_shape),
    ("/api/v1/alerts", warroom_shape),
    ("/api/v1/alerts/alertmanager", warroom_shape),
    ("/api/v1/alerts/webhook/pingdom", warroom_shape),
    ("/v2/change/enqueue", pagerduty_shape),
]


def test_a_body_over_the_limit_is_refused_in_each_senders_shape(api: TestClient, context: AppContext) -> None:
    """413 from the fast path and from the app's request guard alike, with Content-Length or chunked. The
    group senders' routes (Alertmanager's here) have their own, larger limit. Each with a good key where the
    key is in the URL or headers: a keyless one is refused (401) before its body is received."""
    genie = {"Authorization": f"GenieKey {make_key(context, 'opsgenie')}"}
    keys = {
        "/api/v1/alerts": make_key(context, "generic"),
        "/api/v1/alerts/alertmanager": make_key(context, "alertmanager"),
        "/api/v1/alerts/webhook/pingdom": make_key(context, "webhook"),
    }
    for path, shape in SHAPED_ROUTES:
        headers = {"Content-Type": "application/json", **(genie if path.startswith("/v2/alerts") else {})}
        target = f"{path}?key={keys[path]}" if path in keys else path
        limit = context.settings.max_body_bytes
        if path in fastpath.GROUP_PATHS:
            limit = context.settings.max_intake_body_bytes
        huge = b'{"summary": "' + b"a" * limit + b'"}'

        def chunks(huge: bytes = huge) -> Any:
            for start in range(0, len(huge), 65536):
                yield huge[start : start + 65536]

        for content in (huge, chunks()):
            refused = api.post(target, content=content, headers=headers)
            assert refused.status_code == 413, (path, refused.text)
            answer = refused.json()
            assert shape(answer), (path, answer)
            assert f"over the limit of {limit} bytes" in refused.text, (path, answer)
            if shape is pagerduty_shape:
                assert answer["status"] == "invalid event", answer
    assert count(context, Alert) == 0


def test_a_compressed_body_is_refused_with_415(api: TestClient, context: AppContext) -> None:
    """Intake reads bodies as sent: a Content-Encoding other than identity is refused, saying to send the
    body uncompressed, rather than read as bytes that are not UTF-8."""
    keys = {kind: make_key(context, kind) for kind in ("generic", "alertmanager", "webhook", "opsgenie")}
    headers = {"Content-Type": "application/json", "Authorization": f"GenieKey {keys['opsgenie']}"}
    compressed = gzip.compress(b'{"summary": "disk full"}')
    for path, shape in SHAPED_ROUTES:
        kind = "alertmanager" if "alertmanager" in path else "webhook" if "webhook" in path else "generic"
        url = f"{path}?key={keys[kind]}" if path.startswith("/api/") else path
        for encoding in ("gzip", "identity, br"):
            refused = api.post(url, content=compressed, headers={**headers, "Content-Encoding": encoding})
            assert refused.status_code == 415, (path, refused.text)
            assert shape(refused.json()), (path, refused.text)
            assert "send the body uncompressed" in refused.text, refused.text
    plain = api.post(
        f"/api/v1/alerts?key={keys['generic']}",
        content=b'{"summary": "disk full"}',
        headers={"Content-Type": "application/json", "Content-Encoding": "identity"},
    )
    assert plain.status_code == 202, plain.text
    assert count(context, Alert) == 1


@pytest.mark.parametrize("fast_path", [True, False], ids=["fast-path", "request-guard"])
def test_the_key_comes_before_the_bodys_size_and_encoding(
    context: AppContext, caplog: pytest.LogCaptureFixture, fast_path: bool
) -> None:
    """Where the key is in the URL or headers, a caller without a good key is refused (401, 403) whatever
    its body's size and encoding, and nothing is logged: a keyless sender cannot fill the log with 413
    warnings. PagerDuty's routes carry the key in the body, so theirs is read (up to the limit) first: an
    oversized or compressed body is refused (413, 415) before any key is looked for."""
    app = create_app(context=context)
    if not fast_path:
        app.intake = None
    huge = b'{"summary": "' + b"a" * context.settings.max_intake_body_bytes + b'"}'
    compressed = gzip.compress(b'{"summary": "disk full"}')
    caplog.set_level(logging.WARNING, logger="warroom")
    with TestClient(app) as api:
        for path, shape in SHAPED_ROUTES:
            in_body = shape is pagerduty_shape
            for key in (None, "nope"):
                if path.startswith("/v2/alerts"):
                    headers = {"Authorization": "GenieKey nope"} if key else {}
                    target = path
                else:
                    headers = {}
                    target = f"{path}{'&' if '?' in path else '?'}key={key}" if key else path
                headers = {**headers, "Content-Type": "application/json"}
                for content, extra, refused_for_body in (
                    (huge, {}, 413),
                    (compressed, {"Content-Encoding": "gzip"}, 415),
                ):
                    caplog.clear()
                    answer = api.post(target, content=content, headers={**headers, **extra})
                    if in_body:
                        assert answer.status_code == refused_for_body, (path, key, answer.text)
                    else:
                        assert answer.status_code in (401, 403), (path, key, answer.text)
                        assert caplog.records == [], (path, [r.getMessage() for r in caplog.records])
                    assert shape(answer.json()), (path, answer.text)
    assert count(context, Alert) == 0


def test_a_body_that_is_not_utf8_names_the_byte(api: TestClient, context: AppContext, pd_key: str) -> None:
    key = make_key(context, "generic")
    latin1 = api.post(f"/api/v1/alerts?key={key}", content='{"summary": "café"}'.encode("latin-1"))
    assert latin1.status_code == 400, latin1.text
    assert latin1.json()["error"]["message"] == "the body is not valid UTF-8 (byte 16: 0xe9)"
    # Compressed without saying so: the same, with what it looks like.
    zipped = api.post(f"/api/v1/alerts?key={key}", content=gzip.compress(b"{}"))
    assert zipped.status_code == 400, zipped.text
    assert zipped.json()["error"]["message"] == (
        "the body is not valid UTF-8 (byte 1: 0x8b); it looks gzip-compressed: send it uncompressed"
    )
    event = f'{{"routing_key": "{pd_key}", "event_action": "trigger", "dedup_key": "caf\xe9"}}'
    unrecognized = api.post("/v2/enqueue", content=event.encode("latin-1"))
    assert unrecognized.status_code == 400, unrecognized.text
    assert unrecognized.json()["status"] == "Unrecognized object"  # as for any body that cannot be read
    where = event.index("\xe9")
    assert unrecognized.json()["errors"] == [f"body: the body is not valid UTF-8 (byte {where}: 0xe9)"]
    assert count(context, Alert) == 0


def test_a_leading_byte_order_mark_is_ignored_on_every_json_route(
    api: TestClient, context: AppContext
) -> None:
    """Some senders (PowerShell's Out-File) start UTF-8 with a BOM; RFC 8259 lets a parser ignore it."""
    bom = b"\xef\xbb\xbf"
    keys = {kind: make_key(context, kind) for kind in ("generic", "alertmanager", "webhook", "opsgenie")}
    pd_key = make_key(context, "pagerduty")
    trigger = {"event_action": "trigger", "payload": {"summary": "s", "source": "h", "severity": "info"}}
    deliveries: list[tuple[str, Any, dict[str, str]]] = [
        (f"/api/v1/alerts?key={keys['generic']}", {"summary": "ümlaut"}, {}),
        (
            f"/api/v1/alerts/alertmanager?key={keys['alertmanager']}",
            payload("alertmanager-0.25-firing.json"),
            {},
        ),
        ("/v2/enqueue", {"routing_key": pd_key, **trigger}, {}),
        (
            "/generic/2010-04-15/create_event.json",
            {"service_key": pd_key, "event_type": "trigger", "description": "d"},
            {},
        ),
        ("/v2/alerts", {"message": "m", "alias": "a"}, {"Authorization": f"GenieKey {keys['opsgenie']}"}),
        (f"/api/v1/alerts/webhook/pingdom?key={keys['webhook']}", payload("pingdom-check-down.json"), {}),
    ]
    for path, body, headers in deliveries:
        content = bom + json.dumps(body, ensure_ascii=False).encode()
        taken = api.post(path, content=content, headers={"Content-Type": "application/json", **headers})
        assert taken.status_code in (200, 202), (path, taken.text)
    # JSON posted with curl -d's form content type is still read as JSON.
    form = api.post(
        f"/api/v1/alerts/webhook/pingdom?key={keys['webhook']}",
        content=bom + b'{"check_id": 7, "check_name": "api", "current_state": "DOWN"}',
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert form.status_code == 202, form.text
    assert count(context, Alert) == len(deliveries) + 1
    assert alerts(context)[0].summary == "ümlaut"


def test_a_trailing_slash_is_404_in_the_routes_shape_never_a_redirect(
    api: TestClient, context: AppContext
) -> None:
    """Starlette redirected ``/api/v1/alerts/?key=SECRET`` to ``http://<Host>/api/v1/alerts?key=SECRET``:
    behind a TLS proxy, a sender that followed it sent key and body in plain http to wherever Host said."""
    key = make_key(context, "generic")
    headers = {"Host": "warroom.example.com", "X-Forwarded-Proto": "https"}
    for path, shape in [
        ("/api/v1/alerts/", warroom_shape),
        ("/api/v1/alerts/alertmanager/", warroom_shape),
        ("/v2/enqueue/", pagerduty_shape),
        ("/v2/alerts/", opsgenie_shape),
        ("/v2/change/enqueue/", pagerduty_shape),
        ("/api/v1/alerts/webhook/uptime-kuma/", warroom_shape),
        ("/api/v1/heartbeats/fast/", warroom_shape),
        ("/api/v1/changes/", warroom_shape),
    ]:
        refused = api.post(
            f"{path}?key={key}", json={"summary": "x"}, headers=headers, follow_redirects=False
        )
        assert refused.status_code == 404, (path, refused.status_code, refused.headers)
        assert "location" not in refused.headers and key not in refused.text, path
        assert shape(refused.json()), (path, refused.text)
        assert "drop the trailing slash" in refused.text, (path, refused.text)
    assert api.get("/api/v1/incidents/", follow_redirects=False).status_code == 404
    assert count(context, Alert) == 0


def test_conflicting_keys_are_refused_on_every_route_that_reads_a_key(context: AppContext) -> None:
    """``/api/v1/alerts`` took the first of two ``key`` parameters and the heartbeat routes the last: two
    different keys (or a ``key`` and a different Bearer token) are refused with 401 wherever a key is read,
    fast path or framework; the same key twice is one key."""
    from warroom.app import create_app

    generic = make_key(context, "generic", "scripts")
    webhook = make_key(context, "webhook", "tools")
    beat = make_key(context, "heartbeat", "cron")
    other = make_key(context, "generic", "other")
    pingdom = {"check_id": 1, "check_name": "web", "current_state": "DOWN"}
    routes = [
        ("/api/v1/alerts", generic, {"summary": "disk full"}, 202),
        ("/api/v1/alerts/webhook/pingdom", webhook, pingdom, 202),
        ("/api/v1/heartbeats/nightly-backup", beat, {}, 200),
    ]
    fast = TestClient(create_app(context=context))
    framework = create_app(context=context)
    framework.build_middleware_stack = type(framework).build_middleware_stack.__get__(framework)  # type: ignore[method-assign]
    for client in (fast, TestClient(framework)):
        with client:
            for path, key, body, ok in routes:
                for query, headers in [
                    (f"key={key}&key={other}", {}),
                    (f"key={other}&key={key}", {}),
                    (f"key={key}&k%65y={other}", {}),
                    (f"key={key}", {"Authorization": f"Bearer {other}"}),
                ]:
                    refused = client.post(f"{path}?{query}", json=body, headers=headers)
                    assert refused.status_code == 401, (path, query, refused.text)
                    assert "conflicting keys" in refused.json()["error"]["message"], refused.text
                for query, headers in [
                    (f"key={key}&key={key}", {"Authorization": f"Bearer {key}"}),
                    (f"key={key}", {"Authorization": "Basic dXNlcjpwYXNz"}),
                ]:
                    answered = client.post(f"{path}?{query}", json=body, headers=headers)
                    assert answered.status_code == ok, (path, query, answered.text)


def test_a_pagerduty_body_that_is_not_json_is_refused_naming_nothing_but_that(api: TestClient) -> None:
    """PagerDuty's routes read the key from the body: one that is not JSON gets PagerDuty's 400 saying
    only that it is not JSON, not the parser's account of where it failed."""
    for path in ("/v2/enqueue", "/generic/2010-04-15/create_event.json", "/v2/change/enqueue"):
        for body in (b"{not json", b"nul", b'{"routing_key": "x",'):
            refused = api.post(path, content=body, headers={"Content-Type": "application/json"})
            assert refused.status_code == 400, (path, refused.text)
            assert refused.json() == {
                "status": "Unrecognized object",
                "message": "Event object format is unrecognized",
                "errors": ["body: not valid JSON"],
            }, (path, body, refused.text)
