"""``oncall pages`` numbers a page's pass as its escalation row and the timeline do (a raise starts a new run
at pass 1), not by its raw cycle. Before, the pages table's "cycle" column said 2 where the escalation said
"pass 1"."""

from __future__ import annotations

from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from tests.conftest import cli_through_the_app
from tests.oncall.changes import change
from tests.oncall.test_paging import T0, open_incident, run_at
from warroom.cli.main import app as cli_app
from warroom.clock import clock
from warroom.context import AppContext
from warroom.incidents import service as incident_service
from warroom.jobs.worker import Worker
from warroom.oncall import paging


def raised_after_a_reopen(context: AppContext) -> int:
    """As in test_paging: a raise after a reopen starts a new run of the escalation (cycle 2, pass 1)."""
    clock.set(T0)
    worker = Worker(context, name="w1")
    incident_id = open_incident(context, severity="P2")
    run_at(worker, T0)
    with context.db.write() as session:
        incident_service.acknowledge(session, ref=incident_id, performer="carol")
    for status in ("resolved", "investigating"):
        change(context, incident_id, status=status, performer="tester")
    clock.set(T0 + timedelta(minutes=30))
    change(context, incident_id, severity="P0", performer="tester")
    run_at(worker, T0 + timedelta(minutes=30))
    return incident_id


def test_pages_carry_the_pass_of_their_run(context: AppContext) -> None:
    incident_id = raised_after_a_reopen(context)
    with context.db.read() as session:
        shown = paging.incident_paging(session, ref=str(incident_id))
    [escalation] = shown.escalations
    assert (escalation.cycle, escalation.pass_number) == (2, 1)
    passes = {(page.cycle, page.pass_number) for page in shown.pages}
    # The run before the raise started at a cycle the escalation no longer keeps: no number made up for it.
    assert passes == {(1, None), (2, 1)}, passes


@pytest.fixture
def cli(api: TestClient, tokens: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    return cli_through_the_app(api, tokens["responder"], monkeypatch, "warroom.cli.oncall")


def test_the_pages_table_shows_passes(context: AppContext, api: TestClient, cli: CliRunner) -> None:
    incident_id = raised_after_a_reopen(context)
    shown = cli.invoke(cli_app, ["oncall", "pages", f"INC-{incident_id}"], env={"COLUMNS": "250"})
    assert shown.exit_code == 0, shown.output
    lines = shown.output.splitlines()
    title = next(n for n, line in enumerate(lines) if line.strip() == "Pages")
    header = next(line for line in lines[title:] if "when" in line)
    columns = [cell.strip() for cell in header.replace("┃", "│").split("│")]
    assert "pass" in columns and "cycle" not in columns, header
    at = columns.index("pass")
    rows = [line for line in lines[title:] if "│ 2026-" in line]
    shown_passes = [[cell.strip() for cell in row.split("│")][at] for row in rows]
    assert set(shown_passes) == {"1", "earlier run"}, shown.output
