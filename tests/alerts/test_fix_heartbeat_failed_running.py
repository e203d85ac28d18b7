"""A run started after a failed one: the heartbeat stays ``failed`` (its failure alert fires until a run
succeeds), and ``warroom heartbeats`` says a run is going on; the run's success makes it ``ok``."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from fastapi.testclient import TestClient
from typer.testing import CliRunner

from tests.alerts.conftest import make_key
from tests.alerts.test_cli_output import cli_through_app  # noqa: F401 (a fixture)
from warroom.cli.main import app
from warroom.clock import clock
from warroom.context import AppContext

T0 = datetime(2026, 3, 2, 3, 0, tzinfo=UTC)
BACKUP = "/api/v1/heartbeats/nightly-backup"


def test_a_run_after_a_failure_shows_failed_and_running(
    api: TestClient,
    context: AppContext,
    viewer: dict[str, str],
    cli_through_app: CliRunner,  # noqa: F811
) -> None:
    key = make_key(context, "heartbeat", "cron")

    def listed() -> dict[str, object]:
        [beat] = [
            h for h in api.get("/api/v1/heartbeats", headers=viewer).json() if h["name"] == "nightly-backup"
        ]
        return beat  # type: ignore[no-any-return]

    def shown() -> str:
        result = cli_through_app.invoke(app, ["heartbeats"], env={"COLUMNS": "250"})
        assert result.exit_code == 0, result.output
        [line] = [line for line in result.stdout.splitlines() if "nightly-backup" in line]
        return " ".join(line.split())

    clock.set(T0)
    assert api.post(f"{BACKUP}/start?key={key}").status_code == 200
    assert listed()["state"] == "running"
    assert " running " in f" {shown()} " and "running since" not in shown()
    assert api.post(f"{BACKUP}/fail?key={key}", content=b"disk full").status_code == 200
    assert listed()["state"] == "failed"

    clock.set(T0 + timedelta(days=1))
    assert api.post(f"{BACKUP}/start?key={key}").status_code == 200
    beat = listed()
    assert beat["state"] == "failed" and beat["started_at"] is not None
    line = shown()
    assert " failed " in f" {line} " and "running since" in line, line

    clock.set(T0 + timedelta(days=1, minutes=40))
    assert api.post(f"{BACKUP}/0?key={key}").status_code == 200
    beat = listed()
    assert beat["state"] == "ok" and beat["started_at"] is None and beat["last_run"] == "40m"
