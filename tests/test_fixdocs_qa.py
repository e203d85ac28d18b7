"""QA findings of a newcomer following the README literally: what the CLI refuses before sending anything,
what a narrow terminal keeps, what a retried notification shows, what the demo and the tour name, what
``/healthz`` checks and what ``config check`` reports."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from rich.cells import cell_len
from typer.testing import CliRunner

from tests.alerts.conftest import make_key
from tests.alerts.test_dependency_grouping import fire
from tests.conftest import bearer, cli_through_the_app
from warroom.cli.main import app as cli_app
from warroom.context import AppContext


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
        ["alerts", "list", "--since", "18:00:30"],  # not a duration of 18 hours
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


def _header(output: str) -> list[str]:
    line = next(line for line in output.splitlines() if line.startswith("┃"))
    return [cell.strip() for cell in line.strip("┃").split("┃")]


def test_a_50_column_alert_list_keeps_the_status_of_an_acknowledged_alert(
    cli: CliRunner, api: TestClient, context: AppContext, tokens: dict[str, str]
) -> None:
    """``acknowledged`` is 12 wide: with the summary at its 15, the status was left out at 50 columns (id,
    summary and incident alone), though whether anyone owns an alert is what the list is read for."""
    key = make_key(context, "generic", "scripts")
    alert = fire(api, key, "search", "SearchLatencyHigh", severity="warning", summary="p99 latency 1430 ms")
    acked = api.post(f"/api/v1/alerts/{alert['id']}/acknowledge", headers=bearer(tokens["responder"]))
    assert acked.status_code == 200, acked.text
    result = cli.invoke(cli_app, ["alerts", "list"], env={"COLUMNS": "50"})
    assert result.exit_code == 0, result.output
    assert _header(result.output) == ["id", "status", "summary", "incident"], result.output
    assert "acknowledged" in result.output
    assert all(cell_len(line) <= 50 for line in result.output.splitlines()), result.output
    # Wider, the summary keeps its 15 before a severity is kept beside it (as before).
    wider = cli.invoke(cli_app, ["alerts", "list"], env={"COLUMNS": "60"})
    assert _header(wider.output) == ["id", "status", "summary", "incident"], wider.output
    # Narrower, the status goes rather than the summary shrinking further.
    narrower = cli.invoke(cli_app, ["alerts", "list"], env={"COLUMNS": "49"})
    assert _header(narrower.output) == ["id", "summary", "incident"], narrower.output


def test_the_worker_help_says_deliveries_run_side_by_side_on_sqlite_too(on_sqlite: AppContext) -> None:
    """``--concurrency`` said "Jobs run at once on PostgreSQL (SQLite: 1)" while the worker's delivery lane
    runs that many on SQLite too (its log says "network … 4 at a time")."""
    from warroom.jobs.worker import Worker

    help_text = " ".join(
        CliRunner().invoke(cli_app, ["worker", "--help"], env={"COLUMNS": "200"}).output.split()
    )
    assert "Deliveries (email, Slack, webhooks) run at once, on SQLite too" in help_text, help_text
    assert "(SQLite: 1)" not in help_text
    worker = Worker(on_sqlite, concurrency=4)
    assert (worker.in_lane("network").concurrency, worker.in_lane("local").concurrency) == (4, 1)
    assert worker.concurrency == 1  # --once runs every lane's jobs in one pass


def test_an_unknown_filter_does_not_hide_an_unknown_field_in_the_same_template() -> None:
    """``config check`` said only the filter, so a second run (the filter fixed) found the field: both now,
    in a channel's message template and in a rule's template alike."""
    from tests.conftest import EXAMPLE_CONFIG
    from warroom.orgconfig import ConfigError, parse_org_config

    text = EXAMPLE_CONFIG.read_text()
    # The example's subject (of several lines) as one that fails both ways.
    start = text.index("        subject: >-\n          {% if external %}")
    last = "{%- else %}[Acme {{ incident.severity }}] {{ incident.title }}{% endif %}\n"
    end = text.index(last, start) + len(last)
    text = (
        text[:start]
        + '        subject: "{{ incident.nosuch }} {{ incident.title | nofilter }}"\n'
        + text[end:]
    ).replace(
        'title: "Payments: {{ alert.summary }}"', 'title: "{{ alert.nosuch }} {{ alert.summary | nofilter }}"'
    )
    with pytest.raises(ConfigError) as caught:
        parse_org_config(text)
    problems = [f"{p.location}: {p.message}" for p in caught.value.problems]
    subject = [p for p in problems if p.startswith("notification_channels[1].templates.incident_update")]
    # The example's email channel reaches customers, so what the subject would show them is a third problem.
    assert len(subject) == 3, problems
    assert "No filter named 'nofilter'" in subject[0]
    assert "incident.nosuch: incident has no such field" in subject[1]
    assert "shows incident.nosuch, incident.title to 'customers' (outside the org)" in subject[2]
    title = [p for p in problems if p.startswith("automation.rules[0].incident.title")]
    assert len(title) == 2, problems
    assert "No filter named 'nofilter'" in title[0]
    assert "alert.nosuch: alert has no such field" in title[1]


def test_a_commander_who_is_not_a_person_of_the_org_file_is_warned_of(
    cli: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``--commander "Alice Chen"`` was taken silently with WARROOM_CONFIG set, though no reminder can reach
    a name the org file's people do not have. A warning on stderr, not a refusal: the incident is made."""
    from tests.conftest import EXAMPLE_CONFIG

    monkeypatch.setenv("WARROOM_CONFIG", str(EXAMPLE_CONFIG))
    made = cli.invoke(
        cli_app, ["incident", "create", "Checkout failing", "-s", "P1", "--commander", "Alice Chen"]
    )
    assert made.exit_code == 0, made.output
    assert "INC-1" in made.stdout and "warning" not in made.stdout
    warned = " ".join(made.stderr.split())
    assert "warning: 'Alice Chen' is not a person of the org file" in warned, made.stderr
    assert "the update-due reminders cannot reach this commander" in warned
    # A display name is pointed at the handle that reaches that person.
    handed = cli.invoke(cli_app, ["incident", "update", "INC-1", "--commander", "Carol Wagner"])
    assert handed.exit_code == 0, handed.output
    assert "give --commander carol to reach 'Carol Wagner'" in " ".join(handed.stderr.split())
    # A person of the file, or no org file at all: nothing to say.
    for env, name in [({}, "carol"), ({}, " carol "), ({"WARROOM_CONFIG": ""}, "carol")]:
        # " carol " too: the server trims it to carol, whom reminders reach.
        quiet = cli.invoke(cli_app, ["incident", "update", "INC-1", "--commander", name], env=env)
        assert quiet.exit_code == 0 and quiet.stderr == "", quiet.output
    monkeypatch.delenv("WARROOM_CONFIG")
    unchecked = cli.invoke(cli_app, ["incident", "update", "INC-1", "--commander", "Carol Diaz"])
    assert unchecked.exit_code == 0 and unchecked.stderr == "", unchecked.output
