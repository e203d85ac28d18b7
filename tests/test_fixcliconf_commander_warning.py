"""The warning that a commander is not a person of the org file (WARROOM_CONFIG): an org file that cannot
be read (missing, a directory, not UTF-8, not readable, not valid) is said once, as a warning, rather than
the name passing as checked; and ``responder add --role commander``, which hands command as ``--commander``
does, is warned of as it is."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from tests.conftest import EXAMPLE_CONFIG, cli_through_the_app
from warroom.cli.main import app


@pytest.fixture
def cli(api: TestClient, tokens: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    runner = cli_through_the_app(api, tokens["admin"], monkeypatch, "warroom.cli.incidents")
    made = runner.invoke(
        app, ["incident", "create", "Checkout failing", "-s", "P1"], env={"WARROOM_CONFIG": ""}
    )
    assert made.exit_code == 0, made.output
    return runner


def _warned(cli: CliRunner, config: Path, *command: str) -> str:
    result = cli.invoke(app, list(command), env={"WARROOM_CONFIG": str(config)})
    assert result.exit_code == 0, result.output
    assert "warning" not in result.stdout
    return " ".join(result.stderr.split())


def _unreadable(tmp_path: Path) -> Path:
    path = tmp_path / "locked.yaml"
    path.write_text(EXAMPLE_CONFIG.read_text())
    path.chmod(0)
    return path


def _org_file(tmp_path: Path, kind: str) -> Path:
    """A WARROOM_CONFIG that cannot be read, of ``kind``."""
    if kind == "missing":
        return tmp_path / "missing.yaml"
    if kind == "directory":
        return tmp_path
    path = tmp_path / f"{kind}.yaml"
    if kind == "not-utf8":
        path.write_bytes(b"people:\n  - caf\xe9\n")  # saved as Latin-1
    else:
        path.write_text("people: [\n")
    return path


@pytest.mark.parametrize(
    ("kind", "why"),
    [
        ("missing", "No such file or directory"),
        ("directory", "Is a directory"),
        ("not-utf8", "is not UTF-8"),
        ("not-yaml", "line"),
    ],
)
@pytest.mark.parametrize(
    "command",
    [
        ("incident", "update", "INC-1", "--commander", "Bob Keller"),
        ("responder", "add", "INC-1", "Bob Keller", "--role", "commander"),
    ],
    ids=["update", "responder-add"],
)
def test_an_org_file_that_cannot_be_read_is_said_once(
    cli: CliRunner, tmp_path: Path, kind: str, why: str, command: tuple[str, ...]
) -> None:
    config = _org_file(tmp_path, kind)
    said = _warned(cli, config, *command)
    assert said.count("warning:") == 1, said
    assert f"warning: WARROOM_CONFIG {config} could not be read (" in said, said
    assert why in said and "'Bob Keller' could not be checked" in said, said


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads a file of mode 000 all the same")
def test_an_org_file_that_may_not_be_read_is_said(cli: CliRunner, tmp_path: Path) -> None:
    said = _warned(cli, _unreadable(tmp_path), "incident", "update", "INC-1", "--commander", "Bob Keller")
    assert "could not be read (Permission denied)" in said, said


def test_handing_command_with_responder_add_warns_of_a_name_outside_the_org(cli: CliRunner) -> None:
    said = _warned(cli, EXAMPLE_CONFIG, "responder", "add", "INC-1", "Bob Keller", "--role", "commander")
    assert "warning: 'Bob Keller' is not a person of the org file" in said, said
    assert "the update-due reminders cannot reach this commander" in said
    said = _warned(cli, EXAMPLE_CONFIG, "responder", "add", "INC-1", "Carol Wagner", "--role", "commander")
    assert "give the name carol to reach 'Carol Wagner'" in said, said
    # A person of the file, or a role other than commander: nothing to say.
    assert _warned(cli, EXAMPLE_CONFIG, "responder", "add", "INC-1", "carol", "--role", "commander") == ""
    assert _warned(cli, EXAMPLE_CONFIG, "responder", "add", "INC-1", "Bob Keller", "--role", "scribe") == ""
