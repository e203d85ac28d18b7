"""Intake's own metrics: alerts received by source and outcome (counted once their transaction commits),
deliveries refused by source and reason, and the open and unrouted alerts at scrape time."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient
from prometheus_client import REGISTRY
from sqlalchemy import text

from tests.alerts.conftest import make_key
from warroom.alerts import metrics
from warroom.clock import clock
from warroom.context import AppContext
from warroom.db import on_commit


def received(source: str, outcome: str) -> float:
    return (
        REGISTRY.get_sample_value("warroom_alerts_received_total", {"source": source, "outcome": outcome})
        or 0
    )


def rejected(source: str, reason: str) -> float:
    labels = {"source": source, "reason": reason}
    return REGISTRY.get_sample_value("warroom_alert_deliveries_rejected_total", labels) or 0


def scrape(api: TestClient) -> list[str]:
    return api.get("/metrics").text.splitlines()


def test_received_and_refused_deliveries_are_counted(
    api: TestClient, context: AppContext, generic_key: str, pd_key: str, am_key: str
) -> None:
    before = {
        outcome: received("generic", outcome) for outcome in ("created", "updated", "unchanged", "resolved")
    }

    def send(**alert: Any) -> None:
        answer = api.post(f"/api/v1/alerts?key={generic_key}", json={"severity": "info", **alert})
        assert answer.status_code == 202, answer.text

    send(summary="disk 81%", dedup_key="disk")
    send(summary="disk 85%", dedup_key="disk")
    send(summary="disk 85%", dedup_key="disk")  # a retried delivery: nothing changes
    send(summary="disk 85%", dedup_key="disk", status="resolved")
    assert {outcome: received("generic", outcome) - count for outcome, count in before.items()} == {
        "created": 1,
        "updated": 1,
        "unchanged": 1,
        "resolved": 1,
    }

    refusals_before = {
        ("generic", "unauthorized"): rejected("generic", "unauthorized"),
        ("generic", "forbidden"): rejected("generic", "forbidden"),
        ("generic", "invalid_payload"): rejected("generic", "invalid_payload"),
        ("alertmanager", "payload_too_large"): rejected("alertmanager", "payload_too_large"),
        ("pagerduty", "invalid_payload"): rejected("pagerduty", "invalid_payload"),
    }
    assert api.post("/api/v1/alerts?key=wrong", json={"summary": "x"}).status_code == 401
    assert api.post(f"/api/v1/alerts?key={am_key}", json={"summary": "x"}).status_code == 403
    assert api.post(f"/api/v1/alerts?key={generic_key}", json={"severity": "loud"}).status_code == 400
    huge = b"{" + b" " * (context.settings.max_intake_body_bytes + 1) + b"}"
    assert api.post(f"/api/v1/alerts/alertmanager?key={am_key}", content=huge).status_code == 413
    bad_event = {"routing_key": pd_key, "event_action": "trigger", "payload": {"summary": "x"}}
    assert api.post("/v2/enqueue", json=bad_event).status_code == 400
    assert {labels: rejected(*labels) - count for labels, count in refusals_before.items()} == {
        labels: 1 for labels in refusals_before
    }


def test_refusals_before_the_handlers_are_counted_on_every_intake_route(
    api: TestClient, context: AppContext
) -> None:
    """A tool's webhook and Opsgenie's API are answered by the framework, whose guard refuses a body over the
    limit (413, with or without Content-Length), in a Content-Encoding (415) or with a NUL (400 in a webhook's
    body, Opsgenie's 422 in its query) before any intake handler runs; a
    request the framework refuses (a format name over 60 characters) neither reaches one. Each is a refused
    delivery all the same. Listing alerts is not a delivery."""
    webhook = f"/api/v1/alerts/webhook/uptime-kuma?key={make_key(context, 'webhook')}"
    genie = {"Authorization": f"GenieKey {make_key(context, 'opsgenie')}"}
    huge = b"{" + b" " * (context.settings.max_body_bytes + 1) + b"}"
    labels = [
        ("webhook", "payload_too_large"),
        ("opsgenie", "payload_too_large"),
        ("webhook", "invalid_payload"),
        ("opsgenie", "invalid_payload"),
        ("generic", "payload_too_large"),
        ("webhook", "unsupported_media_type"),
        ("opsgenie", "unsupported_media_type"),
    ]
    before = {label: rejected(*label) for label in labels}

    def chunked() -> Iterator[bytes]:  # no Content-Length: the guard counts what arrives
        yield huge

    assert api.post(webhook, content=huge).status_code == 413
    assert api.post(webhook, content=chunked()).status_code == 413
    assert api.post("/v2/alerts", content=huge, headers=genie).status_code == 413
    assert (
        api.post("/v2/alerts/disk/close?identifierType=alias", content=huge, headers=genie).status_code == 413
    )
    assert api.post(webhook, content=b'{"msg": "a\\u0000b"}').status_code == 400
    gzip = {"Content-Encoding": "gzip"}
    assert api.post(webhook, content=b"\x1f\x8b", headers=gzip).status_code == 415
    assert api.post("/v2/alerts", content=b"\x1f\x8b", headers={**genie, **gzip}).status_code == 415
    assert api.post("/v2/alerts/disk/close?identifierType=alias&note=%00", headers=genie).status_code == 422
    assert api.post(f"/api/v1/alerts/webhook/{'x' * 61}", json={}).status_code == 422
    assert api.request("GET", "/api/v1/alerts", content=huge).status_code == 413
    assert {label: rejected(*label) - count for label, count in before.items()} == {
        ("webhook", "payload_too_large"): 2,
        ("opsgenie", "payload_too_large"): 2,
        ("webhook", "invalid_payload"): 2,
        ("opsgenie", "invalid_payload"): 1,
        ("generic", "payload_too_large"): 0,
        ("webhook", "unsupported_media_type"): 1,
        ("opsgenie", "unsupported_media_type"): 1,
    }


def test_refusals_on_the_heartbeat_and_change_event_routes_are_counted(
    api: TestClient, context: AppContext
) -> None:
    """A heartbeat's ping or report and a PagerDuty change event are deliveries too: a refused one is counted
    (``source`` heartbeat and change), by the alert routes' reasons."""
    beat = make_key(context, "heartbeat")
    pd = make_key(context, "pagerduty")
    other = make_key(context, "generic")
    labels = [
        ("heartbeat", "unauthorized"),
        ("heartbeat", "forbidden"),
        ("heartbeat", "not_found"),
        ("heartbeat", "invalid_payload"),
        ("change", "invalid_payload"),
        ("change", "unauthorized"),
        ("change", "forbidden"),
        ("change", "payload_too_large"),
    ]
    before = {label: rejected(*label) for label in labels}
    backup = "/api/v1/heartbeats/nightly-backup"
    assert api.post(backup).status_code == 401
    assert api.post(f"{backup}/fail?key=wrong").status_code == 401
    assert api.post(f"{backup}?key={beat}&key={other}").status_code == 401  # conflicting keys
    assert api.post(f"{backup}/1?key={other}").status_code == 403
    assert api.post(f"/api/v1/heartbeats/nope?key={beat}").status_code == 404
    assert api.post(f"{backup}/1/2?key={beat}").status_code == 404  # no such route
    assert api.post(f"{backup}/256?key={beat}").status_code == 422
    change = {"routing_key": pd, "payload": {"summary": "deployed"}}
    assert api.post("/v2/change/enqueue", json={"routing_key": pd}).status_code == 400
    assert api.post("/v2/change/enqueue", json={**change, "routing_key": "wrong"}).status_code == 401
    assert api.post("/v2/change/enqueue", json={**change, "routing_key": other}).status_code == 403
    huge = b"{" + b" " * (context.settings.max_body_bytes + 1) + b"}"
    assert api.post("/v2/change/enqueue", content=huge).status_code == 413
    assert api.post(f"{backup}/0?key={beat}").status_code == 200
    assert api.post("/v2/change/enqueue", json=change).status_code == 202
    assert {label: rejected(*label) - count for label, count in before.items()} == {
        ("heartbeat", "unauthorized"): 3,
        ("heartbeat", "forbidden"): 1,
        ("heartbeat", "not_found"): 2,
        ("heartbeat", "invalid_payload"): 1,
        ("change", "invalid_payload"): 1,
        ("change", "unauthorized"): 1,
        ("change", "forbidden"): 1,
        ("change", "payload_too_large"): 1,
    }


def test_a_transaction_that_rolls_back_counts_nothing(context: AppContext) -> None:
    ran: list[str] = []
    with pytest.raises(RuntimeError), context.db.write() as session:
        on_commit(session.connection(), lambda: ran.append("rolled back"))
        raise RuntimeError("the batch failed")
    with context.db.write() as session:
        on_commit(session.connection(), lambda: ran.append("committed"))
    # The next transaction on the same pooled connection does not inherit the dropped action.
    with context.db.write() as session:
        session.execute(text("SELECT 1"))
    assert ran == ["committed"]

    before = received("third-party", "created")
    with pytest.raises(RuntimeError), context.db.write() as session:
        metrics.count_received(session.connection(), "third-party", ["created", "created"])
        raise RuntimeError("the batch failed")
    assert received("third-party", "created") == before


def test_open_and_unrouted_alerts_at_scrape_time(api: TestClient, generic_key: str) -> None:
    def send(**alert: Any) -> None:
        assert api.post(f"/api/v1/alerts?key={generic_key}", json=alert).status_code == 202

    send(summary="disk 81%", severity="warning", dedup_key="disk")
    send(summary="queue slow", severity="warning", dedup_key="queue")
    send(summary="queue slow", severity="warning", dedup_key="queue", status="acknowledged")
    send(summary="charges failing", severity="critical", dedup_key="pay", labels={"service": "payments"})
    send(summary="old", severity="info", dedup_key="old")
    send(summary="old", severity="info", dedup_key="old", status="resolved")
    lines = scrape(api)
    assert 'warroom_alerts{severity="warning",source="generic",status="firing"} 1.0' in lines
    assert 'warroom_alerts{severity="warning",source="generic",status="acknowledged"} 1.0' in lines
    assert 'warroom_alerts{severity="critical",source="generic",status="firing"} 1.0' in lines
    assert not [line for line in lines if line.startswith("warroom_alerts{") and 'severity="info"' in line]
    # The payments alert went to an incident; the two warnings nobody is paged for.
    assert 'warroom_alerts_unrouted{severity="warning",source="generic"} 2.0' in lines
    assert 'warroom_alerts_unrouted{severity="critical",source="generic"} 0.0' in lines


def test_a_value_the_service_refuses_counts_as_invalid_payload(api: TestClient, context: AppContext) -> None:
    """QA: an Opsgenie snooze whose endTime is more than 7 days ahead (a 422 from the snooze service, not from
    reading the body) was counted under reason="invalid", a name no other route and no list of reasons has."""
    clock.set(datetime(2026, 3, 2, 10, 0, tzinfo=UTC))
    genie = {"Authorization": f"GenieKey {make_key(context, 'opsgenie')}"}
    labels = [("opsgenie", "invalid_payload"), ("opsgenie", "invalid")]
    before = {label: rejected(*label) for label in labels}
    opened = {"message": "Disk almost full on db-1", "alias": "disk-db1"}
    assert api.post("/v2/alerts", json=opened, headers=genie).status_code == 202
    snooze = "/v2/alerts/disk-db1/snooze?identifierType=alias"
    for end in ("2026-03-20T11:00:00Z", "2020-01-01T00:00:00Z"):  # too far ahead; in the past
        refused = api.post(snooze, json={"endTime": end}, headers=genie)
        assert refused.status_code == 422 and "endTime" in refused.json()["errors"], refused.text
    assert {label: rejected(*label) - count for label, count in before.items()} == {
        ("opsgenie", "invalid_payload"): 2,
        ("opsgenie", "invalid"): 0,
    }
