"""``warroom db backup PATH``: a consistent copy of the live database, taken while ``warroom serve`` takes
alerts, written whole or not at all. Before it, the README told operators to back the database up and Warroom
gave no way to: a ``cp`` of a live SQLite file misses what is still only in its ``-wal``. Real servers, real
files, the real PostgreSQL and pg_dump."""

from __future__ import annotations

import hashlib
import json
import os
import resource
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from typer.testing import CliRunner

from tests.conftest import EXAMPLE_CONFIG, POSTGRES_URL, _truncate_postgres, require_peer
from tests.e2e.server import ServerProcess, create_token, run_cli
from tests.peers import wait_until
from warroom import migrate
from warroom.app import create_app
from warroom.cli.main import app as cli
from warroom.context import AppContext
from warroom.db import Database
from warroom.orgconfig import OrgConfig
from warroom.settings import Settings


def alert_keys(path: Path) -> set[str]:
    """The dedup keys of the alerts in a SQLite file, read as a file of its own (read-only)."""
    connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return {key for (key,) in connection.execute("SELECT dedup_key FROM alerts")}
    finally:
        connection.close()


def revisions(path: Path) -> set[str]:
    connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return {revision for (revision,) in connection.execute("SELECT version_num FROM alembic_version")}
    finally:
        connection.close()


class Sender:
    """Posts alerts to a running server from a thread, one request at a time, until stopped; remembers
    which were answered 2xx, and anything else it got."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.acknowledged: list[str] = []
        self.refused: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._send, daemon=True)

    def _send(self) -> None:
        with httpx.Client(timeout=30) as client:
            number = 0
            while not self._stop.is_set():
                number += 1
                key = f"disk-{number}"
                try:
                    answer = client.post(
                        self.url, json={"summary": f"disk full on db-{number}", "dedup_key": key}
                    )
                except httpx.HTTPError as exc:
                    self.refused.append(f"{key}: {exc!r}")
                    continue
                if answer.is_success:
                    self.acknowledged.append(key)
                else:
                    self.refused.append(f"{key}: {answer.status_code} {answer.text[:200]}")

    def __enter__(self) -> Sender:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def acknowledged_now(self) -> set[str]:
        return set(self.acknowledged)


def missed_by_a_file_copy(live: Path, sender: Sender, scratch: Path) -> set[str]:
    """What ``cp warroom.db`` (the file alone, its -wal left) would lose of what was acknowledged: the test's
    own proof that a copy that ignores the WAL fails it. Tried a few times: a checkpoint may just have copied
    the WAL into the file."""
    scratch.mkdir()
    for attempt in range(10):
        acknowledged = sender.acknowledged_now()
        naive = scratch / f"cp-{attempt}.db"
        shutil.copyfile(live, naive)
        missed = acknowledged - alert_keys(naive)
        if missed:
            return missed
        time.sleep(0.2)
    return set()


@pytest.mark.e2e
def test_a_backup_under_intake_holds_every_acknowledged_alert_and_serves_after_a_restore(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    live = data / "warroom.db"
    env = {
        "WARROOM_DATA_DIR": str(data),
        "WARROOM_DATABASE_URL": f"sqlite:///{live}",
        "WARROOM_CONFIG": str(EXAMPLE_CONFIG),
    }
    responder = create_token("backup-responder", "responder", env=env)
    key = run_cli("integration", "create", "--name", "nagios", "--type", "generic", env=env).stdout.split()[
        -1
    ]
    backups = tmp_path / "backups"
    backups.mkdir()
    copy = backups / "warroom-nightly.db"
    with ServerProcess(
        database_url=env["WARROOM_DATABASE_URL"], config=EXAMPLE_CONFIG, data_dir=data
    ) as server:
        created = httpx.post(
            f"{server.url}/api/v1/incidents",
            json={"title": "Checkout errors", "severity": "P2", "services": ["api"]},
            headers={"Authorization": f"Bearer {responder}"},
        )
        assert created.status_code == 201, created.text
        with Sender(f"{server.url}/api/v1/alerts?key={key}") as sender:
            wait_until(lambda: len(sender.acknowledged) >= 100, timeout=60)
            # A copy of the file alone would lose acknowledged alerts: they are only in the -wal.
            assert Path(f"{live}-wal").exists()
            assert missed_by_a_file_copy(live, sender, tmp_path / "naive")
            before = sender.acknowledged_now()
            done = run_cli("db", "backup", str(copy), "--json", env=env)
            during = sender.acknowledged_now() - before
            wait_until(lambda: len(sender.acknowledged) >= len(before) + len(during) + 20)
        # The server took alerts all along: none refused while the backup ran.
        assert not sender.refused, sender.refused[:5]
        assert during, "no alert was acknowledged while db backup ran"

        # A standalone file: sound, no -wal needed, at the live database's revision.
        assert sorted(path.name for path in backups.iterdir()) == ["warroom-nightly.db"]
        connection = sqlite3.connect(f"file:{copy}?mode=ro", uri=True)
        try:
            assert connection.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
            assert connection.execute("PRAGMA journal_mode").fetchone() == ("delete",)
        finally:
            connection.close()
        assert revisions(copy) == revisions(live) == set(migrate.heads())
        in_copy = alert_keys(copy)
        assert before <= in_copy, sorted(before - in_copy)[:5]
        assert os.stat(copy).st_mode & 0o077 == 0  # like the live file: it holds secrets

        said = json.loads(done.stdout)
        assert said["alerts"] == len(in_copy) and said["incidents"] == 1
        assert said["revision"] == ", ".join(sorted(migrate.heads()))
        assert said["database"] == str(live) and said["path"] == str(copy)
        assert said["size_bytes"] == copy.stat().st_size
        assert said["secret_key"] == str(data / "secret_key")

    # A restore: the copy moved into a data directory of its own with the secret key kept beside it.
    restored = tmp_path / "restored"
    restored.mkdir()
    shutil.copy2(data / "secret_key", restored / "secret_key")
    shutil.move(copy, restored / "warroom.db")
    restored_url = f"sqlite:///{restored / 'warroom.db'}"
    with ServerProcess(database_url=restored_url, config=EXAMPLE_CONFIG, data_dir=restored) as server:
        page = httpx.get(
            f"{server.url}/api/v1/alerts",
            params={"limit": 1},
            headers={"Authorization": f"Bearer {responder}"},
        )
        assert page.status_code == 200, page.text
        assert page.json()["total"] == len(in_copy)
    # The chain checks out with the server's secret key, kept beside it.
    restored_env = {**env, "WARROOM_DATA_DIR": str(restored), "WARROOM_DATABASE_URL": restored_url}
    assert "verified" in run_cli("audit", "verify", env=restored_env).stdout


@pytest.fixture
def live(tmp_path: Path, sqlite_template: Path) -> Path:
    path = tmp_path / "data" / "warroom.db"
    path.parent.mkdir()
    shutil.copyfile(sqlite_template, path)
    return path


def test_the_text_says_what_where_how_much_and_to_keep_the_secret_key(tmp_path: Path, live: Path) -> None:
    runner = CliRunner(
        env={"COLUMNS": "80", "WARROOM_DATA_DIR": str(live.parent), "WARROOM_SECRET_KEY": None}
    )
    done = runner.invoke(cli, ["db", "backup", str(tmp_path / "b.db"), "--database-url", f"sqlite:///{live}"])
    assert done.exit_code == 0, done.output
    said = " ".join(done.stdout.split())
    assert f"backed up {live}" in said and f"to {tmp_path / 'b.db'}" in said, said
    assert "0 incidents, 0 alerts" in said and " MB" in said and "revision" in said, said
    assert f"keep the secret key ({live.parent / 'secret_key'}) with the backup" in said, said
    assert "audit verify" in said, said
    with_key = CliRunner(env={"WARROOM_SECRET_KEY": "k" * 32}).invoke(
        cli, ["db", "backup", str(tmp_path / "c.db"), "--database-url", f"sqlite:///{live}"]
    )
    assert "keep the secret key (WARROOM_SECRET_KEY)" in " ".join(with_key.stdout.split())


# -- refusals: exit 2, one line, nothing written -----------------------------------------------------------


def listing(directory: Path) -> dict[str, str]:
    """Every file in a directory and a digest of its bytes."""
    return {
        path.name: hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else "dir"
        for path in sorted(directory.iterdir())
    }


def refused(args: list[str], database_url: str) -> str:
    """``db backup ARGS`` was refused: exit 2, one line on stderr, nothing on stdout; that line."""
    result = CliRunner(env={"COLUMNS": "200"}).invoke(
        cli, ["db", "backup", *args, "--database-url", database_url]
    )
    assert result.exit_code == 2, (result.exit_code, result.output)
    assert isinstance(result.exception, SystemExit), repr(result.exception)
    assert result.stdout == ""
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    return " ".join(result.stderr.split())


def test_an_existing_file_is_kept_unless_force(tmp_path: Path, live: Path) -> None:
    url = f"sqlite:///{live}"
    target = tmp_path / "out" / "backup.db"
    target.parent.mkdir()
    target.write_bytes(b"last week's backup")
    before = listing(target.parent)
    said = refused([str(target)], url)
    assert f"{target} exists: give --force to replace it" in said
    assert listing(target.parent) == before

    forced = CliRunner().invoke(cli, ["db", "backup", str(target), "--force", "--database-url", url])
    assert forced.exit_code == 0, forced.output
    assert list(target.parent.iterdir()) == [target]
    assert revisions(target) == set(migrate.heads())


def test_a_stale_wal_shm_or_journal_beside_path_is_refused_also_with_force(
    tmp_path: Path, live: Path
) -> None:
    """SQLite reads a -wal (or a hot -journal) it finds beside a file as part of it: a backup renamed in
    beside a stale one would read back corrupt ("database disk image is malformed")."""
    url = f"sqlite:///{live}"
    out = tmp_path / "out"
    out.mkdir()
    stage = out / "stage.db"
    made = CliRunner().invoke(cli, ["db", "backup", str(stage), "--database-url", url])
    assert made.exit_code == 0, made.output
    # A real stale WAL, as a process killed with uncheckpointed commits leaves it: saved before the clean
    # close checkpoints and deletes it, then put back.
    reader = sqlite3.connect(stage, isolation_level=None)
    reader.execute("PRAGMA journal_mode=WAL")
    reader.execute("PRAGMA wal_autocheckpoint=0")
    reader.execute("CREATE TABLE scratch (body BLOB)")
    reader.execute("INSERT INTO scratch VALUES (randomblob(100000))")
    stale_wal = Path(f"{stage}-wal").read_bytes()
    reader.close()
    Path(f"{stage}-wal").write_bytes(stale_wal)
    before = listing(out)
    said = refused([str(stage), "--force"], url)
    assert f"{stage} has stage.db-wal beside it" in said and "move it aside with the old file" in said, said
    assert listing(out) == before
    Path(f"{stage}-shm").write_bytes(b"")
    assert "has stage.db-wal, stage.db-shm beside it" in refused([str(stage), "--force"], url)
    for suffix in ("-wal", "-shm"):
        Path(f"{stage}{suffix}").unlink()
    # A -journal alone, and beside a PATH that is not there yet.
    Path(f"{out / 'new.db'}-journal").write_bytes(b"")
    for target in (stage, out / "new.db"):
        Path(f"{target}-journal").write_bytes(b"")
        said = refused([str(target), "--force"], url)
        assert f"has {target.name}-journal beside it" in said, said
    assert not (out / "new.db").exists()


def test_a_missing_directory_is_not_made(tmp_path: Path, live: Path) -> None:
    target = tmp_path / "nowhere" / "backup.db"
    said = refused([str(target)], f"sqlite:///{live}")
    assert f"the directory {tmp_path / 'nowhere'} does not exist" in said
    assert not target.parent.exists()


def test_the_live_database_is_never_the_target(tmp_path: Path, live: Path) -> None:
    url = f"sqlite:///{live}"
    # Files SQLite keeps beside it too, under any name that reaches them.
    Path(f"{live}-wal").write_bytes(b"")
    (tmp_path / "link.db").symlink_to(live)
    os.link(live, tmp_path / "hard.db")
    before, beside = listing(live.parent), listing(tmp_path)
    for target in (
        live,
        Path(f"{live}-wal"),
        Path(f"{live}-shm"),
        tmp_path / "link.db",
        tmp_path / "hard.db",
    ):
        for force in ([], ["--force"]):
            said = refused([str(target), *force], url)
            assert "is the live database's own file" in said, said
    assert listing(live.parent) == before and listing(tmp_path) == beside


def test_the_live_wal_of_a_symlinked_database_is_never_the_target(tmp_path: Path, live: Path) -> None:
    """SQLite follows a symlinked database path and keeps its -wal and -shm beside the real file."""
    link = tmp_path / "link.db"
    link.symlink_to(live)
    url = f"sqlite:///{link}"
    opened = sqlite3.connect(link)  # the live -wal and -shm, where SQLite makes them
    try:
        opened.execute("PRAGMA journal_mode=WAL")
        opened.execute("CREATE TABLE scratch (body TEXT)")
        assert Path(f"{live}-wal").exists() and not Path(f"{link}-wal").exists()
        before = listing(live.parent)
        for suffix in ("-wal", "-shm", "-journal"):
            said = refused([f"{live}{suffix}", "--force"], url)
            assert f"is the live database's own file ({live}{suffix})" in said, said
        assert listing(live.parent) == before
    finally:
        opened.close()


def test_a_database_that_is_not_there_or_not_warroom_s_is_refused(tmp_path: Path) -> None:
    target = tmp_path / "backup.db"
    said = refused([str(target)], f"sqlite:///{tmp_path / 'none.db'}")
    assert f"no database at {tmp_path / 'none.db'}" in said and "warroom db upgrade" in said
    other = tmp_path / "other.db"
    sqlite3.connect(other).execute("CREATE TABLE notes (body TEXT)").connection.commit()
    said = refused([str(target)], f"sqlite:///{other}")
    assert f"the database at {other} has no Warroom schema: run warroom db upgrade first" in said
    said = refused([str(target)], "postgresql+psycopg://warroom:hunter2@127.0.0.1:1/warroom")
    assert "cannot use the database at postgresql+psycopg://warroom:***@127.0.0.1:1/warroom" in said
    assert "hunter2" not in said
    assert sorted(path.name for path in tmp_path.iterdir()) == ["other.db"]


def _at_most_bytes(limit: int) -> None:
    """In the child: files it writes may not grow past ``limit`` (EFBIG, as a full disk fails a write)."""
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))


def test_a_copy_that_cannot_be_written_leaves_nothing(tmp_path: Path, live: Path) -> None:
    """A write that fails part way (here the file size limit; a full disk alike): exit 1, one line, no
    partial file at PATH nor a temporary one beside it."""
    out = tmp_path / "out"
    out.mkdir()
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "warroom",
            "db",
            "backup",
            str(out / "b.db"),
            "--database-url",
            f"sqlite:///{live}",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        preexec_fn=lambda: _at_most_bytes(live.stat().st_size // 3),
        env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1", "COLUMNS": "200"},
        check=False,
    )
    assert done.returncode == 1, (done.stdout, done.stderr)
    assert "nothing was written to" in done.stderr and "Traceback" not in done.stderr, done.stderr
    assert list(out.iterdir()) == []


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
def test_ctrl_c_sigterm_or_sighup_during_the_copy_leaves_nothing(
    tmp_path: Path, live: Path, stop: signal.Signals
) -> None:
    """Stopped while it copies (Ctrl-C, a service manager, a dropped ssh session): exit 130, the temporary
    file and its journal removed, PATH not made."""
    padding = sqlite3.connect(live)
    padding.execute("CREATE TABLE padding (body BLOB)")  # a copy that takes a moment
    padding.executemany("INSERT INTO padding VALUES (randomblob(1000000))", [()] * 60)
    padding.commit()
    padding.close()
    out = tmp_path / "out"
    out.mkdir()
    backup = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "warroom",
            "db",
            "backup",
            str(out / "b.db"),
            "--database-url",
            f"sqlite:///{live}",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_until(lambda: any(out.iterdir()) or backup.poll() is not None, timeout=60, interval=0.01)
        backup.send_signal(stop)
        _, stderr = backup.communicate(timeout=60)
    finally:
        if backup.poll() is None:
            backup.kill()
    if backup.returncode == 0:  # it had renamed the copy into place already: then it is whole
        assert list(out.iterdir()) == [out / "b.db"] and revisions(out / "b.db") == set(migrate.heads())
        return
    assert backup.returncode == 130, stderr
    assert "interrupted; nothing was written to" in stderr, stderr
    assert list(out.iterdir()) == []


# -- PostgreSQL ---------------------------------------------------------------------------------------------


def test_a_libpq_url_for_pg_dump_carries_no_password() -> None:
    from warroom.dbbackup import libpq_command_url

    assert libpq_command_url("postgresql+psycopg://ops:p%40ss@db.internal:5433/warroom?sslmode=require") == (
        "postgresql://ops@db.internal:5433/warroom?sslmode=require",
        "p@ss",
    )
    assert libpq_command_url("postgresql+psycopg://ops@db/warroom?password=s3cret") == (
        "postgresql://ops@db/warroom",
        "s3cret",
    )


@pytest.fixture
def on_postgres(tmp_path: Path, org: OrgConfig, request: pytest.FixtureRequest) -> Iterator[AppContext]:
    if not POSTGRES_URL:
        pytest.skip("WARROOM_TEST_POSTGRES_URL is not set")
    url: str = request.getfixturevalue("postgres_migrated")
    _truncate_postgres(url)
    settings = Settings(data_dir=tmp_path, database_url=url, config=EXAMPLE_CONFIG, run_worker=False)
    db = Database.from_settings(settings)
    yield AppContext(settings=settings, db=db, org=org)
    db.dispose()


@pytest.fixture
def scratch_postgres() -> Iterator[str]:
    """A new, empty database beside the test one, dropped afterwards."""
    assert POSTGRES_URL
    base = make_url(POSTGRES_URL)
    name = f"{base.database}_backup_restore_{os.getpid()}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield base.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def counts(url: str) -> dict[str, Any]:
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            return {
                table: connection.execute(text(f"SELECT count(*) FROM {table}")).scalar_one()
                for table in ("incidents", "alerts", "timeline_entries", "api_tokens")
            } | {"revision": set(connection.scalars(text("SELECT version_num FROM alembic_version")))}
    finally:
        engine.dispose()


def test_postgres_backup_restores_with_pg_restore(
    on_postgres: AppContext, scratch_postgres: str, tmp_path: Path
) -> None:
    require_peer(shutil.which("pg_dump") is not None, "pg_dump is not installed (postgresql-client)")
    require_peer(shutil.which("pg_restore") is not None, "pg_restore is not installed (postgresql-client)")
    from tests.alerts.conftest import make_key
    from warroom.auth import service as auth_service
    from warroom.auth.models import Role
    from warroom.dbbackup import libpq_command_url

    context = on_postgres
    key = make_key(context, "generic")
    with context.db.write() as session:
        token = auth_service.create_token(session, name="responder", role=Role.responder).token
    with TestClient(create_app(context=context)) as api:
        for number in range(25):
            answer = api.post(
                f"/api/v1/alerts?key={key}", json={"summary": f"disk {number}", "dedup_key": str(number)}
            )
            assert answer.status_code == 202, answer.text
        created = api.post(
            "/api/v1/incidents",
            json={"title": "Checkout errors", "severity": "P2", "services": ["api"]},
            headers={"Authorization": f"Bearer {token}"},
        )
        assert created.status_code == 201, created.text
    url = context.settings.resolved_database_url
    dump = tmp_path / "warroom.dump"
    done = run_cli(
        "db", "backup", str(dump), "--json", "--database-url", url, env={"WARROOM_DATA_DIR": str(tmp_path)}
    )
    said = json.loads(done.stdout)
    live = counts(url)
    assert said["alerts"] == live["alerts"] == 25 and said["incidents"] == live["incidents"] == 1
    assert said["format"] == "pg_dump custom archive" and said["size_bytes"] == dump.stat().st_size
    assert sorted(path.name for path in tmp_path.iterdir() if path.name.startswith(".warroom")) == []

    restored = subprocess.run(
        [
            "pg_restore",
            "--clean",
            "--if-exists",
            "--no-owner",
            "--dbname",
            libpq_command_url(scratch_postgres)[0],
            str(dump),
        ],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, **({"PGPASSWORD": p} if (p := libpq_command_url(scratch_postgres)[1]) else {})},
    )
    assert restored.returncode == 0, restored.stderr
    assert counts(scratch_postgres) == live

    # Refused as on SQLite: the archive is kept.
    before = dump.read_bytes()
    again = run_cli("db", "backup", str(dump), "--database-url", url, check=False)
    assert again.returncode == 2 and "exists: give --force" in again.stderr
    assert dump.read_bytes() == before


def test_postgres_without_pg_dump_says_what_to_install(on_postgres: AppContext, tmp_path: Path) -> None:
    url = on_postgres.settings.resolved_database_url
    done = run_cli(
        "db",
        "backup",
        str(tmp_path / "warroom.dump"),
        "--database-url",
        url,
        env={"PATH": str(tmp_path / "bin")},
        check=False,
    )
    assert done.returncode == 1, done.stderr
    said = " ".join(done.stderr.split())
    assert "pg_dump is not on PATH" in said and "postgresql-client-" in said, said
    assert list(tmp_path.iterdir()) == []


def test_postgres_pg_dump_failing_otherwise_gets_no_client_hint(
    on_postgres: AppContext, tmp_path: Path
) -> None:
    """A pg_dump that fails for another reason than its version (here a write past the file size limit, as
    a full disk fails it) is quoted, without "install the PostgreSQL client" advice that would not help."""
    require_peer(shutil.which("pg_dump") is not None, "pg_dump is not installed (postgresql-client)")
    out = tmp_path / "out"
    out.mkdir()
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "warroom",
            "db",
            "backup",
            str(out / "warroom.dump"),
            "--database-url",
            on_postgres.settings.resolved_database_url,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        preexec_fn=lambda: _at_most_bytes(2000),  # inherited by pg_dump
        env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1", "COLUMNS": "200"},
        check=False,
    )
    assert done.returncode == 1, (done.stdout, done.stderr)
    said = " ".join(done.stderr.split())
    # pg_dump gets SIGXFSZ back at its default (Python's restore_signals): killed by it, as it writes.
    assert "pg_dump failed: killed by SIGXFSZ" in said, said
    assert "install the PostgreSQL client" not in said and "postgresql-client" not in said, said
    assert list(out.iterdir()) == []

    # What an older pg_dump says of a newer server (its own words, from a stand-in: one pg_dump is installed)
    # still gets the hint.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "pg_dump").write_text(
        "#!/bin/sh\necho 'pg_dump: error: server version: 99.0; pg_dump version: 15.5' >&2\n"
        "echo 'pg_dump: detail: aborting because of server version mismatch' >&2\nexit 1\n"
    )
    (bin_dir / "pg_dump").chmod(0o755)
    older = run_cli(
        "db",
        "backup",
        str(out / "warroom.dump"),
        "--database-url",
        on_postgres.settings.resolved_database_url,
        env={"PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"},
        check=False,
    )
    said = " ".join(older.stderr.split())
    assert older.returncode == 1 and "server version: 99.0" in said, said
    assert "install the PostgreSQL client of the server's major version" in said, said
    assert list(out.iterdir()) == []
