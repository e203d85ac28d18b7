"""The alert noise report: which alerts fire most, to tune first."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.alerts.conftest import make_key
from warroom.clock import clock
from warroom.context import AppContext

T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)


def send(api: TestClient, key: str, *alerts: dict[str, Any]) -> None:
    response = api.post(f"/api/v1/alerts?key={key}", json=list(alerts))
    assert response.status_code == 202, response.text


def test_the_noisiest_alert_groups_come_first(
    api: TestClient, context: AppContext, generic_key: str, viewer: dict[str, str], responder: dict[str, str]
) -> None:
    clock.set(T0 - timedelta(days=10))
    send(api, generic_key, {"summary": "long ago", "dedup_key": "old", "labels": {"alertname": "Ancient"}})
    clock.set(T0)
    disk = {"summary": "disk", "severity": "warning", "labels": {"alertname": "DiskFull", "instance": "db-1"}}
    for n in range(5):  # one alert, five notifications (each a real change)
        send(api, generic_key, {**disk, "dedup_key": "disk-db-1", "summary": f"disk {90 + n}%"})
    send(
        api,
        generic_key,
        {**disk, "dedup_key": "disk-db-2", "labels": {"alertname": "DiskFull", "instance": "db-2"}},
    )
    send(
        api,
        generic_key,
        {"summary": "cpu", "dedup_key": "cpu", "service": "api", "labels": {"alertname": "Cpu"}},
    )
    send(api, generic_key, {"summary": "cpu", "dedup_key": "cpu", "status": "resolved"})

    def report(**params: Any) -> list[tuple[Any, ...]]:
        response = api.get("/api/v1/alerts/noise", params=params, headers=viewer)
        assert response.status_code == 200, response.text
        return [
            (g["key"], g["occurrences"], g["alerts"], g["incidents"], g["unrouted"], g["open"])
            for g in response.json()["groups"]
        ]

    # Default: the last 7 days by type. The old alert is outside the period.
    assert report() == [("DiskFull", 6, 2, 0, 2, 2), ("Cpu", 1, 1, 0, 1, 0)]
    assert report(by="label:instance") == [
        ("db-1", 5, 1, 0, 1, 1),
        ("db-2", 1, 1, 0, 1, 1),
        (None, 1, 1, 0, 1, 0),
    ]
    assert report(by="service", limit=1) == [(None, 6, 2, 0, 2, 2)]
    # By the integration it came in through; a report from a person came through none.
    send(api, make_key(context, "generic", "nightly-cron"), {"summary": "backup late", "dedup_key": "b"})
    assert (
        api.post("/api/v1/reports/internal", json={"description": "slow"}, headers=responder).status_code
        == 202
    )

    def listed(integration: str) -> list[str]:
        response = api.get("/api/v1/alerts", params={"integration": integration}, headers=viewer)
        assert response.status_code == 200, response.text
        return [a["dedup_key"] for a in response.json()["items"]]

    assert listed("nightly-cron") == ["b"] and len(listed("scripts")) == 4
    assert api.get("/api/v1/alerts", params={"integration": "nope"}, headers=viewer).status_code == 422
    assert report(by="integration") == [
        ("scripts", 7, 3, 0, 3, 2),
        ("nightly-cron", 1, 1, 0, 1, 1),
        (None, 1, 1, 1, 0, 1),  # the example's internal-reports rule opened an incident for it
    ]
    assert [row[0] for row in report(since="30d")][:2] == ["DiskFull", "Ancient"]
    assert api.get("/api/v1/alerts/noise").status_code == 401


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"by": "colour"}, "by must be one of"),
        ({"by": "label:"}, "name the label"),
        ({"since": "0s"}, "from 1s to 366d"),
        ({"since": "400d"}, "from 1s to 366d"),
        ({"since": "soon"}, "since"),
        ({"limit": 0}, "limit"),
    ],
)
def test_bad_report_requests_are_refused(
    api: TestClient, viewer: dict[str, str], params: dict[str, Any], message: str
) -> None:
    response = api.get("/api/v1/alerts/noise", params=params, headers=viewer)
    assert response.status_code == 422, response.text
    assert message in response.text


def test_a_group_reads_as_its_rule_and_values() -> None:
    from warroom.alerts.service import group_label

    assert group_label('critical-monitoring|["search","DiskFull"]') == "critical-monitoring: search, DiskFull"
    assert (
        group_label('customer-reports|["customer-report",""]') == "customer-reports: customer-report, (none)"
    )
    assert group_label("long-rule|sha256:ab12") == "long-rule: sha256:ab12"
