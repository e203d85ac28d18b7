"""``alerts note`` without ``-m`` says the option is missing: "--message must not be blank" read as
though an empty message had been given. (A WARROOM_TOKEN with quotes around it:
test_fixcliconf_client_settings.py.)"""

from __future__ import annotations

from typer.testing import CliRunner

from warroom.cli.main import app

# Nothing listens there: the command must end before any request.
ENV = {"WARROOM_URL": "http://127.0.0.1:9", "WARROOM_TOKEN": "wr_x", "COLUMNS": "300"}


def test_a_note_without_message_says_the_option_is_missing() -> None:
    for command in (["alerts", "note", "ALR-5"], ["alerts", "note", "ALR-5", "--edit", "1"]):
        result = CliRunner(env=ENV).invoke(app, command)
        assert result.exit_code == 2, result.output
        said = " ".join(result.stderr.split())
        assert said == "error: Missing option '--message' / '-m': the note's text", said


def test_a_blank_message_is_still_said_to_be_blank() -> None:
    result = CliRunner(env=ENV).invoke(app, ["alerts", "note", "ALR-5", "-m", "  "])
    assert result.exit_code == 2 and "--message must not be blank" in result.stderr, result.output
