"""Maintenance schedule rules that never move on, can never occur or that dateutil cannot expand are refused
where the file says them, and no search for a rule's occurrences runs without end."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from tests.conftest import EXAMPLE_CONFIG
from warroom.alerts.config import MaintenanceSchedule, schedule_rule
from warroom.cli.main import app
from warroom.clock import clock
from warroom.orgconfig import ConfigError, parse_org_config

SCHEDULE = {
    "name": "tt",
    "reason": "r",
    "services": ["auth"],
    "time_zone": "UTC",
    "duration": "1h",
}


def within(seconds: float, call: Any) -> Any:
    """``call()``'s result or exception; fails if it runs longer than ``seconds`` (it would run on, alone)."""
    outcome: list[Any] = []

    def run() -> None:
        try:
            outcome.append(("value", call()))
        except Exception as exc:  # handed to the test
            outcome.append(("error", exc))

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    assert outcome, f"still running after {seconds}s"
    kind, value = outcome[0]
    if kind == "error":
        raise value
    return value


def problems_of(rrule: str) -> list[str]:
    data = yaml.safe_load(EXAMPLE_CONFIG.read_text())
    data["automation"]["maintenance_schedules"] = [{**SCHEDULE, "rrule": rrule}]
    with pytest.raises(ConfigError) as caught:
        within(60, lambda: parse_org_config(yaml.safe_dump(data), "org.yaml"))
    return [str(line) for line in caught.value.problems]


@pytest.mark.parametrize(
    ("rrule", "problem"),
    [
        ("FREQ=DAILY;INTERVAL=0", "INTERVAL=0: INTERVAL must be a whole number, 1 or more"),
        ("FREQ=DAILY;INTERVAL=-1", "INTERVAL=-1: INTERVAL must be a whole number, 1 or more"),
        ("FREQ=MONTHLY;BYMONTHDAY=31;BYMONTH=2", "the rule has no occurrences within 100 years"),
        ("FREQ=DAILY;BYSETPOS=5", "the rule has no occurrences within 100 years"),
    ],
)
def test_a_rule_that_never_moves_on_or_never_occurs_is_refused(rrule: str, problem: str) -> None:
    problems = problems_of(rrule)
    assert any(
        "automation.maintenance_schedules[0].rrule (line " in line and problem in line for line in problems
    ), problems


def test_config_check_says_where_a_rule_never_moves_on(tmp_path: Path) -> None:
    data = yaml.safe_load(EXAMPLE_CONFIG.read_text())
    data["automation"]["maintenance_schedules"] = [{**SCHEDULE, "rrule": "FREQ=DAILY;INTERVAL=-1"}]
    path = tmp_path / "org.yaml"
    path.write_text(yaml.safe_dump(data))
    clock.set(datetime(2026, 12, 7, 12, 0, tzinfo=UTC))
    result = within(60, lambda: CliRunner(env={"COLUMNS": "300"}).invoke(app, ["config", "check", str(path)]))
    assert result.exit_code != 0, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output
    assert "INTERVAL=-1: INTERVAL must be a whole number" in result.output


def test_searches_for_occurrences_end_at_the_horizon() -> None:
    # Had such a rule got past validation, looking for its next occurrence ends (dateutil alone looks until
    # the year 9999: minutes).
    rule = schedule_rule("FREQ=DAILY;BYSETPOS=5", "UTC")
    assert within(60, lambda: rule.after(datetime(2026, 12, 7))) is None
    schedule = MaintenanceSchedule.model_construct(
        **{**SCHEDULE, "duration": timedelta(hours=1)}, rrule="FREQ=MONTHLY;BYMONTHDAY=31;BYMONTH=2"
    )
    assert within(60, lambda: schedule.current_or_next(datetime(2026, 12, 7, tzinfo=UTC))) is None
    # One that never moves on (INTERVAL=0) is not searched at all.
    looping = MaintenanceSchedule.model_construct(
        **{**SCHEDULE, "duration": timedelta(hours=1)}, rrule="FREQ=DAILY;INTERVAL=0"
    )
    with pytest.raises(ValueError, match="INTERVAL must be 1 or more"):
        within(60, lambda: looping.current_or_next(datetime(2026, 12, 7, tzinfo=UTC)))


def test_rare_rules_still_work() -> None:
    # The 29th of February on a Monday: next in 2044.
    schedule = MaintenanceSchedule.model_validate(
        {**SCHEDULE, "rrule": "FREQ=MONTHLY;BYMONTH=2;BYMONTHDAY=29;BYDAY=MO"}
    )
    now = datetime(2026, 12, 7, tzinfo=UTC)
    assert schedule.current_or_next(now) == datetime(2044, 2, 29, tzinfo=UTC)
    assert schedule.starts(datetime(2044, 2, 29, tzinfo=UTC)) == datetime(2072, 2, 29, tzinfo=UTC)
    assert schedule.is_start(datetime(2044, 2, 29, tzinfo=UTC))
