"""Admin commands that write to the local database use the one that is there: run from the wrong directory,
``token create`` and ``integration create`` used to make a new, empty database and print a token or key that
worked nowhere (exit 0). Only ``db upgrade`` (and ``demo seed``, the worker) make one."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from warroom.cli.main import app


@pytest.mark.parametrize(
    "command",
    [
        ["token", "create", "--name", "bob", "--role", "responder"],
        ["token", "revoke", "1"],
        ["integration", "create", "--name", "x", "--type", "generic"],
        ["integration", "revoke", "1"],
        ["db", "vacuum"],
    ],
)
def test_a_write_command_does_not_make_a_database(
    tmp_path: Path, command: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    runner = CliRunner(env={"COLUMNS": "200", "WARROOM_DATABASE_URL": None, "WARROOM_DATA_DIR": None})
    result = runner.invoke(app, command)
    assert result.exit_code == 1, result.output
    said = " ".join(result.output.split())
    assert "no database at" in said and "warroom db upgrade" in said, said
    assert list(tmp_path.iterdir()) == []  # no var/warroom.db


def test_db_upgrade_makes_one_and_then_writes_work(tmp_path: Path) -> None:
    database_url = f"sqlite:///{tmp_path / 'new' / 'warroom.db'}"
    runner = CliRunner(env={"COLUMNS": "200", "WARROOM_DATABASE_URL": database_url})
    (tmp_path / "new").mkdir()
    assert runner.invoke(app, ["db", "upgrade"]).exit_code == 0
    created = runner.invoke(app, ["token", "create", "--name", "bob", "--role", "responder"])
    assert created.exit_code == 0, created.output
    assert created.stdout.strip().splitlines()[-1].startswith("wr_")
