"""When the source says an alert began (its startsAt or timestamp), kept beside when it reached us."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from tests.alerts.conftest import payload
from tests.conftest import machine_zone
from warroom.alerts.adapters import source_time
from warroom.alerts.models import Alert
from warroom.alerts.schemas import AlertDetail
from warroom.cli import alerts as alerts_cli
from warroom.cli.output import console
from warroom.clock import clock
from warroom.context import AppContext

NOW = datetime(2026, 11, 28, 11, 10, tzinfo=UTC)


def started(context: AppContext, dedup_key: str) -> datetime | None:
    with context.db.read() as session:
        alert = session.scalars(select(Alert).where(Alert.dedup_key == dedup_key)).one()
        return alert.source_started_at


def test_alertmanager_start_is_kept_and_shown(
    api: TestClient, context: AppContext, am_key: str, viewer: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The reference payload began firing at 11:02:04 and reached us at 11:10 (group_wait, a retry)."""
    clock.set(NOW)
    answer = api.post(
        f"/api/v1/alerts/alertmanager?key={am_key}", json=payload("alertmanager-0.25-firing.json")
    )
    assert answer.status_code == 202, answer.text
    assert started(context, "ff774b3b5a5e3c3e") == datetime(2026, 11, 28, 11, 2, 4, tzinfo=UTC)
    read = api.get("/api/v1/alerts/1", headers=viewer).json()
    assert read["started_at"].startswith("2026-11-28T11:02:04")
    assert read["first_seen_at"].startswith("2026-11-28T11:10")
    monkeypatch.setenv("COLUMNS", "120")  # the line on one line, zone and all
    with machine_zone(monkeypatch, "UTC"), console.capture() as captured:
        alerts_cli._show(AlertDetail.model_validate(read))
    assert "2026-11-28 11:02:04 UTC by its source (7m56s before it arrived)" in " ".join(
        captured.get().split()
    )


def test_untrustworthy_start_times_are_left_out(
    api: TestClient, context: AppContext, am_key: str, pd_key: str, generic_key: str
) -> None:
    """Alertmanager's zero time, a start an hour ahead of our clock, or no time at all: kept as not said. A
    start within the clock skew reads as now; a plain alert's time without an offset reads as UTC."""
    clock.set(NOW)
    firing = payload("alertmanager-0.25-firing.json")
    ahead = copy.deepcopy(firing)
    ahead["alerts"][0]["fingerprint"] = "ahead"
    ahead["alerts"][0]["startsAt"] = (NOW + timedelta(hours=1)).isoformat()
    zero = copy.deepcopy(firing)
    zero["alerts"][0]["fingerprint"] = "zero"
    zero["alerts"][0]["startsAt"] = "0001-01-01T00:00:00Z"
    skewed = copy.deepcopy(firing)
    skewed["alerts"][0]["fingerprint"] = "skewed"
    skewed["alerts"][0]["startsAt"] = (NOW + timedelta(minutes=2)).isoformat()
    for body in (ahead, zero, skewed):
        assert api.post(f"/api/v1/alerts/alertmanager?key={am_key}", json=body).status_code == 202
    trigger = {
        "routing_key": pd_key,
        "event_action": "trigger",
        "dedup_key": "pd-1",
        "payload": {
            "summary": "Disk full",
            "source": "db-1",
            "severity": "error",
            "timestamp": "2026-11-28T12:05:00.123+01:00",
        },
    }
    assert api.post("/v2/enqueue", json=trigger).status_code == 202
    plain = {"summary": "Queue backed up", "dedup_key": "plain", "timestamp": "2026-11-28T10:00:00"}
    assert api.post(f"/api/v1/alerts?key={generic_key}", json=plain).status_code == 202
    unix_zero = {"summary": "A counter, not a time", "dedup_key": "zero-ts", "timestamp": 0}
    assert api.post(f"/api/v1/alerts?key={generic_key}", json=unix_zero).status_code == 202
    untimed = {"summary": "No time given", "dedup_key": "untimed"}
    assert api.post(f"/api/v1/alerts?key={generic_key}", json=untimed).status_code == 202
    assert started(context, "ahead") is None
    assert started(context, "zero") is None
    assert started(context, "skewed") == NOW
    assert started(context, "pd-1") == datetime(2026, 11, 28, 11, 5, 0, 123000, tzinfo=UTC)
    assert started(context, "plain") == datetime(2026, 11, 28, 10, 0, tzinfo=UTC)
    assert started(context, "untimed") is None
    assert started(context, "zero-ts") is None


@pytest.mark.parametrize(
    "value",
    [
        "yesterday",
        "",
        "2026-13-01T00:00:00Z",
        "9999-12-31T23:59:59+14:00",
        "1970-01-01T00:00:00Z",
        "1999-12-31",
    ],
)
def test_unreadable_start_times_are_none(value: str) -> None:
    clock.set(NOW)
    assert source_time(value) is None
