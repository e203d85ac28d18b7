"""A maintenance window a person starts cannot start in the past: it would claim alerts that arrived before it
existed. A minute's slack allows for clocks that differ."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from fastapi.testclient import TestClient

from tests.alerts.test_maintenance import start_window, windows_and_jobs
from warroom.clock import clock
from warroom.context import AppContext

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)


def test_a_window_starting_in_the_past_is_refused(
    api: TestClient, context: AppContext, responder: dict[str, str]
) -> None:
    clock.set(NOW)
    before = windows_and_jobs(context)
    response = api.post(
        "/api/v1/maintenance",
        json={
            "reason": "frontend rollout",
            "services": ["api"],
            "starts_at": "2026-12-01T10:00:00Z",
            "ends_at": "2026-12-07T13:00:00Z",
        },
        headers=responder,
    )
    assert response.status_code == 422, response.text
    assert "starts_at 2026-12-01 10:00 UTC is in the past" in response.text, response.text
    assert windows_and_jobs(context) == before


def test_a_start_a_few_seconds_ago_is_a_clock_difference(
    api: TestClient, context: AppContext, responder: dict[str, str]
) -> None:
    clock.set(NOW)
    window = start_window(
        api, responder, services=["api"], starts_at=(NOW - timedelta(seconds=30)).isoformat(), duration="1h"
    )
    assert window["state"] == "active"
