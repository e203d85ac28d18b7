"""PagerDuty's Events API v2: a trigger's ``payload.timestamp`` that is not a time is refused (400,
PagerDuty's error shape, naming the field), as the change-event path refuses it; a good one is the alert's
start."""

from __future__ import annotations

from fastapi.testclient import TestClient

from tests.alerts.test_intake import alerts
from warroom.context import AppContext


def trigger(key: str, timestamp: str) -> dict[str, object]:
    return {
        "routing_key": key,
        "event_action": "trigger",
        "payload": {"summary": "replica lag", "source": "db-2", "severity": "error", "timestamp": timestamp},
    }


def test_a_timestamp_that_is_not_a_time_is_refused(api: TestClient, context: AppContext, pd_key: str) -> None:
    refused = api.post("/v2/enqueue", json=trigger(pd_key, "yesterday"))
    assert refused.status_code == 400, refused.text
    body = refused.json()
    assert body["status"] == "invalid event"
    assert body["message"] == "Event object is invalid"
    assert len(body["errors"]) == 1 and body["errors"][0].startswith("payload.timestamp: 'yesterday'")
    assert alerts(context) == []


def test_a_good_timestamp_is_the_alerts_start(api: TestClient, context: AppContext, pd_key: str) -> None:
    accepted = api.post("/v2/enqueue", json=trigger(pd_key, "2026-03-02T09:40:00Z"))
    assert accepted.status_code == 202, accepted.text
    [alert] = alerts(context)
    assert alert.source_started_at is not None and alert.source_started_at.isoformat().startswith(
        "2026-03-02T09:40:00"
    )
