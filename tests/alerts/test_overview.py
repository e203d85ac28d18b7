"""``GET /api/v1/alerts/overview`` and ``warroom alerts overview``: what is going on now, at a glance."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from fastapi.testclient import TestClient

from tests.alerts.test_source_ack import T0, generic
from warroom.clock import clock
from warroom.context import AppContext


def overview(api: TestClient, headers: dict[str, str], **params: Any) -> dict[str, Any]:
    response = api.get("/api/v1/alerts/overview", params=params, headers=headers)
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


def test_open_alerts_incidents_and_arrivals_at_a_glance(
    api: TestClient, context: AppContext, generic_key: str, responder: dict[str, str], viewer: dict[str, str]
) -> None:
    clock.set(T0)
    empty = overview(api, viewer)
    assert (empty["severities"], empty["incidents"], empty["incidents_open"]) == ([], [], 0)
    assert len(empty["arrivals"]) == 12 and not any(bucket["alerts"] for bucket in empty["arrivals"])

    # 10:00 the api's errors open INC-1 (P1); 10:20 an error on search (P2); 10:40 two unrouted infos, one of
    # which repeats, and the api's second alert; then the search error is snoozed.
    generic(api, generic_key, summary="api 5xx", dedup_key="5xx")
    clock.set(T0 + timedelta(minutes=20))
    generic(
        api,
        generic_key,
        summary="search slow",
        dedup_key="search",
        severity="error",
        service="search",
        labels={"alertname": "SearchSlow"},
    )
    clock.set(T0 + timedelta(minutes=40))
    for days in (14, 13):  # a repeat that says something new (an identical one is a retry, not counted)
        generic(
            api,
            generic_key,
            summary=f"cert expires in {days} days",
            dedup_key="cert",
            severity="info",
            labels={"alertname": "Cert"},
        )
    generic(
        api, generic_key, summary="backup", dedup_key="backup", severity="info", labels={"alertname": "Bak"}
    )
    second = generic(api, generic_key, summary="api 5xx eu", dedup_key="5xx-eu")
    assert second["incident"] == "INC-1"
    search = api.get("/api/v1/alerts", params={"search": "search slow"}, headers=viewer).json()["items"][0]
    snoozed = api.post(f"/api/v1/alerts/{search['id']}/snooze", json={"duration": "1h"}, headers=responder)
    assert snoozed.status_code == 200, snoozed.text
    clock.set(T0 + timedelta(minutes=50))

    shown = overview(api, viewer)
    assert shown["severities"] == [
        {"severity": "critical", "firing": 2, "acknowledged": 0},
        {"severity": "error", "firing": 0, "acknowledged": 1},
        {"severity": "info", "firing": 2, "acknowledged": 0},
    ]
    assert (shown["unrouted"], shown["snoozed"], shown["held"]) == (2, 1, 0)
    assert [(i["ref"], i["severity"], i["alerts_open"], i["acknowledged"]) for i in shown["incidents"]] == [
        ("INC-1", "P1", 2, False),
        ("INC-2", "P2", 1, True),  # its only alert is snoozed, which acknowledged it
    ]
    # The hour before 10:50 in 5-minute buckets: one alert at 10:00, one at 10:20, three at 10:40.
    buckets = [bucket["alerts"] for bucket in shown["arrivals"]]
    assert buckets == [0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 3, 0]
    assert shown["loudest"][0] == {"type": "HighErrorRate", "alerts": 2, "occurrences": 2}
    assert {"type": "Cert", "alerts": 1, "occurrences": 2} in shown["loudest"]

    # A longer period; bad input is refused and no token is no answer.
    assert sum(bucket["alerts"] for bucket in overview(api, viewer, since="1d")["arrivals"]) == 5
    assert api.get("/api/v1/alerts/overview", params={"since": "soon"}, headers=viewer).status_code == 422
    assert api.get("/api/v1/alerts/overview", params={"since": "400d"}, headers=viewer).status_code == 422
    assert api.get("/api/v1/alerts/overview").status_code == 401
