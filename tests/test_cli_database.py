"""Admin commands that write to the local database use the one that is there: run from the wrong directory,
``token create`` and ``integration create`` used to make a new, empty database and print a token or key that
worked nowhere (exit 0). Only ``db upgrade`` (and ``demo seed``, the worker) make one."""

from __future__ import annotations

import socket
import sqlite3
from pathlib import Path

import pytest
from click.testing import Result
from typer.testing import CliRunner

from tests.peers import free_port
from warroom import __version__, migrate
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


def _said(result: Result) -> str:
    return " ".join(result.output.split())


def _clean_failure(result: Result) -> str:
    """A command that ended with one line of error, not a traceback; what it said."""
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output
    return _said(result)


def test_serve_says_in_one_line_that_it_cannot_use_the_database(tmp_path: Path) -> None:
    """A refused port (or a database that does not exist): the same line as ``db upgrade``'s, not the
    traceback of ``create_app``'s migration. One line at any width: folded at 80 columns, it was three
    entries in a log."""
    runner = CliRunner(env={"COLUMNS": "80", "WARROOM_DATA_DIR": str(tmp_path)})
    url = "postgresql+psycopg://postgres@127.0.0.1:1/nowhere"
    for command in (["serve", "--port", str(free_port())], ["db", "upgrade"]):
        result = runner.invoke(app, [*command, "--database-url", url])
        said = _clean_failure(result)
        assert "cannot use the database at postgresql+psycopg://postgres@127.0.0.1:1/nowhere" in said, said
        assert "Connection refused" in said or "connection" in said.lower(), said
        assert len(result.output.strip().splitlines()) == 1, result.output


def test_a_database_of_a_newer_warroom_is_named_as_such(tmp_path: Path) -> None:
    """After a deploy is rolled back: not Alembic's "Can't locate revision", from each command."""
    url = f"sqlite:///{tmp_path / 'warroom.db'}"
    runner = CliRunner(env={"COLUMNS": "200", "WARROOM_DATA_DIR": str(tmp_path)})
    assert runner.invoke(app, ["db", "upgrade", "--database-url", url]).exit_code == 0
    with sqlite3.connect(tmp_path / "warroom.db") as connection:
        connection.execute("UPDATE alembic_version SET version_num = '0099_future'")
    for command in (
        ["db", "upgrade"],
        ["serve", "--port", str(free_port())],
        ["worker", "--once"],
        ["token", "list"],
    ):
        said = _clean_failure(runner.invoke(app, [*command, "--database-url", url]))
        assert (
            f"migrated by a newer Warroom (revision 0099_future, unknown to this version {__version__})"
            in (said)
        ), (command, said)
        assert "upgrade Warroom, or restore a backup" in said


@pytest.mark.parametrize("command", [["db", "upgrade"], ["serve", "--port", "PORT"], ["token", "list"]])
def test_a_database_other_than_sqlite_or_postgresql_is_refused_by_name(
    tmp_path: Path, command: list[str]
) -> None:
    # A port of its own: a fixed one was taken by the same test on another xdist worker.
    command = [str(free_port()) if word == "PORT" else word for word in command]
    runner = CliRunner(env={"COLUMNS": "200", "WARROOM_DATA_DIR": str(tmp_path)})
    said = _clean_failure(runner.invoke(app, [*command, "--database-url", "mysql://x@y/z"]))
    assert "is for mysql: only SQLite" in said and "and PostgreSQL" in said, said


def test_db_upgrade_says_whether_it_migrated(tmp_path: Path) -> None:
    """It said "is up to date" after migrating as when there was nothing to do: an operator upgrading could
    not tell whether the new release's migrations ran."""
    url = f"sqlite:///{tmp_path / 'warroom.db'}"
    runner = CliRunner(env={"COLUMNS": "200", "WARROOM_DATA_DIR": str(tmp_path)})
    first = runner.invoke(app, ["db", "upgrade", "--database-url", url])
    assert first.exit_code == 0, first.output
    [head] = migrate.heads()
    assert f"migrated the database from an empty database to {head}" in first.output, first.output
    again = runner.invoke(app, ["db", "upgrade", "--database-url", url])
    assert again.exit_code == 0 and "is up to date" in again.output and "migrated" not in again.output


def test_serve_that_cannot_use_the_database_gives_its_ports_back(tmp_path: Path) -> None:
    """``serve`` binds its ports before it migrates; when the database then fails, the ports are closed, not
    held until the process ends (a test or an embedding that goes on could not bind them again)."""
    runner = CliRunner(env={"COLUMNS": "200", "WARROOM_DATA_DIR": str(tmp_path)})
    port, mail_port = free_port(), free_port()
    command = ["serve", "--port", str(port), "--mail-port", str(mail_port), "--database-url", "mysql://x@y/z"]
    result = runner.invoke(app, command)
    assert "is for mysql" in _clean_failure(result)
    for taken in (port, mail_port):
        with socket.socket() as again:
            again.bind(("127.0.0.1", taken))
            again.listen(1)
