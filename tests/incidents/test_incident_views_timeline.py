"""The CLI shows what was told to whom: an update's message on the timeline, ``incident updates`` for the
communications log, and timeline times that keep their seconds where the terminal is narrow."""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from tests.conftest import cli_through_the_app
from tests.incidents.test_api import create
from warroom.cli.main import app as cli_app
from warroom.clock import clock

LONG = "We found the cause and are deploying a fix; payments in the EU may fail until 09:30 UTC. " * 6


@pytest.fixture
def cli(api: TestClient, tokens: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    return cli_through_the_app(api, tokens["responder"], monkeypatch, "warroom.cli.incidents")


def send(api: TestClient, headers: dict[str, str], ref: str, audience: str, message: str) -> None:
    answer = api.post(
        f"/api/v1/incidents/{ref}/updates", json={"audience": audience, "message": message}, headers=headers
    )
    assert answer.status_code == 201, answer.text


def rows(output: str) -> list[list[str]]:
    """A table's rows, as their cells (the first line of each)."""
    return [
        [cell.strip() for cell in line.split("│")[1:-1]]
        for line in output.splitlines()
        if re.match(r"│ +\d+ +│", line)
    ]


def test_the_timeline_shows_what_an_update_said(
    cli: CliRunner, api: TestClient, responder: dict[str, str]
) -> None:
    ref = create(api, responder)["id"]
    send(api, responder, ref, "status-page", "Payments are failing for some EU customers.")
    send(api, responder, ref, "internal", LONG)
    shown = cli.invoke(cli_app, ["incident", "timeline", ref], env={"COLUMNS": "400"})
    assert shown.exit_code == 0, shown.output
    actions = [row[4] for row in rows(shown.output)]
    assert "Update to status-page via status-page: “Payments are failing for some EU customers.”" in actions
    [long] = [action for action in actions if action.startswith("Update to internal")]
    assert LONG[:100] in long and LONG.strip() not in long and long.endswith("…”")
    assert len(long) < 300
    entries = json.loads(cli.invoke(cli_app, ["incident", "timeline", ref, "--json"]).output)["items"]
    assert [e["data"]["message"] for e in entries if e["kind"] == "communication"][1] == LONG


def test_timeline_times_keep_their_seconds_at_120_columns(
    cli: CliRunner, api: TestClient, responder: dict[str, str]
) -> None:
    # Noon here today: the times are today's, written without their day.
    clock.set(datetime.now().astimezone().replace(hour=12, minute=0, second=0, microsecond=0))
    ref = create(api, responder)["id"]
    for n in range(3):  # a flapping alert: entries seconds apart
        clock.advance(timedelta(seconds=7))
        api.post(
            f"/api/v1/incidents/{ref}/timeline",
            json={"action": f"Alert flapped again ({n}): " + "checkout-api p99 above 2 s on eu-west-1 " * 3},
            headers=responder,
        )
    for width in ("120", "80"):
        shown = cli.invoke(cli_app, ["incident", "timeline", ref], env={"COLUMNS": width})
        assert shown.exit_code == 0, shown.output
        times = [row[1] for row in rows(shown.output)]
        assert len(times) == 4 and all(re.fullmatch(r"\d\d:\d\d:\d\d", time) for time in times), shown.output
        assert len(set(times)) == 4
    # Other tables keep their short times without seconds.
    listed = cli.invoke(cli_app, ["incident", "list"], env={"COLUMNS": "80"}).output
    assert re.search(r"│ \d\d:\d\d +│", listed), listed


def test_incident_updates_lists_the_communications_log(
    cli: CliRunner, api: TestClient, responder: dict[str, str]
) -> None:
    ref = create(api, responder)["id"]
    send(api, responder, ref, "status-page", "Payments are failing for some EU customers.")
    send(api, responder, ref, "executives", LONG)
    shown = cli.invoke(cli_app, ["incident", "updates", ref], env={"COLUMNS": "1000"})
    assert shown.exit_code == 0, shown.output
    table = rows(shown.output)
    assert [(row[2], row[3], row[5]) for row in table] == [
        ("status-page", "status-page logged", "responder-user"),
        ("executives", "email:exec@acme.example queued", "responder-user"),
    ]
    assert table[0][4] == "Payments are failing for some EU customers."
    assert table[1][4].startswith(LONG[:200]) and table[1][4].endswith("…")
    assert "messages cut at 300 characters: --json has all" in shown.output

    as_json = json.loads(cli.invoke(cli_app, ["incident", "updates", ref, "--json"]).output)
    assert [u["message"] for u in as_json] == ["Payments are failing for some EU customers.", LONG]
    assert [[o["outcome"] for o in u["outcomes"]] for u in as_json] == [["logged"], ["queued"]]

    empty = cli.invoke(cli_app, ["incident", "updates", create(api, responder)["id"]])
    assert empty.exit_code == 0 and "(0)" in empty.output
    missing = cli.invoke(cli_app, ["incident", "updates", "INC-99"])
    assert missing.exit_code == 1 and "no incident INC-99" in missing.output
