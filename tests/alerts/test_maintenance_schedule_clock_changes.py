"""Recurring maintenance windows on the nights the clocks change: a rule's time that the clock skips runs as
much later as the clock jumped (02:30 runs at 03:30 summer time), one the clock passes twice runs the first
time, and both are occurrences for every part of the chain (creating, checking, starting, reloading)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from fastapi.testclient import TestClient
from sqlalchemy import select
from typer.testing import CliRunner

from tests.alerts.test_maintenance_schedules import waiting_occurrences, windows, with_schedules
from tests.alerts.test_source_ack import run_at
from tests.conftest import EXAMPLE_CONFIG
from warroom import reload
from warroom.alerts.config import MaintenanceSchedule
from warroom.app import create_app
from warroom.cli.main import app
from warroom.clock import clock
from warroom.context import AppContext
from warroom.jobs.models import Job
from warroom.jobs.worker import Worker

SCHEDULE: dict[str, Any] = {
    "name": "nightly",
    "duration": "1h",
    "reason": "nightly job",
    "services": ["database"],
}


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


# (zone, the night, the local hour the clock skips or repeats, the UTC hour of its first start)
SPRING = [
    ("Europe/Berlin", (2026, 3, 29), 2, 1),  # 02:00 CET jumps to 03:00 CEST: 02:MM runs at 03:MM (01:MM UTC)
    ("America/New_York", (2026, 3, 8), 2, 7),  # 02:00 EST jumps to 03:00 EDT: 02:MM runs at 03:MM (07:MM UTC)
]
AUTUMN = [
    ("Europe/Berlin", (2026, 10, 25), 2, 0),  # 03:00 CEST falls back to 02:00 CET: 02:MM CEST first
    ("America/New_York", (2026, 11, 1), 1, 5),  # 02:00 EDT falls back to 01:00 EST: 01:MM EDT first
]


@pytest.mark.parametrize("minute", [0, 30, 59])
@pytest.mark.parametrize(("zone", "night", "local_hour", "utc_hour"), SPRING + AUTUMN)
def test_an_occurrence_on_a_night_the_clock_changes_starts_once_and_is_an_occurrence(
    zone: str, night: tuple[int, int, int], local_hour: int, utc_hour: int, minute: int
) -> None:
    schedule = MaintenanceSchedule.model_validate(
        {**SCHEDULE, "rrule": f"FREQ=DAILY;BYHOUR={local_hour};BYMINUTE={minute}", "time_zone": zone}
    )
    start = utc(*night, utc_hour, minute)
    day_before = utc(*night) - timedelta(days=1)
    assert schedule.starts(day_before + timedelta(hours=12)) == start
    assert schedule.is_start(start)
    assert not schedule.is_start(start + timedelta(hours=1))
    # Just before it, at it, and during it; then the next day's, a day (give or take the change) later.
    assert schedule.current_or_next(start - timedelta(minutes=1)) == start
    assert schedule.starts(start - timedelta(seconds=1)) == start
    assert schedule.current_or_next(start + timedelta(minutes=30)) == start
    following = schedule.starts(start)
    assert following is not None and timedelta(hours=22) <= following - start <= timedelta(hours=25)
    assert schedule.is_start(following)
    assert schedule.starts(start - timedelta(days=1), inc=True) == schedule.starts(day_before, inc=True)


@pytest.mark.parametrize(("zone", "night", "local_hour", "utc_hour"), AUTUMN)
def test_no_start_is_found_before_the_moment_asked_about_in_the_repeated_hour(
    zone: str, night: tuple[int, int, int], local_hour: int, utc_hour: int
) -> None:
    """During the second pass of the repeated hour, the occurrence that ran in the first is over: the next is
    tomorrow's, not the one the wall clock shows again."""
    schedule = MaintenanceSchedule.model_validate(
        {
            **SCHEDULE,
            "rrule": f"FREQ=DAILY;BYHOUR={local_hour};BYMINUTE=30",
            "time_zone": zone,
            "duration": "10m",
        }
    )
    first = utc(*night, utc_hour, 30)
    second_pass = first + timedelta(hours=1)  # the same wall-clock time, an hour later
    assert schedule.starts(second_pass - timedelta(minutes=20)) == schedule.starts(first)
    assert schedule.current_or_next(second_pass - timedelta(minutes=20)) == schedule.starts(first)
    assert schedule.starts(first) is not None and schedule.starts(first) > second_pass  # type: ignore[operator]


def test_a_weekly_window_in_the_skipped_hour_is_created_and_holds_alerts(
    context: AppContext, generic_key: str
) -> None:
    """Sundays at 02:30 Berlin: on 29 March 2026 02:30 does not exist, and the window runs 03:30-04:30 CEST
    (01:30-02:30 UTC); an alert at 01:45 UTC is held, not paged."""
    with_schedules(
        context,
        {**SCHEDULE, "rrule": "FREQ=WEEKLY;BYDAY=SU;BYHOUR=2;BYMINUTE=30", "time_zone": "Europe/Berlin"},
    )
    start = utc(2026, 3, 27, 12, 0)
    clock.set(start)
    with TestClient(create_app(context=context)) as api:
        worker = Worker(context, name="w1")
        for hour in range(0, 38):
            run_at(worker, start + timedelta(hours=hour))
        run_at(worker, utc(2026, 3, 29, 1, 45))
        assert [(s, e) for s, e, _ in windows(context)] == [
            (utc(2026, 3, 29, 1, 30), utc(2026, 3, 29, 2, 30))
        ]
        with context.db.read() as session:
            results = [
                job.result
                for job in session.scalars(select(Job).where(Job.kind == "alerts.maintenance_schedule"))
                if job.result
            ]
        assert results and all(result.get("created") for result in results), results
        response = api.post(
            f"/api/v1/alerts?key={generic_key}",
            json={"summary": "db lag", "severity": "critical", "service": "database"},
        )
        assert response.json()["alerts"][0]["incident"] is None
    assert waiting_occurrences(context) == ["2026-04-05T00:30:00+00:00"]  # 02:30 CEST


NIGHTLY_NY = {**SCHEDULE, "rrule": "FREQ=DAILY;BYHOUR=2;BYMINUTE=30", "time_zone": "America/New_York"}


def test_starting_inside_the_skipped_hour_keeps_that_nights_occurrence(context: AppContext) -> None:
    """Started at 07:00 UTC on 8 March 2026 (03:00 EDT, the clock just jumped): the night's 02:30 runs at
    03:30 EDT (07:30 UTC), half an hour ahead; it is not passed over for the next night's."""
    with_schedules(context, NIGHTLY_NY)
    now = utc(2026, 3, 8, 7, 0)
    clock.set(now)
    with TestClient(create_app(context=context)):
        run_at(Worker(context, name="w1"), now)
    # Tonight's, and tomorrow's (a day ahead), 02:30 EDT.
    assert [s for s, _, _ in windows(context)] == [utc(2026, 3, 8, 7, 30), utc(2026, 3, 9, 6, 30)]
    assert waiting_occurrences(context) == ["2026-03-10T06:30:00+00:00"]


def test_a_reload_inside_the_skipped_hour_keeps_that_nights_occurrence(context: AppContext) -> None:
    """The rule is changed to 02:30 by a reload at 03:00 EDT on the night 02:30 does not exist: the chain
    waits for that night's occurrence (03:30 EDT), not the next night's."""
    with_schedules(context, {**NIGHTLY_NY, "rrule": "FREQ=DAILY;BYHOUR=12;BYMINUTE=0"})
    now = utc(2026, 3, 8, 7, 0)
    clock.set(now)
    with TestClient(create_app(context=context)):
        pass
    assert waiting_occurrences(context) == ["2026-03-08T16:00:00+00:00"]
    with_schedules(context, NIGHTLY_NY)
    reload.start_recurring(context)
    assert waiting_occurrences(context) == ["2026-03-08T07:30:00+00:00"]
    run_at(Worker(context, name="w1"), now)
    assert [s for s, e, _ in windows(context) if e > s] == [utc(2026, 3, 8, 7, 30), utc(2026, 3, 9, 6, 30)]


# --- what config check says of a rule: UNTIL, COUNT, no occurrence left ---------------------------------


def schedule(rrule: str, zone: str = "Europe/Berlin") -> MaintenanceSchedule:
    return MaintenanceSchedule.model_validate({**SCHEDULE, "rrule": rrule, "time_zone": zone})


def test_until_in_utc_is_read_as_rfc_5545_writes_it() -> None:
    """``Z`` is UTC: 2027-01-01 00:00 UTC is 01:00 in Berlin, so the midnight occurrence of 1 January (23:00
    UTC the day before) is the last. Without ``Z``, the rule's wall clock: midnight of 1 January included."""
    in_utc = schedule("FREQ=DAILY;UNTIL=20270101T000000Z")
    assert in_utc.starts(utc(2026, 12, 31, 0, 0)) == utc(2026, 12, 31, 23, 0)
    assert in_utc.starts(utc(2026, 12, 31, 23, 0)) is None
    # 00:00 UTC is 19:00 EST: 31 December's 20:00 EST (01:00 UTC) is after it.
    in_new_york = schedule("FREQ=DAILY;BYHOUR=20;UNTIL=20270101T000000Z", "America/New_York")
    assert in_new_york.starts(utc(2026, 12, 30, 12, 0)) == utc(2026, 12, 31, 1, 0)
    assert in_new_york.starts(utc(2026, 12, 31, 1, 0)) is None
    local = schedule("FREQ=DAILY;UNTIL=20270101T000000")
    assert local.starts(utc(2026, 12, 31, 0, 0)) == utc(2026, 12, 31, 23, 0)
    assert local.starts(utc(2026, 12, 31, 23, 0)) is None
    assert schedule("FREQ=DAILY;UNTIL=20270101").starts(utc(2026, 12, 31, 23, 0)) is None


@pytest.mark.parametrize("until", ["2027-01-01", "20270101T0000Z", "tomorrow", "20271301T000000Z"])
def test_an_until_that_cannot_be_read_says_how_to_write_one(until: str) -> None:
    with pytest.raises(ValueError, match="UNTIL=20270101T000000Z \\(UTC\\)") as caught:
        schedule(f"FREQ=DAILY;UNTIL={until}")
    assert "DTSTART" not in str(caught.value)


def test_config_check_warns_of_a_rule_that_creates_no_window_and_of_count(tmp_path: Path) -> None:
    now = utc(2026, 12, 6, 12, 0)
    assert schedule("FREQ=DAILY;UNTIL=20260301T000000").warning(now) == (
        "its rule has no occurrence left, the last at 2026-03-01 00:00 Europe/Berlin: it creates no window"
    )
    assert schedule("FREQ=WEEKLY;COUNT=3;BYDAY=SU").warning(now) == (
        "its rule has no occurrence left, the last at 2026-01-25 00:00 Europe/Berlin: it creates no window "
        "(COUNT=3 counts from Monday 2026-01-05, where schedules' rules start, not from now)"
    )
    assert schedule("FREQ=DAILY;COUNT=400").warning(now) == (
        "COUNT=400 counts from Monday 2026-01-05, where schedules' rules start, not from now: its last "
        "occurrence is 2027-02-08 00:00 Europe/Berlin"
    )
    assert schedule("FREQ=DAILY;UNTIL=20270101T000000Z").warning(now) is None
    assert schedule("FREQ=WEEKLY;BYDAY=SU;BYHOUR=2").warning(now) is None
    # The command prints them as warnings; the file passes.
    data = yaml.safe_load(EXAMPLE_CONFIG.read_text())
    data["automation"]["maintenance_schedules"] = [
        {**SCHEDULE, "name": "over", "rrule": "FREQ=DAILY;UNTIL=20260301T000000"},
        {**SCHEDULE, "name": "counted", "rrule": "FREQ=WEEKLY;COUNT=3;BYDAY=SU"},
        {
            **SCHEDULE,
            "name": "weekly",
            "rrule": "FREQ=WEEKLY;BYDAY=SU;BYHOUR=2",
            "time_zone": "Europe/Berlin",
        },
    ]
    path = tmp_path / "org.yaml"
    path.write_text(yaml.safe_dump(data))
    clock.set(now)
    result = CliRunner(env={"COLUMNS": "300"}).invoke(app, ["config", "check", str(path)])
    assert result.exit_code == 0, result.output
    assert "automation.maintenance_schedules[0] (over): its rule has no occurrence left" in result.output
    assert "automation.maintenance_schedules[1] (counted): its rule has no occurrence left" in result.output
    assert "(weekly)" not in result.output


def test_a_reload_warns_of_a_schedule_with_no_occurrence_left(context: AppContext) -> None:
    clock.set(utc(2026, 12, 6, 12, 0))
    with_schedules(context, {**SCHEDULE, "rrule": "FREQ=DAILY;UNTIL=20260301T000000", "time_zone": "UTC"})
    warnings = reload.reload_warnings(context, context.org)
    assert (
        "automation.maintenance_schedules[0] (nightly): its rule has no occurrence left, the last at "
        "2026-03-01 00:00 UTC: it creates no window" in warnings
    ), warnings
