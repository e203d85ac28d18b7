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
from warroom import reload
from warroom.alerts import maintenance
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
        ({"services": ["nowhere"]}, "'nowhere' is not a service in this file"),
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


NIGHTLY = {
    "name": "nightly",
    "rrule": "FREQ=DAILY;BYHOUR=23;BYMINUTE=0",
    "time_zone": "Europe/Berlin",
    "duration": "2h",
    "reason": "nightly batch",
    "services": ["search"],
}


def with_schedules(context: AppContext, *schedules: dict[str, Any]) -> None:
    """The running org file with these maintenance schedules, as a reload would make it."""
    automation = context.org.automation.model_copy(
        update={"maintenance_schedules": [MaintenanceSchedule.model_validate(s) for s in schedules]}
    )
    context.org = context.org.model_copy(update={"automation": automation})


def waiting_occurrences(context: AppContext) -> list[str]:
    with context.db.read() as session:
        jobs = session.scalars(
            select(Job)
            .where(Job.kind == "alerts.maintenance_schedule", Job.status == JobStatus.pending)
            .order_by(Job.id)
        ).all()
        return [job.payload["starts_at"] for job in jobs]


def test_a_changed_rule_moves_the_chain_and_cancels_the_windows_it_no_longer_has(context: AppContext) -> None:
    """nightly runs at 23:00 Berlin (22:00 UTC in March); its window for tonight is created at once (less than
    a day ahead). The rule is changed to 21:00 and the file reloaded: tonight's 23:00 window, not started, is
    cancelled as by ``maintenance end``, and the chain goes on at 21:00 with no window at the old time."""
    with_schedules(context, NIGHTLY)
    clock.set(T0)
    worker = Worker(context, name="w1")
    with TestClient(create_app(context=context)):
        run_at(worker, T0)
    tonight = datetime(2026, 3, 2, 22, 0, tzinfo=UTC)
    assert windows(context) == [(tonight, tonight + timedelta(hours=2), "schedule nightly")]
    assert waiting_occurrences(context) == ["2026-03-03T22:00:00+00:00"]

    clock.set(T0 + timedelta(minutes=5))
    with_schedules(context, {**NIGHTLY, "rrule": "FREQ=DAILY;BYHOUR=21;BYMINUTE=0"})
    reload.start_recurring(context)
    reload.start_recurring(context)  # another process, or a restart: nothing more
    assert waiting_occurrences(context) == ["2026-03-02T20:00:00+00:00"]
    with context.db.read() as session:
        cancelled = session.scalars(select(MaintenanceWindow)).one()
        assert cancelled.ended_by == "org file: schedule nightly changed"
        assert cancelled.starts_at == cancelled.ends_at == T0 + timedelta(minutes=5)
        # The occurrence it stood for is still shown, as cancelled.
        assert (cancelled.planned_starts_at, cancelled.planned_ends_at) == (
            tonight,
            tonight + timedelta(hours=2),
        )
        assert maintenance.to_read(cancelled).state == "cancelled"
    for day in range(3):
        run_at(worker, T0 + timedelta(days=day, hours=1))
    starts = [start for start, end, _ in windows(context) if end > start]  # the cancelled one is not
    assert starts == [datetime(2026, 3, 2 + day, 20, 0, tzinfo=UTC) for day in range(3)]
    assert waiting_occurrences(context) == ["2026-03-05T20:00:00+00:00"]


def test_a_window_not_started_follows_what_its_schedule_covers_and_how_long_it_lasts(
    context: AppContext, generic_key: str, caplog: pytest.LogCaptureFixture
) -> None:
    """nightly's window for tonight (23:00 Berlin) exists at 11:00 UTC. The file changes its services to
    queue, its reason, and shortens it to 1h: the window, not started, takes all three, and its release
    moves to the new end. A running window keeps what it had."""
    with_schedules(context, NIGHTLY)
    clock.set(T0)
    worker = Worker(context, name="w1")
    with TestClient(create_app(context=context)) as api:
        run_at(worker, T0)
        tonight = datetime(2026, 3, 2, 22, 0, tzinfo=UTC)
        with_schedules(
            context, {**NIGHTLY, "services": ["queue"], "reason": "queue compaction", "duration": "1h"}
        )
        reload.start_recurring(context)
        with context.db.read() as session:
            window = session.scalars(select(MaintenanceWindow)).one()
            assert (window.services, window.reason, window.ends_at) == (
                ["queue"],
                "queue compaction",
                tonight + timedelta(hours=1),
            )
            release = session.scalars(select(Job).where(Job.kind == maintenance.RELEASE_KIND)).one()
            assert release.run_at == tonight + timedelta(hours=1)
        assert f"changed: {window.ref} (2026-03-02 22:00 UTC) follows it" in caplog.text
        # During it, queue alerts are held and search alerts are not.
        clock.set(tonight + timedelta(minutes=30))
        held = [
            api.post(
                f"/api/v1/alerts?key={generic_key}",
                json={"summary": "lag", "severity": "critical", "service": service, "dedup_key": service},
            ).json()["alerts"][0]["incident"]
            for service in ("queue", "search")
        ]
        assert held[0] is None and held[1] is not None, held
        # Once running, a change to the file leaves it as it is.
        with_schedules(context, {**NIGHTLY, "services": ["cache"]})
        reload.start_recurring(context)
        with context.db.read() as session:
            assert session.get(MaintenanceWindow, window.id).services == ["queue"]  # type: ignore[union-attr]


def test_a_changed_rule_takes_effect_before_the_next_old_occurrence(context: AppContext) -> None:
    """The chain waits for tomorrow's 23:00 window (today's exists); changed to 21:00, the next window is
    tomorrow's 21:00, not one more at 23:00 (the job that was waiting is cancelled)."""
    with_schedules(context, NIGHTLY)
    clock.set(T0)
    worker = Worker(context, name="w1")
    with TestClient(create_app(context=context)):
        run_at(worker, T0)
    clock.set(datetime(2026, 3, 2, 22, 30, tzinfo=UTC))  # tonight's window runs
    with_schedules(context, {**NIGHTLY, "rrule": "FREQ=DAILY;BYHOUR=21;BYMINUTE=0"})
    reload.start_recurring(context)
    run_at(worker, datetime(2026, 3, 2, 22, 30, tzinfo=UTC))
    run_at(worker, datetime(2026, 3, 3, 22, 30, tzinfo=UTC))
    # Tonight's running window is left alone; tomorrow's is at the new time.
    assert [start for start, _, _ in windows(context)] == [
        datetime(2026, 3, 2, 22, 0, tzinfo=UTC),
        datetime(2026, 3, 3, 20, 0, tzinfo=UTC),
        datetime(2026, 3, 4, 20, 0, tzinfo=UTC),
    ]


def test_a_job_of_an_old_rule_opens_no_window(context: AppContext) -> None:
    """A process whose reload hook has not run yet (or failed) runs the job of an occurrence the rule no
    longer has: no window at the old time, and the chain goes on from the new rule."""
    with_schedules(context, NIGHTLY)
    clock.set(datetime(2026, 3, 3, 10, 0, tzinfo=UTC))
    with TestClient(create_app(context=context)):
        pass
    with_schedules(context, {**NIGHTLY, "rrule": "FREQ=DAILY;BYHOUR=21;BYMINUTE=0"})
    run_at(Worker(context, name="w1"), datetime(2026, 3, 3, 10, 0, tzinfo=UTC))
    assert [start for start, _, _ in windows(context)] == [datetime(2026, 3, 3, 20, 0, tzinfo=UTC)]


def test_a_removed_schedule_stops_and_cancels_its_windows_not_started(context: AppContext) -> None:
    with_schedules(context, NIGHTLY, {**VACUUM, "rrule": "FREQ=DAILY;BYHOUR=1"})
    running = datetime(2026, 3, 2, 22, 30, tzinfo=UTC)  # tonight's nightly window runs; tomorrow's is created
    clock.set(running)
    worker = Worker(context, name="w1")
    with TestClient(create_app(context=context)):
        run_at(worker, running)
    tonight, tomorrow = datetime(2026, 3, 2, 22, 0, tzinfo=UTC), datetime(2026, 3, 3, 22, 0, tzinfo=UTC)
    assert [start for start, _, who in windows(context) if who == "schedule nightly"] == [tonight, tomorrow]
    with_schedules(context, {**VACUUM, "rrule": "FREQ=DAILY;BYHOUR=1"})
    reload.start_recurring(context)
    with context.db.read() as session:
        nightly = session.scalars(
            select(MaintenanceWindow)
            .where(MaintenanceWindow.created_by == "schedule nightly")
            .order_by(MaintenanceWindow.id)
        ).all()
        # The running one is left alone; the one not started is cancelled, and kept in the history.
        assert [(w.starts_at, w.ends_at, w.ended_by) for w in nightly] == [
            (tonight, tonight + timedelta(hours=2), None),
            (running, running, "org file: schedule nightly removed"),
        ]
    assert [occurrence for occurrence in waiting_occurrences(context)] == ["2026-03-04T00:00:00+00:00"]
    run_at(worker, datetime(2026, 3, 6, 0, 0, tzinfo=UTC))
    assert {who for _, _, who in windows(context)} == {"schedule nightly", "schedule sunday-vacuum"}
    assert len([who for _, _, who in windows(context) if who == "schedule nightly"]) == 2


def test_a_rule_changed_and_changed_back_gets_todays_window_again(
    context: AppContext, caplog: pytest.LogCaptureFixture
) -> None:
    """qa-nightly runs at 13:00 UTC; at 12:15 its window for today exists. Changed to 14:00, today's 13:00
    window is cancelled and a 14:00 one created; changed back to 13:00, the 14:00 one is cancelled and today's
    13:00, 45 minutes away, gets a window again: what a reload cancelled does not count as done. A window a
    person cancels stays cancelled, through reloads and restarts."""
    qa = {
        "name": "qa-nightly",
        "rrule": "FREQ=DAILY;BYHOUR=13;BYMINUTE=0",
        "time_zone": "UTC",
        "duration": "1h",
        "reason": "QA nightly",
        "services": ["search"],
    }
    now = datetime(2026, 3, 2, 12, 15, tzinfo=UTC)
    at13, at14 = datetime(2026, 3, 2, 13, 0, tzinfo=UTC), datetime(2026, 3, 2, 14, 0, tzinfo=UTC)
    with_schedules(context, qa)
    clock.set(now)
    worker = Worker(context, name="w1")
    with TestClient(create_app(context=context)):
        run_at(worker, now)
    assert [start for start, end, _ in windows(context) if end > start] == [at13]

    def live() -> list[datetime]:
        return [start for start, end, _ in windows(context) if end > start]  # cancelled ones are not

    with_schedules(context, {**qa, "rrule": "FREQ=DAILY;BYHOUR=14;BYMINUTE=0"})
    reload.start_recurring(context)
    run_at(worker, now)
    assert live() == [at14]
    with_schedules(context, qa)
    with caplog.at_level("WARNING"):
        reload.start_recurring(context)
    assert "its next window is created for 2026-03-02 13:00 UTC" in caplog.text
    reload.start_recurring(context)  # another process, or a restart: nothing more
    run_at(worker, now)
    assert live() == [at13]
    assert waiting_occurrences(context) == ["2026-03-03T13:00:00+00:00"]

    # A person calls today's off: it stays off, whatever reloads and restarts follow.
    with context.db.write() as session:
        today = session.scalars(select(MaintenanceWindow).where(MaintenanceWindow.starts_at == at13)).one()
        maintenance.end_window(session, org=context.org, ref=today.id, performer="alice")
    reload.start_recurring(context)
    with_schedules(context, {**qa, "rrule": "FREQ=DAILY;BYHOUR=14;BYMINUTE=0"})
    reload.start_recurring(context)
    run_at(worker, now)
    with_schedules(context, qa)
    reload.start_recurring(context)
    with TestClient(create_app(context=context)):
        run_at(worker, now)
    assert live() == []
    assert waiting_occurrences(context) == ["2026-03-03T13:00:00+00:00"]
    run_at(worker, datetime(2026, 3, 3, 12, 0, tzinfo=UTC))
    assert live() == [datetime(2026, 3, 3, 13, 0, tzinfo=UTC)]


def test_the_dry_run_passes_over_occurrences_a_person_called_off(
    context: AppContext, tokens: dict[str, str]
) -> None:
    """``config test-alert --server`` names the occurrence that would hold the alert: not one a person
    cancelled before it started, nor one ended early, but the next."""
    responder = {"Authorization": f"Bearer {tokens['responder']}"}
    probe = {"summary": "replication lag", "severity": "critical", "service": "database"}
    first, second, third = (datetime(2026, 3, day, 1, 0, tzinfo=UTC) for day in (8, 15, 22))
    clock.set(datetime(2026, 3, 7, 1, 0, tzinfo=UTC))  # a day before the first occurrence: its window exists
    with TestClient(create_app(context=context)) as api:
        worker = Worker(context, name="w1")
        run_at(worker, datetime(2026, 3, 7, 1, 0, tzinfo=UTC))

        def held_from() -> str | None:
            response = api.post("/api/v1/alerts/preview?source=generic", json=probe, headers=responder)
            assert response.status_code == 200, response.text
            start: str | None = response.json()[0]["maintenance_schedules"]["sunday-vacuum"]
            return start

        assert held_from() == first.isoformat().replace("+00:00", "Z")
        assert api.post("/api/v1/maintenance/MW-1/end", headers=responder).status_code == 200  # cancelled
        assert held_from() == second.isoformat().replace("+00:00", "Z")
        # The next one, ended early while it runs: the one after.
        run_at(worker, datetime(2026, 3, 14, 1, 0, tzinfo=UTC))
        clock.set(second + timedelta(minutes=30))
        assert held_from() == second.isoformat().replace("+00:00", "Z")  # running now
        assert api.post("/api/v1/maintenance/MW-2/end", headers=responder).status_code == 200
        assert held_from() == third.isoformat().replace("+00:00", "Z")
