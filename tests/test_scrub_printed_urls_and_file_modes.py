"""Passwords in the database URL and in WARROOM_URL are not printed (``db.shown_url``, ``client.shown_url``),
and the SQLite database and its -wal and -shm files are made readable by their owner only."""

from __future__ import annotations

import os
import sqlite3
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text
from typer.testing import CliRunner

from tests.e2e.server import ServerProcess
from tests.peers import free_port
from warroom.cli.main import app
from warroom.client import shown_url as shown_address
from warroom.db import Database, shown_url

POSTGRES_URL = os.environ.get("WARROOM_TEST_POSTGRES_URL")
LEAK = "QueryPassLeak"


def test_shown_url_masks_both_kinds_of_password() -> None:
    assert shown_url("postgresql+psycopg://postgres@db:5432/x?password=QueryPassLeak&sslmode=require") == (
        "postgresql+psycopg://postgres@db:5432/x?password=***&sslmode=require"
    )
    assert shown_url("postgresql+psycopg://u:UserPass@db/x") == "postgresql+psycopg://u:***@db/x"
    assert shown_url("postgresql://u:UserPass@db/x?passwd=Other") == "postgresql://u:***@db/x?passwd=***"
    assert shown_url("sqlite:////var/lib/warroom/warroom.db") == "sqlite:////var/lib/warroom/warroom.db"
    assert shown_address("http://admin:UrlPassLeak@127.0.0.1:9/") == "http://admin:***@127.0.0.1:9/"
    assert shown_address("https://w.example/?password=x&a=1") == "https://w.example/?password=***&a=1"
    assert shown_address("https://w.example") == "https://w.example"


def test_db_upgrade_prints_no_password_from_the_query_string(tmp_path: Path) -> None:
    runner = CliRunner(env={"COLUMNS": "200", "WARROOM_DATA_DIR": str(tmp_path)})
    refused = runner.invoke(
        app,
        ["db", "upgrade", "--database-url", f"postgresql+psycopg://postgres@127.0.0.1:1/x?password={LEAK}"],
    )
    assert refused.exit_code == 1
    assert LEAK not in refused.output and "password=***" in refused.output, refused.output
    refused = runner.invoke(app, ["db", "upgrade", "--database-url", f"mysql://u:{LEAK}@h/x?password={LEAK}"])
    assert refused.exit_code == 1 and LEAK not in refused.output, refused.output
    if POSTGRES_URL is not None:
        upgraded = runner.invoke(app, ["db", "upgrade", "--database-url", f"{POSTGRES_URL}?password={LEAK}"])
        assert upgraded.exit_code == 0, upgraded.output
        assert LEAK not in upgraded.output and "password=***" in upgraded.output, upgraded.output


@pytest.mark.skipif(POSTGRES_URL is None, reason="needs WARROOM_TEST_POSTGRES_URL")
def test_serve_prints_no_password_from_the_query_string(tmp_path: Path) -> None:
    assert POSTGRES_URL is not None
    server = ServerProcess(
        database_url=f"{POSTGRES_URL}?password={LEAK}",
        config=None,
        data_dir=tmp_path,
        extra_args=["--no-worker"],
    )
    try:
        server.start(timeout=120)  # a loaded machine: the migration check and import take a while
    finally:
        server.stop()
    log = server.log()
    assert "database: " in log, log
    assert LEAK not in log and "password=***" in log, log


def test_the_cli_prints_no_password_from_warroom_url() -> None:
    runner = CliRunner(env={"COLUMNS": "200", "WARROOM_TOKEN": None})
    closed = f"http://admin:UrlPassLeak@127.0.0.1:{free_port()}"
    listed = runner.invoke(app, ["incident", "list"], env={"WARROOM_URL": closed})
    assert listed.exit_code == 1
    assert "UrlPassLeak" not in listed.output, listed.output
    # Refused before anything is sent (httpx would send it as Basic auth in place of the token).
    assert "WARROOM_URL 'http://admin:***@127.0.0.1:" in listed.output, listed.output


@pytest.fixture
def umask_022() -> Iterator[None]:
    previous = os.umask(0o022)
    yield
    os.umask(previous)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.usefixtures("umask_022")
def test_a_new_sqlite_database_and_its_wal_and_shm_are_owner_only(tmp_path: Path) -> None:
    path = tmp_path / "data" / "warroom.db"
    database = Database(f"sqlite:///{path}")
    try:
        with database.engine.begin() as connection:
            connection.execute(text("CREATE TABLE t (x TEXT)"))
            connection.execute(text("INSERT INTO t VALUES ('evidence')"))
        files = {p.name: mode(p) for p in path.parent.iterdir()}
        assert {"warroom.db", "warroom.db-wal", "warroom.db-shm"} <= set(files), files
        assert all(m == 0o600 for m in files.values()), {name: oct(m) for name, m in files.items()}
    finally:
        database.dispose()
    # It is a database like any other.
    assert sqlite3.connect(path).execute("SELECT x FROM t").fetchall() == [("evidence",)]


@pytest.mark.usefixtures("umask_022")
def test_an_existing_database_keeps_its_mode(tmp_path: Path) -> None:
    path = tmp_path / "warroom.db"
    sqlite3.connect(path).execute("CREATE TABLE t (x TEXT)").connection.close()
    path.chmod(0o640)  # set so on purpose (a backup user's group)
    database = Database(f"sqlite:///{path}")
    try:
        with database.engine.begin() as connection:
            connection.execute(text("INSERT INTO t VALUES ('x')"))
    finally:
        database.dispose()
    assert mode(path) == 0o640
