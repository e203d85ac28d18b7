"""``warroom jobs list`` shows what a job came to under "outcome": a done job's result, not the note a handler
left while it waited (a heartbeat check's "pinged; next ping due at …"), which read as an error."""

from __future__ import annotations

from typer.testing import CliRunner

from warroom.cli.main import app as cli
from warroom.context import AppContext
from warroom.jobs.models import JobStatus
from warroom.jobs.service import enqueue


def test_a_done_jobs_result_is_its_outcome_not_an_error(context: AppContext, database_url: str) -> None:
    with context.db.write() as session:
        done = enqueue(session, kind="alerts.heartbeat_check", payload={"heartbeat": "nightly"})
        done.status = JobStatus.done
        done.last_error = "pinged; next ping due at 2026-12-08T03:00:00+00:00"
        done.result = {"heartbeat": "nightly", "missed": False}
        quiet = enqueue(session, kind="alerts.heartbeat_check", payload={"heartbeat": "weekly"})
        quiet.status = JobStatus.done
        dead = enqueue(session, kind="alerts.heartbeat_check", payload={"heartbeat": "gone"})
        dead.status = JobStatus.dead
        dead.last_error = "RuntimeError: boom"
    listed = CliRunner(env={"COLUMNS": "300"}).invoke(cli, ["jobs", "list", "--database-url", database_url])
    assert listed.exit_code == 0, listed.output
    assert "last error" not in listed.output
    assert "outcome" in listed.output
    assert "pinged; next ping due" not in listed.output
    assert "heartbeat=nightly, missed=false" in listed.output
    rows = {
        cells[0]: cells
        for line in listed.output.splitlines()
        if len(cells := [cell.strip() for cell in line.strip("│ ").split("│")]) > 1
    }
    assert rows[str(quiet.id)][-1] == "done", listed.output
    assert rows[str(dead.id)][-1] == "RuntimeError: boom", listed.output
