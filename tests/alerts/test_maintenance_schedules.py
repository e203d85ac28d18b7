"""Recurring maintenance windows (``automation.maintenance_schedules``): each occurrence's window is created a
day ahead, in the schedule's time zone (daylight saving time included), and holds alerts like any window."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import yaml
from fastapi.testclient import TestClient
from sqlalchemy import select

from tests.alerts.test_source_ack import run_at
from tests.conftest import EXAMPLE_CONFIG
from warroom.alerts.config import AutomationConfig, MaintenanceSchedule
from warroom.alerts.models import Alert, MaintenanceWindow
from warroom.app import create_app
from warroom.clock import clock
from warroom.context import AppContext
from warroom.jobs.models import Job, JobStatus
from warroom.jobs.worker import Worker
from warroom.orgconfig import ConfigError, OrgConfig, load_org_config, parse_org_config

# Monday 2 March 2026, 10:00 UTC. Berlin is on CET (UTC+1) until Sunday 29 March, 02:00, then CEST (UTC+2).
T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
VACUUM = {
    "name": "sunday-vacuum",
    "rrule": "FREQ=WEEKLY;BYDAY=SU;BYHOUR=2",
    "time_zone": "Europe/Berlin",
    "duration": "2h",
    "reason": "Weekly VACUUM FULL",
    "services": ["database"],
}


@pytest.fixture
def org() -> OrgConfig:
    base = load_org_config(EXAMPLE_CONFIG)
    automation = AutomationConfig.model_validate(
        {**base.automation.model_dump(), "maintenance_schedules": [VACUUM]}
    )
    return base.model_copy(update={"automation": automation})


def windows(context: AppContext) -> list[tuple[datetime, datetime, str]]:
    with context.db.read() as session:
        rows = session.scalars(select(MaintenanceWindow).order_by(MaintenanceWindow.starts_at))
        return [(w.starts_at, w.ends_at, w.created_by) for w in rows]


def test_occurrence_starts_follow_the_local_wall_clock() -> None:
    schedule = MaintenanceSchedule.model_validate(VACUUM)
    assert schedule.starts(T0) == datetime(2026, 3, 8, 1, 0, tzinfo=UTC)  # 02:00 CET
    assert schedule.starts(datetime(2026, 4, 1, tzinfo=UTC)) == datetime(2026, 4, 5, 0, 0, tzinfo=UTC)  # CEST
    # In the middle of an occurrence, the current one; else the next.
    during = datetime(2026, 3, 8, 2, 30, tzinfo=UTC)
    assert schedule.current_or_next(during) == datetime(2026, 3, 8, 1, 0, tzinfo=UTC)
    assert schedule.current_or_next(datetime(2026, 3, 8, 3, 0, tzinfo=UTC)) == datetime(
        2026, 3, 15, 1, 0, tzinfo=UTC
    )


def test_each_occurrence_gets_a_window_a_day_ahead(
    context: AppContext, generic_key: str, tokens: dict[str, str]
) -> None:
    clock.set(T0)
    responder = {"Authorization": f"Bearer {tokens['responder']}"}
    with TestClient(create_app(context=context)) as api:
        worker = Worker(context, name="w1")
        run_at(worker, T0)
        assert windows(context) == []  # the first occurrence is six days away
        # A day before Sunday 8 March 02:00 CET, its window appears (and can be seen and cancelled).
        run_at(worker, datetime(2026, 3, 7, 1, 0, tzinfo=UTC))
        first = (
            datetime(2026, 3, 8, 1, 0, tzinfo=UTC),
            datetime(2026, 3, 8, 3, 0, tzinfo=UTC),
            "schedule sunday-vacuum",
        )
        assert windows(context) == [first]
        listed = api.get("/api/v1/maintenance", headers=responder).json()
        assert [(w["state"], w["reason"], w["services"]) for w in listed] == [
            ("scheduled", "Weekly VACUUM FULL", ["database"])
        ]
        # During it, database alerts are held.
        clock.set(datetime(2026, 3, 8, 1, 30, tzinfo=UTC))
        response = api.post(
            f"/api/v1/alerts?key={generic_key}",
            json={"summary": "replication lag", "severity": "critical", "service": "database"},
        )
        assert response.json()["alerts"][0]["incident"] is None
        # Weeks later, one window per occurrence, across the change to summer time.
        for day in range(9, 36):
            run_at(worker, datetime(2026, 3, 1, 1, 0, tzinfo=UTC) + timedelta(days=day))
        starts = [start for start, _, _ in windows(context)]
        assert starts == [
            datetime(2026, 3, 8, 1, 0, tzinfo=UTC),
            datetime(2026, 3, 15, 1, 0, tzinfo=UTC),
            datetime(2026, 3, 22, 1, 0, tzinfo=UTC),
            datetime(2026, 3, 29, 1, 0, tzinfo=UTC),  # 02:00 does not exist that night: 03:00 CEST
            datetime(2026, 4, 5, 0, 0, tzinfo=UTC),  # 02:00 CEST
        ]
        with context.db.read() as session:
            pending = session.scalars(
                select(Job).where(Job.kind == "alerts.maintenance_schedule", Job.status == JobStatus.pending)
            ).all()
        assert [job.payload["starts_at"] for job in pending] == ["2026-04-12T00:00:00+00:00"]
    # A restart neither duplicates the chain nor the windows.
    with TestClient(create_app(context=context)):
        pass
    run_at(Worker(context, name="w2"), datetime(2026, 4, 4, 2, 0, tzinfo=UTC))
    assert len(windows(context)) == 5
    # Occurrences missed while nothing ran (the clock jumps a month) are not created after the fact.
    run_at(Worker(context, name="w3"), datetime(2026, 5, 3, 0, 30, tzinfo=UTC))
    assert [start for start, _, _ in windows(context)][-1] == datetime(2026, 5, 3, 0, 0, tzinfo=UTC)


def test_starting_during_an_occurrence_opens_its_window_at_once(context: AppContext) -> None:
    clock.set(datetime(2026, 3, 8, 2, 0, tzinfo=UTC))  # 03:00 CET, an hour into the occurrence
    with TestClient(create_app(context=context)):
        run_at(Worker(context, name="w1"), datetime(2026, 3, 8, 2, 0, tzinfo=UTC))
    assert windows(context)[0][:2] == (
        datetime(2026, 3, 8, 1, 0, tzinfo=UTC),
        datetime(2026, 3, 8, 3, 0, tzinfo=UTC),
    )


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"rrule": "FREQ=HOURLY"}, "FREQ must be one of"),
        ({"rrule": "FREQ=WEEKLY;BYDAY=XX"}, "not an RRULE"),
        ({"time_zone": "Mars/Olympus"}, "unknown time zone"),
        ({"duration": "8d"}, "between 1m and 7d"),
        ({"services": [], "labels": {}}, "services, labels or match conditions"),
        ({"match": {"labels_regex": {"host": "["}}}, "bad regex"),
        ({"services": ["nowhere"]}, "are not services"),
    ],
)
def test_schedule_config_is_checked(change: dict[str, Any], problem: str) -> None:
    data = yaml.safe_load(EXAMPLE_CONFIG.read_text())
    data["automation"]["maintenance_schedules"] = [{**VACUUM, **change}]
    with pytest.raises(ConfigError) as caught:
        parse_org_config(yaml.safe_dump(data), "org.yaml")
    assert any(problem in str(line) for line in caught.value.problems), caught.value.problems


def test_a_schedule_gives_each_window_its_match_conditions(context: AppContext, am_key: str) -> None:
    rebuild = MaintenanceSchedule.model_validate(
        {
            **VACUUM,
            "name": "replica-rebuild",
            "services": [],
            "match": {"source": ["alertmanager"], "labels_regex": {"instance": "replica-[0-9]+"}},
        }
    )
    automation = context.org.automation.model_copy(update={"maintenance_schedules": [rebuild]})
    context.org = context.org.model_copy(update={"automation": automation})
    during = datetime(2026, 3, 8, 1, 30, tzinfo=UTC)
    clock.set(during)
    with TestClient(create_app(context=context)) as api:
        run_at(Worker(context, name="w1"), during)

        def fire(instance: str) -> Any:
            alert = {"labels": {"alertname": f"Lag-{instance}", "instance": instance, "severity": "critical"}}
            body = {"version": "4", "status": "firing", "alerts": [{"status": "firing", **alert}]}
            response = api.post(f"/api/v1/alerts/alertmanager?key={am_key}", json=body)
            assert response.status_code == 202, response.text
            return response.json()["alerts"][0]["id"]

        held, routed = fire("replica-2"), fire("primary")
    with context.db.read() as session:
        window = session.scalars(select(MaintenanceWindow)).one()
        assert window.services == [] and window.conditions == rebuild.match.model_dump(exclude_defaults=True)
        assert session.get(Alert, held).maintenance_window_id == window.id  # type: ignore[union-attr]
        assert session.get(Alert, routed).maintenance_window_id is None  # type: ignore[union-attr]
