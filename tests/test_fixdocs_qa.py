"""QA findings of a newcomer following the README literally: what the CLI refuses before sending anything,
what a narrow terminal keeps, what a retried notification shows, what the demo and the tour name, what
``/healthz`` checks and what ``config check`` reports."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from tests.conftest import cli_through_the_app
from warroom.cli.main import app as cli_app


@pytest.fixture
def cli(api: TestClient, tokens: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    """The CLI's client commands, answered by the test app (as admin)."""
    return cli_through_the_app(
        api,
        tokens["admin"],
        monkeypatch,
        "warroom.cli.alerts",
        "warroom.cli.changes",
        "warroom.cli.incidents",
    )


@pytest.mark.parametrize(
    "command",
    [
        ["alerts", "list", "--until", "18:00"],
        ["alerts", "list", "--since", "9:00"],
        ["changes", "list", "--until", "18:00"],
        ["changes", "list", "--since", " 18:00 "],
    ],
)
def test_a_time_of_day_without_its_date_is_a_usage_error_before_anything_is_sent(
    cli: CliRunner, command: list[str]
) -> None:
    """It was sent, and the server's 422 made it exit 1; the README lists it as a usage error (exit 2)."""
    result = cli.invoke(cli_app, command, env={"COLUMNS": "200"}, prog_name="warroom")
    assert result.exit_code == 2, result.output
    assert "is a time of day without its date" in result.output
    assert "2026-12-07T09:00:00Z" in result.output and "(2h)" in result.output
    assert "HTTP" not in result.output and "422" not in result.output


def test_durations_and_dated_times_still_go_to_the_server(cli: CliRunner) -> None:
    for bound in ("2h", "2026-12-07T09:00:00Z"):
        result = cli.invoke(cli_app, ["alerts", "list", "--since", bound], env={"COLUMNS": "200"})
        assert result.exit_code == 0, result.output
