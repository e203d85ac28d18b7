"""At 80 columns, Typer's options panel leaves an option's help a narrow column, and Rich cuts a word longer
than that column with "…" (``WARROOM_MAIL_INTAKE_P…`` in ``warroom serve --help``): what a user needs to
type (a variable's name, a header's) must be shown whole, in every command's help."""

from __future__ import annotations

import re
from typing import Any

from typer.testing import CliRunner

from tests.conftest import cli_commands as _commands
from warroom.cli.main import app as cli_app

# A word that ends in "…": one Rich cut, unless the help itself has it so (``http://127.0.0.1/…``).
_ENDS_CUT = re.compile(r"\S+…")


def _written(command: Any) -> str:
    """Everything the help of ``command`` is made of, as written: a "…" in it is the text's own."""
    texts = [command.help, command.short_help, command.epilog]
    texts += [getattr(param, "help", None) for param in command.params]
    texts += [sub.short_help or sub.help for sub in getattr(command, "commands", {}).values()]
    return "\n".join(text for text in texts if text)


def test_no_word_of_any_help_is_cut_at_80_columns() -> None:
    cut: dict[str, list[str]] = {}
    for path, command in _commands():
        result = CliRunner().invoke(cli_app, [*path, "--help"], env={"COLUMNS": "80"}, prog_name="warroom")
        assert result.exit_code == 0, result.output
        written = _written(command)
        words = [word for word in _ENDS_CUT.findall(result.output) if word.strip("(│") not in written]
        if words:
            cut[" ".join(["warroom", *path])] = words
    assert not cut, cut


def test_the_variables_and_headers_the_cut_words_were_are_shown_whole() -> None:
    """The ones QA found cut are in the help, whole, where a user can copy them."""
    shown = {
        ("serve",): [
            "WARROOM_MAIL_INTAKE_PORT",
            "WARROOM_MAIL_INTAKE_REQUIRE_TLS",
            "WARROOM_MAIL_INTAKE_TLS_CERT",
            "WARROOM_MAIL_INTAKE_TLS_KEY",
            "WARROOM_FORWARDED_ALLOW_IPS",
        ],
        ("worker",): ["WARROOM_WORKER_CONCURRENCY"],
        ("integration", "create"): ["X-Grafana-Alerting-Signature", "X-Grafana-Alerting-Signature-Timestamp"],
        ("integration", "update"): ["X-Grafana-Alerting-Signature", "X-Grafana-Alerting-Signature-Timestamp"],
    }
    for path, names in shown.items():
        output = CliRunner().invoke(cli_app, [*path, "--help"], env={"COLUMNS": "80"}).output
        words = set(re.findall(r"[\w-]+", output))
        assert set(names) <= words, (path, set(names) - words)
