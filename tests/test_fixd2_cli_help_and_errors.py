"""QA findings about the CLI's words: help texts reflowed to the terminal (not broken at the docstrings' own
line ends), one exit status per kind of error (2: the command line is wrong; 1: the server or the database
refused or failed), connection and token errors that say what to do, and help and messages that name what
a person types (options, refs, every status, every duration form)."""

from __future__ import annotations

import itertools
import re
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import typer
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from tests.conftest import cli_commands as _commands
from tests.conftest import cli_through_the_app
from warroom.cli.helptext import DURATION_FORMS, reflow
from warroom.cli.main import app as cli_app
from warroom.client import ApiError, Client

CLIENT_MODULES = (
    "warroom.cli.alerts",
    "warroom.cli.incidents",
    "warroom.cli.maintenance",
    "warroom.cli.oncall",
    "warroom.cli.notify",
    "warroom.cli.changes",
    "warroom.cli.main",
)


@pytest.fixture
def cli(api: TestClient, tokens: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    """The CLI's client commands, answered by the test app (as admin)."""
    return cli_through_the_app(api, tokens["admin"], monkeypatch, *CLIENT_MODULES)


def _help(path: list[str]) -> str:
    result = CliRunner().invoke(cli_app, [*path, "--help"], env={"COLUMNS": "80"}, prog_name="warroom")
    assert result.exit_code == 0, result.output
    return result.output


def _broken_early(lines: list[str]) -> list[str]:
    """Lines of wrapped paragraphs (consecutive, each as its column shows it) after which the next line's
    first word would have fitted: a break that Rich did not make, so one the text carried. The column is at
    least as wide as its longest line."""
    width = max((len(line) for line in lines), default=0)
    early = []
    for line, following in itertools.pairwise(lines):
        if line and following:
            word = following.split()[0]
            if len(line) + 1 + len(word) <= width:
                early.append(f"{line!r} then {word!r}")
    return early


def _description_lines(output: str) -> list[str]:
    """The prose under ``Usage:`` (before the first panel), each line without its padding."""
    prose = output.split("╭", 1)[0].splitlines()
    start = next(index for index, line in enumerate(prose) if line.strip().startswith("Usage:"))
    return [line.strip() for line in prose[start + 1 :]]


def _command_rows(output: str) -> list[list[str]]:
    """The descriptions in the Commands panel: one list of lines per command."""
    if "─ Commands " not in output:
        return []
    panel = output.split("─ Commands ", 1)[1].split("╰", 1)[0].splitlines()[1:]
    cells = [line.strip().strip("│").rstrip() for line in panel]
    column = min(
        re.match(r" \S+\s+", cell).end() for cell in cells if cell.startswith(" ") and cell[1] != " "
    )  # type: ignore[union-attr]
    rows: list[list[str]] = []
    for cell in cells:
        if cell[1:column].strip():  # a command's name: a new row
            rows.append([])
        rows[-1].append(cell[column:].rstrip())
    return rows


def test_every_help_text_is_wrapped_by_the_terminal_not_by_the_docstring() -> None:
    broken: dict[str, list[str]] = {}
    for path, _ in _commands():
        output = _help(path)
        early = _broken_early(_description_lines(output))
        for row in _command_rows(output):
            early += _broken_early(row)
        if early:
            broken[" ".join(["warroom", *path])] = early
    assert not broken, broken


def test_the_listed_commands_read_as_their_reflowed_docstrings() -> None:
    """The QA's example: `warroom db --help` lists vacuum's help as one paragraph, wrapped at 80 columns."""
    output = _help(["db"])
    vacuum = next(row for row in _command_rows(output) if row[0].startswith("Rewrite the database"))
    assert not _broken_early(vacuum), vacuum
    assert " ".join(vacuum) == reflow(typer.main.get_command(cli_app).commands["db"].commands["vacuum"].help)
    assert all(len(line) <= 80 for line in output.splitlines())


def test_reflow_keeps_paragraphs_lists_and_what_help_hides() -> None:
    text = (
        "One line\ngoes on.\n\nA list:\n- first item\n  goes on\n- second\n\n\bkept\n  as is\f\nhidden\nlines"
    )
    assert (
        reflow(text)
        == "One line goes on.\n\nA list:\n- first item goes on\n- second\n\n\bkept\n  as is\f\nhidden\nlines"
    )


# --- exit statuses ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ["alerts", "snooze", "3", "--for", "1H"],  # the CLI's own check of the duration
        ["alerts", "snooze", "3", "--until", "18:00"],  # click's: a time it cannot read
        ["alerts", "snooze", "3"],  # neither --for nor --until
        ["alerts", "ack"],  # no ids, no filters
        ["alerts", "unack"],  # click's: the argument is required
        ["alerts", "note", "3", "-m", " "],
        ["alerts", "list", "--watch", "--json"],
        ["incident", "create", "Disk full", "--assessment", "{not json"],
        ["changes", "record", " "],
        ["maintenance", "start", "--reason", "patching", "--for", "1h"],  # covers nothing
        ["token", "create", "--name", "", "--role", "admin"],
        ["token", "create", "--name", "x", "--role", "root"],
        ["config", "test-alert", "/nonexistent.json", "--source", "generic"],
        ["config", "check", "/nonexistent.yaml"],
    ],
)
def test_a_wrong_command_line_exits_2_before_any_request(cli: CliRunner, args: list[str]) -> None:
    said = cli.invoke(cli_app, args, env={"COLUMNS": "200"})
    assert said.exit_code == 2, said.output


def test_a_refusal_of_the_server_exits_1(cli: CliRunner) -> None:
    for args in (
        ["alerts", "ack", "ALR-99999"],
        ["alerts", "show", "ALR-99999"],
        ["incident", "show", "INC-999"],
    ):
        said = cli.invoke(cli_app, args, env={"COLUMNS": "200"})
        assert said.exit_code == 1, said.output


# --- connections and tokens -------------------------------------------------------------------------------


class _PlainHttp(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def plain_http() -> Iterator[int]:
    """A plain-http server in this process; its port."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _PlainHttp)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def test_https_to_a_plain_http_server_says_to_try_http(plain_http: int) -> None:
    with pytest.raises(ApiError) as raised, Client(f"https://127.0.0.1:{plain_http}", "wr_x") as client:
        client.request("GET", "/api/v1/incidents")
    assert raised.value.code == "unreachable"
    assert f"the server may speak plain http: try WARROOM_URL=http://127.0.0.1:{plain_http}" in str(
        raised.value.message
    )


def test_a_password_in_warroom_url_is_refused_not_sent_for_the_token() -> None:
    said = CliRunner().invoke(
        cli_app,
        ["alerts", "list"],
        env={"WARROOM_URL": "http://ops:hunter2@127.0.0.1:9", "WARROOM_TOKEN": "wr_token", "COLUMNS": "300"},
    )
    assert said.exit_code == 1, said.output
    assert "has a user name or password in it" in said.output
    assert "WARROOM_TOKEN" in said.output
    assert "hunter2" not in said.output


def test_a_token_the_server_refuses_is_said_with_where_a_valid_one_comes_from(
    api: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    cli = cli_through_the_app(api, "wr_not_a_token_at_all", monkeypatch, *CLIENT_MODULES)
    said = cli.invoke(
        cli_app, ["alerts", "list"], env={"WARROOM_TOKEN": "wr_not_a_token_at_all", "COLUMNS": "300"}
    )
    assert said.exit_code == 1, said.output
    assert "the token is not valid" in said.output
    assert "warroom token create" in said.output


# --- help and messages ------------------------------------------------------------------------------------


def _param(path: list[str], name: str) -> Any:
    command = typer.main.get_command(cli_app)
    for part in path:
        command = command.commands[part]
    return next(param for param in command.params if param.name == name)


def test_notify_list_status_help_names_every_status() -> None:
    assert _param(["notify", "list"], "status").help == "pending, sent, failed, dead or withdrawn."


DURATION_OPTIONS = [
    (["alerts", "list"], "since"),
    (["alerts", "overview"], "since"),
    (["alerts", "noise"], "since"),
    (["alerts", "snooze"], "duration"),
    (["maintenance", "start"], "duration"),
    (["maintenance", "extend"], "by"),
    (["changes", "list"], "since"),
    (["config", "backtest"], "since"),
    (["integration", "update"], "grace"),
    (["integration", "rotate"], "grace"),
]


@pytest.mark.parametrize(("path", "name"), DURATION_OPTIONS)
def test_every_duration_option_says_the_same_forms(path: list[str], name: str) -> None:
    assert DURATION_FORMS in _param(path, name).help
    assert "PT2H" in DURATION_FORMS


def test_what_the_help_says_of_durations_is_taken(cli: CliRunner, tmp_path: Path) -> None:
    said = cli.invoke(cli_app, ["alerts", "noise", "--since", "PT2H"], env={"COLUMNS": "200"})
    assert said.exit_code == 0, said.output
    # backtest read its --since with the org file's parser alone, which left PT48H unread.
    said = cli.invoke(
        cli_app,
        ["config", "backtest", str(tmp_path / "candidate.yaml"), "--since", "PT48H"],
        env={"COLUMNS": "300", "WARROOM_CONFIG": ""},
    )
    assert "--since" not in said.output, said.output


def test_the_at_example_of_changes_record_is_one_it_takes() -> None:
    from warroom.cli.changes import _happened_at

    examples = re.findall(r"e\.g\. (\S+?)[,.]?(?:\s|$)", _param(["changes", "record"], "at").help)
    assert examples == ["2025-11-03T02:00:00Z", "30m"]
    for example in examples:  # a time, and how long ago: both in the past
        sent = _happened_at(example)
        assert sent is not None and datetime.fromisoformat(sent) < datetime.now(UTC)


REF_ARGUMENTS = [
    ["log"],
    ["incident", "show"],
    ["incident", "update"],
    ["incident", "ack"],
    ["incident", "resolve"],
    ["incident", "timeline"],
    ["incident", "updates"],
    ["incident", "send-update"],
    ["alerts", "show"],
    ["alerts", "promote"],
    ["maintenance", "show"],
    ["maintenance", "extend"],
    ["maintenance", "end"],
]


@pytest.mark.parametrize("path", REF_ARGUMENTS, ids=" ".join)
def test_every_ref_argument_has_help(path: list[str]) -> None:
    assert _param(path, "ref").help


def test_severity_list_json_has_help() -> None:
    assert _param(["severity", "list"], "as_json").help == "Print JSON instead of text."


def test_a_note_too_long_names_the_option(cli: CliRunner) -> None:
    alert = cli.invoke(cli_app, ["report", "disk full on db-1", "--json"], env={"COLUMNS": "200"})
    assert alert.exit_code == 0, alert.output
    ref = re.search(r'"ref": "(ALR-\d+)"', alert.output)
    assert ref is not None, alert.output
    said = cli.invoke(cli_app, ["alerts", "note", ref.group(1), "-m", "x" * 4001], env={"COLUMNS": "300"})
    assert said.exit_code == 1, said.output
    assert "--message: String should have at most 4000 characters" in said.output
    assert "body" not in said.output


def test_an_override_that_ends_before_it_starts_names_the_option(cli: CliRunner) -> None:
    said = cli.invoke(
        cli_app,
        [
            "oncall",
            "override",
            "platform-primary",
            "--person",
            "alice",
            "--start",
            "2030-01-02T10:00:00Z",
            "--end",
            "2030-01-02T09:00:00Z",
        ],
        env={"COLUMNS": "300"},
    )
    assert said.exit_code == 1, said.output
    assert "--end: " in said.output
    assert "body" not in said.output


def test_a_role_not_among_them_is_said_without_pydantics_words() -> None:
    said = CliRunner().invoke(
        cli_app, ["token", "create", "--name", "x", "--role", "root"], env={"COLUMNS": "300"}
    )
    assert said.exit_code == 2, said.output
    assert "'root' is not one of 'viewer', 'responder', 'admin'" in said.output
    assert "Value error" not in said.output


def test_a_missing_alert_is_named_alike_by_show_and_by_the_actions(cli: CliRunner) -> None:
    said = {
        command: cli.invoke(cli_app, ["alerts", command, "ALR-99999"], env={"COLUMNS": "300"}).output
        for command in ("show", "ack", "resolve", "unack")
    }
    for output in said.values():
        assert "no alert ALR-99999" in output, said
