"""SQLite: the database file under a running server. A file removed or replaced (a restore by ``mv``) under
it, or its WAL removed, used to go unnoticed: deliveries were answered 202 into a file nothing could read any
more. Now every delivery answered 2xx is in the database the path names afterwards, or it was refused with
503; /healthz says why; no empty database is made in a removed one's place. Real files, real removals."""

from __future__ import annotations

import logging
import os
import shutil
import sqlite3
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import make_url
from typer.testing import CliRunner

from tests.alerts.conftest import make_key
from tests.conftest import EXAMPLE_CONFIG
from tests.peers import free_port
from warroom.app import create_app
from warroom.cli.main import app as cli
from warroom.clock import clock
from warroom.context import AppContext


def database_path(context: AppContext) -> Path:
    return Path(make_url(context.settings.resolved_database_url).database or "")


def stored_dedup_keys(path: Path) -> set[str]:
    """The alerts in the database the path names, read by another process as an operator's tool would."""
    script = (
        "import sqlite3, sys; c = sqlite3.connect(f'file:{sys.argv[1]}?mode=rw', uri=True);"
        "assert c.execute('PRAGMA integrity_check').fetchall() == [('ok',)];"
        "print('\\n'.join(k for (k,) in c.execute('SELECT dedup_key FROM alerts')))"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(path)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    return set(done.stdout.split())


def deliver(api: TestClient, key: str, dedup_key: str) -> Any:
    return api.post(
        f"/api/v1/alerts?key={key}", json={"summary": f"disk full {dedup_key}", "dedup_key": dedup_key}
    )


def assert_refused(response: Any) -> None:
    assert response.status_code == 503, response.text
    assert response.headers["Retry-After"] == "5"
    assert response.json()["error"]["code"] == "database_unavailable"


def file_errors(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "warroom.db"
        and r.levelno == logging.ERROR
        and "under the running server" in r.getMessage()
    ]


def test_a_removed_database_file_is_refused_not_written_into_nor_made_anew(
    on_sqlite: AppContext, caplog: pytest.LogCaptureFixture
) -> None:
    context = on_sqlite
    path = database_path(context)
    key = make_key(context, "generic")
    caplog.set_level(logging.INFO, logger="warroom")
    with TestClient(create_app(context=context)) as api:
        assert deliver(api, key, "before").status_code == 202
        backup = path.with_name("backup.db")
        sqlite3.connect(path).backup(sqlite3.connect(backup))  # as an operator's backup would
        for name in (path.name, f"{path.name}-wal", f"{path.name}-shm"):
            path.with_name(name).unlink(missing_ok=True)

        for number in range(5):
            assert_refused(deliver(api, key, f"after-{number}"))
        health = api.get("/healthz")
        assert health.status_code == 503
        error = health.json()["error"]
        assert error["code"] == "database_file_changed"
        assert f"the database file {path} was removed under the running server" in error["message"]
        # No connection made an empty database in its place; one line said what happened.
        assert not path.exists()
        assert len(file_errors(caplog)) == 1, file_errors(caplog)

        # The operator restores the backup: once this server's connections to the removed file are closed,
        # new ones use it, and deliveries are stored in it.
        shutil.copyfile(backup, path)
        answers = [deliver(api, key, f"restored-{number}").status_code for number in range(12)]
        assert set(answers) <= {202, 503} and answers[-1] == 202, answers
        assert api.get("/healthz").status_code == 200
    accepted = {f"restored-{number}" for number, status in enumerate(answers) if status == 202}
    assert stored_dedup_keys(path) == {"before", *accepted}
    assert any("new connections use the Warroom database now at that path" in m for m in caplog.messages)


def test_a_database_file_replaced_during_traffic_loses_no_acknowledged_delivery(
    on_sqlite: AppContext, caplog: pytest.LogCaptureFixture
) -> None:
    context = on_sqlite
    path = database_path(context)
    key = make_key(context, "generic")
    backup = path.with_name("backup.db")
    sqlite3.connect(path).backup(sqlite3.connect(backup))
    caplog.set_level(logging.INFO, logger="warroom")
    with TestClient(create_app(context=context)) as api:
        answers: dict[str, int] = {}
        for number in range(40):
            if number == 20:
                os.replace(backup, path)  # ``mv backup.db warroom.db`` under the running server
            answers[f"d{number}"] = deliver(api, key, f"d{number}").status_code
        assert set(answers.values()) <= {202, 503}, answers
        assert answers["d39"] == 202, answers
        assert api.get("/healthz").status_code == 200
    acknowledged_after = {k for k, status in answers.items() if status == 202 and int(k[1:]) >= 20}
    # Every delivery acknowledged after the replacement is in the file the path names now; those before it
    # went with the replaced file (the backup predates them), not mixed into this one.
    assert stored_dedup_keys(path) == acknowledged_after
    assert len(file_errors(caplog)) == 1, file_errors(caplog)


def test_a_removed_wal_file_loses_no_acknowledged_delivery(
    on_sqlite: AppContext, caplog: pytest.LogCaptureFixture
) -> None:
    context = on_sqlite
    path = database_path(context)
    key = make_key(context, "generic")
    wal = path.with_name(f"{path.name}-wal")
    caplog.set_level(logging.INFO, logger="warroom")
    with TestClient(create_app(context=context)) as api:
        answers: dict[str, int] = {}
        for number in range(30):
            if number == 15:
                assert wal.exists()
                wal.unlink()  # ``rm warroom.db-wal`` under the running server
            answers[f"d{number}"] = deliver(api, key, f"d{number}").status_code
        assert set(answers.values()) <= {202, 503}, answers
        assert answers["d29"] == 202
        # Read by another process while the server runs (and would be killed with -9): all there.
        acknowledged = {k for k, status in answers.items() if status == 202}
        assert acknowledged <= stored_dedup_keys(path)
        assert api.get("/healthz").status_code == 200
    assert len(file_errors(caplog)) == 1, file_errors(caplog)
    assert any("were copied into the database file" in m for m in caplog.messages)


def test_healthz_says_writes_are_failing(on_sqlite: AppContext) -> None:
    """Commits that cannot be written (here an immutable WAL file, ``chattr +i``: SQLite's "disk I/O error",
    as a full disk gives "database or disk is full"): reads still work, but /healthz answers 503
    ``writes_failing`` while the last writes failed within a minute and none succeeded since."""
    context = on_sqlite
    path = database_path(context)
    key = make_key(context, "generic")
    wal = path.with_name(f"{path.name}-wal")
    with TestClient(create_app(context=context)) as api:
        assert deliver(api, key, "first").status_code == 202
        assert api.get("/healthz").status_code == 200
        if not _immutable(wal):
            pytest.skip("chattr +i needs root and a file system that has it")
        try:
            assert_refused(deliver(api, key, "refused"))
            health = api.get("/healthz")
            assert health.status_code == 503, health.text
            error = health.json()["error"]
            assert error["code"] == "writes_failing"
            assert "writes to the database have failed since" in error["message"]
            assert "disk I/O error" in error["message"]
            # A minute after the last failed write, with none tried since, the node is not held out for it.
            clock.set(clock.now())
            clock.advance(timedelta(seconds=61))
            assert api.get("/healthz").status_code == 200
            assert_refused(deliver(api, key, "refused"))
            assert api.get("/healthz").status_code == 503
        finally:
            subprocess.run(["chattr", "-i", str(wal)], check=True)
        # One write that succeeds clears it.
        assert deliver(api, key, "fits").status_code == 202
        assert api.get("/healthz").status_code == 200
    assert stored_dedup_keys(path) == {"first", "fits"}


def _immutable(path: Path) -> bool:
    """``chattr +i`` (as root, on a file system that has it); False where it cannot be done."""
    if os.geteuid() != 0 or shutil.which("chattr") is None:
        return False
    return subprocess.run(["chattr", "+i", str(path)], capture_output=True, check=False).returncode == 0


def test_a_read_only_data_directory_says_it_must_be_writable(tmp_path: Path, sqlite_template: Path) -> None:
    directory = tmp_path / "rodir"
    directory.mkdir()
    shutil.copyfile(sqlite_template, directory / "r.db")
    if not _immutable(directory):
        directory.chmod(0o555)
        if os.access(directory, os.W_OK):
            pytest.skip("cannot make a directory read-only here (root without chattr)")
    try:
        runner = CliRunner(env={"COLUMNS": "300"})
        result = runner.invoke(
            cli,
            [
                "serve",
                *("--port", str(free_port())),
                *("--database-url", f"sqlite:///{directory / 'r.db'}", "--config", str(EXAMPLE_CONFIG)),
            ],
        )
    finally:
        subprocess.run(["chattr", "-i", str(directory)], capture_output=True, check=False)
        directory.chmod(0o755)
    said = " ".join(result.output.split())
    assert result.exit_code == 1, said
    assert f"its directory {directory} is not writable" in said, said
    assert "-wal and -shm" in said
