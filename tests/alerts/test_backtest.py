"""``warroom config backtest``: last week's stored alerts replayed through an org file's rules, beside the
file in use, with nothing written."""

from __future__ import annotations

import json
import re
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from typer.testing import CliRunner

from tests.conftest import EXAMPLE_CONFIG
from warroom.alerts import backtest
from warroom.alerts.models import Alert
from warroom.cli.main import app
from warroom.clock import clock
from warroom.context import AppContext
from warroom.incidents.models import Incident
from warroom.settings import Settings

MONDAY_MORNING = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)  # 10:00 in Berlin: business hours
MONDAY_NIGHT = datetime(2026, 11, 30, 23, 0, tzinfo=UTC)  # midnight in Berlin


def send(api: TestClient, key: str, **alert: Any) -> None:
    body = {"severity": "critical", "service": "api", **alert}
    answer = api.post(f"/api/v1/alerts?key={key}", json=body)
    assert answer.status_code == 202, answer.text


def store_a_week(api: TestClient, key: str) -> None:
    """Two errors by day (one group), a disk at night, a low-urgency blip at night, an alert no rule takes."""
    clock.set(MONDAY_MORNING)
    send(api, key, summary="api 5xx", dedup_key="5xx-a", labels={"alertname": "HighErrorRate"})
    clock.advance(timedelta(minutes=5))
    send(api, key, summary="api 5xx", dedup_key="5xx-b", labels={"alertname": "HighErrorRate"})
    clock.set(MONDAY_NIGHT)
    send(api, key, summary="disk full", dedup_key="disk", labels={"alertname": "DiskFull"})
    low = {"summary": "cert", "severity": "warning", "dedup_key": "cert", "labels": {"urgency": "low"}}
    send(api, key, **low)
    clock.advance(timedelta(minutes=10))
    send(api, key, **low, status="resolved")  # before business hours: its incident never opens
    send(
        api,
        key,
        summary="backup took long",
        severity="info",
        dedup_key="backup",
        labels={"alertname": "Slow"},
    )


def guarded_file(tmp_path: Path) -> Path:
    """The example with a storm guard of one incident per policy a day: the night's page goes."""
    text = EXAMPLE_CONFIG.read_text().replace(
        "  dependency_window: 30m", "  dependency_window: 30m\n  storm_guard: {incidents: 1, within: 1d}", 1
    )
    candidate = tmp_path / "guarded.yaml"
    candidate.write_text(text)
    return candidate


def test_the_replay_matches_what_automation_did(
    api: TestClient, context: AppContext, generic_key: str
) -> None:
    store_a_week(api, generic_key)
    until = MONDAY_MORNING + timedelta(days=7)
    with context.db.read() as session:
        opened = session.scalar(select(func.count()).select_from(Incident))
        stored = session.scalar(select(func.count()).select_from(Alert))
        replayed = backtest.replay(session, context.org, since=until - timedelta(days=7), until=until)
    assert (replayed.alerts, stored) == (5, 5)
    assert replayed.incidents == opened == 2  # the same as automation opened: one per group
    assert (replayed.pages, replayed.pages_outside_hours) == (2, 1)  # the disk paged at midnight
    assert (replayed.held_back, replayed.unrouted, replayed.storm_guarded) == (1, 1, 0)
    by_rule = {rule.rule: rule for rule in replayed.rules}
    critical = by_rule["critical-monitoring"]
    assert (critical.alerts, critical.incidents, critical.pages, critical.pages_outside_hours) == (3, 2, 2, 1)
    assert (by_rule["low-urgency"].alerts, by_rule["low-urgency"].incidents) == (1, 0)
    # A span before any of them replays nothing.
    with context.db.read() as session:
        empty = backtest.replay(session, context.org, since=until - timedelta(days=30), until=MONDAY_MORNING)
    assert (empty.alerts, empty.incidents) == (0, 0)


def test_the_command_compares_a_file_with_the_one_in_use(
    api: TestClient, context: AppContext, settings: Settings, generic_key: str, tmp_path: Path
) -> None:
    store_a_week(api, generic_key)
    clock.set(MONDAY_MORNING + timedelta(days=2))
    candidate = guarded_file(tmp_path)
    with context.db.read() as session:
        alerts_before = session.scalar(select(func.count()).select_from(Alert))
    common = ["--config", str(EXAMPLE_CONFIG), "--database-url", settings.resolved_database_url]
    runner = CliRunner()

    shown = runner.invoke(app, ["config", "backtest", str(candidate), *common], env={"COLUMNS": "200"})
    assert shown.exit_code == 0, shown.output
    assert "5 alerts first fired from" in shown.output
    pages = next(line for line in shown.output.splitlines() if line.strip("│ ").startswith("pages "))
    assert "2" in pages and "1 (-1)" in pages
    assert "held by the storm guard" in shown.output
    # Per rule, beside the rule of the same name now: critical-monitoring opens one incident fewer.
    critical = next(line for line in shown.output.splitlines() if "critical-monitoring" in line)
    assert [cell.strip() for cell in critical.strip("│").split("│")][1:4] == ["3", "1 (-1)", "1 (-1)"]
    # Rules that took no alert in either file are counted, not listed one empty row each.
    assert "payments-down" not in shown.output
    assert re.search(r"\(\d+ other rules took no alert\)", shown.output), shown.output
    # When the pager would have gone off, by day in Berlin: the night's page (midnight) went on Tuesday.
    tuesday = next(line for line in shown.output.splitlines() if "2026-12-01" in line)
    assert [cell.strip() for cell in tuesday.strip("│").split("│")][1:4] == ["1", "████████████", "0"]

    as_json = runner.invoke(app, ["config", "backtest", str(candidate), "--since", "3d", "--json", *common])
    assert as_json.exit_code == 0, as_json.output
    result = json.loads(as_json.output)
    assert (result["current"]["pages"], result["file"]["pages"]) == (2, 1)
    assert (result["current"]["storm_guarded"], result["file"]["storm_guarded"]) == (0, 1)
    assert result["current"]["pages_by_day"] == {"2026-11-30": 1, "2026-12-01": 1}
    assert result["file"]["pages_by_day"] == {"2026-11-30": 1}
    with context.db.read() as session:
        assert session.scalar(select(func.count()).select_from(Alert)) == alerts_before  # nothing written


@pytest.mark.parametrize(
    ("args", "problem"),
    [
        (["--since", "soon"], "--since"),
        (["--since", "30m"], "from 1h to 366d"),
        (["--since", "400d"], "from 1h to 366d"),
    ],
)
def test_bad_input_is_refused(args: list[str], problem: str, tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["config", "backtest", str(EXAMPLE_CONFIG), *args])
    assert result.exit_code == 2 and problem in result.output


def test_a_file_with_problems_is_refused(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text("automation:\n  storm_guard: {incidents: 0, within: 1m}\n")
    result = CliRunner().invoke(
        app, ["config", "backtest", str(broken), "--database-url", f"sqlite:///{tmp_path / 'x.db'}"]
    )
    assert result.exit_code == 2 and "problem" in result.output


def test_resolve_after_lets_the_group_s_next_alert_open_another_incident(
    api: TestClient, context: AppContext, generic_key: str
) -> None:
    """The api errors resolve at 10:05 and come back at 10:50, within the group window: they join the incident
    in monitoring, unless resolve_after (30m) resolved it at 10:35, when they open (and page) another."""
    clock.set(MONDAY_MORNING)
    send(api, generic_key, summary="api 5xx", dedup_key="5xx", labels={"alertname": "HighErrorRate"})
    clock.advance(timedelta(minutes=5))
    send(
        api,
        generic_key,
        summary="api 5xx",
        dedup_key="5xx",
        labels={"alertname": "HighErrorRate"},
        status="resolved",
    )
    clock.advance(timedelta(minutes=45))
    send(api, generic_key, summary="api 5xx", dedup_key="5xx", labels={"alertname": "HighErrorRate"})
    until = MONDAY_MORNING + timedelta(days=1)
    base = context.org
    quick = base.model_copy(
        update={"automation": base.automation.model_copy(update={"resolve_after": timedelta(minutes=30)})}
    )
    patient = quick.model_copy(
        update={"automation": quick.automation.model_copy(update={"resolve_after": timedelta(hours=1)})}
    )
    with context.db.read() as session:
        as_is = backtest.replay(session, base, since=MONDAY_MORNING, until=until)
        resolving = backtest.replay(session, quick, since=MONDAY_MORNING, until=until)
        waiting = backtest.replay(session, patient, since=MONDAY_MORNING, until=until)
    assert (as_is.alerts, as_is.incidents, as_is.pages) == (2, 1, 1)
    assert (resolving.incidents, resolving.pages) == (2, 2)
    assert waiting.incidents == 1  # an hour's wait: still in monitoring at 10:50


def test_an_unrouted_alert_that_got_worse_replays_as_automation_routed_it(
    api: TestClient, context: AppContext, generic_key: str
) -> None:
    """A warning no rule takes, sent again as critical under its dedup key: automation routes it then (the
    critical rule opens an incident and pages), and the replay, which reads the severity an alert has now,
    counts that incident too. One that stays a warning stays unrouted in both."""
    clock.set(MONDAY_MORNING)
    disk = {"summary": "disk 85% on db-9", "service": "database", "labels": {"alertname": "DiskFull"}}
    send(api, generic_key, **disk, severity="warning", dedup_key="disk-db9")
    send(api, generic_key, **disk, severity="warning", dedup_key="disk-db8")
    clock.advance(timedelta(minutes=20))
    send(
        api, generic_key, **{**disk, "summary": "disk 99% on db-9"}, severity="critical", dedup_key="disk-db9"
    )
    until = MONDAY_MORNING + timedelta(days=1)
    with context.db.read() as session:
        opened = session.scalar(select(func.count()).select_from(Incident))
        replayed = backtest.replay(session, context.org, since=MONDAY_MORNING, until=until)
    assert replayed.incidents == opened == 1
    assert (replayed.alerts, replayed.pages, replayed.unrouted) == (2, 1, 1)


def test_a_database_that_is_not_there_is_named_not_made(tmp_path: Path) -> None:
    """The backtest says it changes nothing: a mistyped URL must not leave a new, empty database behind
    (and an older one must not be migrated by it)."""
    runner = CliRunner(env={"COLUMNS": "200"})

    def backtest_on(database_url: str) -> Any:
        config = str(EXAMPLE_CONFIG)
        return runner.invoke(
            app, ["config", "backtest", config, "--config", config, "--database-url", database_url]
        )

    missing = tmp_path / "typo" / "warroom.db"
    result = backtest_on(f"sqlite:///{missing}")
    assert result.exit_code == 1 and "no database at" in result.output
    assert not missing.parent.exists()
    garbage = backtest_on("garbage")
    assert garbage.exit_code == 1 and "is not one" in garbage.output
    unreachable = backtest_on("postgresql+psycopg://x@127.0.0.1:1/x")
    assert unreachable.exit_code == 1 and "cannot use the database" in unreachable.output
    empty = tmp_path / "empty.db"
    empty.touch()  # there, but never upgraded
    behind = backtest_on(f"sqlite:///{empty}")
    assert behind.exit_code == 1 and "run warroom db upgrade first" in behind.output
    with sqlite3.connect(empty) as connection:  # not migrated: no tables
        assert connection.execute("SELECT count(*) FROM sqlite_master").fetchone() == (0,)


def test_the_comparison_needs_the_org_file_in_use(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Beside no org file every incident would look new: refused, not compared with an empty file."""
    monkeypatch.delenv("WARROOM_CONFIG", raising=False)
    result = CliRunner(env={"COLUMNS": "200"}).invoke(
        app, ["config", "backtest", str(EXAMPLE_CONFIG), "--database-url", f"sqlite:///{tmp_path / 'x.db'}"]
    )
    assert result.exit_code == 2 and "no org file in use to compare with" in result.output
