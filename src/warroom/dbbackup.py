"""``warroom db backup``: a consistent copy of the live database, written whole or not at all.

SQLite: SQLite's online backup API copies the database as one read transaction sees it, in one step. In WAL
mode a reader never blocks the writers (the server and the worker go on taking alerts), and the copy holds
every transaction committed before it began, also those still only in the ``-wal`` file, which a ``cp`` of
the database file misses. Copied page by page in several steps instead, the copy would start over at each
commit of another process: under steady intake it would never end.

PostgreSQL: ``pg_dump --format=custom`` on a snapshot this module exports, in which it also reads the
revision and the counts it reports: they are the dump's own.

Either way the copy is written to a temporary file beside the target, checked, flushed to disk, and only
then renamed into place: the target is the whole backup or untouched.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import sqlite3
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from sqlalchemy import Connection, text
from sqlalchemy.engine import URL, make_url

from warroom import migrate
from warroom.db import CONNECT_TIMEOUT, Database, shown_location

SQLITE = "sqlite"
POSTGRESQL = "postgresql"
# What a backup's counts are of: tables every Warroom schema has had.
COUNTED_TABLES = ("incidents", "alerts")
# Files SQLite keeps beside a database: a backup written over one of them would corrupt the live database.
_SQLITE_SIDE_FILES = ("-wal", "-shm", "-journal")
# What pg_dump says, in its last line, when it is older than the server ("aborting because of server
# version mismatch"; "server version: 16.1; pg_dump version: 15.5" comes first).
_VERSION_MISMATCH = "server version mismatch"
_STOP_SIGNALS = {signal.SIGINT, signal.SIGTERM, signal.SIGHUP}
_SQLITE_BUSY = (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)


class BackupRefused(Exception):
    """Nothing was done: the target, or the database, cannot be backed up as asked (exit 2)."""


class BackupFailed(Exception):
    """The copy could not be made, or did not check out: nothing was left at the target (exit 1)."""


class BackupUnsound(BackupFailed):
    """The copy was renamed into place but did not read back sound there: it was removed (exit 1)."""


@dataclass(frozen=True)
class BackupPlan:
    """What ``prepare`` checked: the database, where its copy goes, and what the database is at now."""

    database: Database
    target: Path
    force: bool
    backend: str
    revision: frozenset[str]
    lock_timeout: float  # seconds: SQLite's busy timeout, PostgreSQL's lock wait
    server_major: int | None = None  # PostgreSQL's major version, for pg_dump's hint


@dataclass(frozen=True)
class BackupReport:
    """What was backed up, where to, and what the copy holds."""

    database: str  # where, as messages say it: no password
    backend: str
    path: Path
    size_bytes: int
    revision: str
    incidents: int
    alerts: int
    seconds: float
    format: str


def revision_text(revisions: frozenset[str] | set[str]) -> str:
    return ", ".join(sorted(revisions))


# -- checking ------------------------------------------------------------------------------------------------


def sqlite_path(url: str | URL) -> Path | None:
    """The SQLite database file a URL names (None for another database, an in-memory one or a URI)."""
    parsed = make_url(url)
    file = parsed.database
    if parsed.get_backend_name() != SQLITE or not file or file == ":memory:" or file.startswith("file:"):
        return None
    return Path(os.path.abspath(file))


def live_files(database: Path) -> list[Path]:
    """The live database file and the files SQLite keeps beside it, under the name given and the one it
    resolves to: SQLite follows a symlinked database and keeps ``real.db-wal``, not ``link.db-wal``."""
    files: list[Path] = []
    for name in dict.fromkeys((database, Path(os.path.realpath(database)))):
        files += [name, *(Path(f"{name}{suffix}") for suffix in _SQLITE_SIDE_FILES)]
    return files


def _same_file(first: Path, second: Path) -> bool:
    if os.path.realpath(first) == os.path.realpath(second):
        return True
    with contextlib.suppress(OSError):
        return os.path.samefile(first, second)  # a hard link
    return False


def check_target(target: Path, *, force: bool, live: Sequence[Path] = (), sqlite_file: bool = True) -> Path:
    """The absolute path to write the backup to; ``BackupRefused`` if it cannot be (checked before the
    database is opened: a refusal writes nothing)."""
    path = Path(os.path.abspath(target))
    directory = path.parent
    if not directory.is_dir():
        there = "is not a directory" if directory.exists() else "does not exist"
        raise BackupRefused(f"the directory {directory} {there}: make it first, or give another path")
    for file in live:
        if _same_file(path, file):
            raise BackupRefused(
                f"{path} is the live database's own file ({file}): give a path outside it, such as "
                f"{directory / 'warroom-backup.db'}"
            )
    if path.is_dir():
        raise BackupRefused(
            f"{path} is a directory: give the backup file's path, such as {path / 'warroom.db'}"
        )
    if sqlite_file:
        refuse_stale_side_files(path)
    if not os.access(directory, os.W_OK | os.X_OK):
        raise BackupRefused(f"the directory {directory} is not writable by this user")
    if (path.exists() or path.is_symlink()) and not force:
        raise BackupRefused(f"{path} exists: give --force to replace it")
    return path


def refuse_stale_side_files(path: Path) -> None:
    """``BackupRefused`` if a ``-wal``, ``-shm`` or ``-journal`` is beside ``path``: SQLite would read a stale
    one as part of the new file put there (a corrupt backup), also with --force."""
    stale = [f"{path.name}{suffix}" for suffix in _SQLITE_SIDE_FILES if os.path.lexists(f"{path}{suffix}")]
    if stale:
        them = "them" if len(stale) > 1 else "it"
        raise BackupRefused(
            f"{path} has {', '.join(stale)} beside it, which SQLite would read as part of the backup: move "
            f"{them} aside with the old file, or give another path"
        )


def prepare(database: Database, target: Path, *, force: bool, lock_timeout: float) -> BackupPlan:
    """Check the target and the database (reachable, a Warroom database) before anything is written.
    ``BackupRefused`` when either will not do; errors reaching the database propagate, as SQLAlchemy's."""
    source = sqlite_path(database.url)
    if database.is_sqlite and source is None:
        raise BackupRefused(
            f"{shown_location(database.url)} is not a database file: there is nothing to copy"
        )
    path = check_target(
        target,
        force=force,
        live=live_files(source) if source is not None else (),
        sqlite_file=database.is_sqlite,
    )
    with database.engine.connect() as connection:
        revision = frozenset(migrate.revisions(connection))
        major = None if database.is_sqlite else _server_major(connection)
    if not revision:
        raise BackupRefused(
            f"the database at {shown_location(database.url)} has no Warroom schema: run warroom db upgrade "
            "first"
        )
    return BackupPlan(
        database=database,
        target=path,
        force=force,
        backend=SQLITE if database.is_sqlite else POSTGRESQL,
        revision=revision,
        lock_timeout=lock_timeout,
        server_major=major,
    )


def _server_major(connection: Connection) -> int:
    return int(connection.execute(text("SHOW server_version_num")).scalar_one()) // 10000


# -- writing -------------------------------------------------------------------------------------------------


def run(plan: BackupPlan) -> BackupReport:
    """Make the backup the plan describes. ``BackupFailed`` (or an interrupt) leaves nothing at the target
    and no temporary file."""
    started = time.monotonic()
    with _temporary(plan.target) as temporary:
        if plan.backend == SQLITE:
            revision, incidents, alerts = _copy_sqlite(plan, temporary)
            form = "SQLite database file"
            refuse_stale_side_files(plan.target)  # again: one may have been made while the copy ran
        else:
            revision, incidents, alerts = _dump_postgres(plan, temporary)
            form = "pg_dump custom archive"
        _publish(temporary, plan.target, force=plan.force)
    if plan.backend == SQLITE:
        # Read back where it is now, as a restore will: success is only said of a file sound at its name.
        try:
            revision, incidents, alerts = _check_sqlite_copy(plan.target, plan.revision)
        except BackupFailed as exc:
            with contextlib.suppress(FileNotFoundError):
                plan.target.unlink()
            raise BackupUnsound(f"{exc} (read back at {plan.target}, which was removed)") from None
    return BackupReport(
        database=shown_location(plan.database.url),
        backend=plan.backend,
        path=plan.target,
        size_bytes=plan.target.stat().st_size,
        revision=revision_text(revision),
        incidents=incidents,
        alerts=alerts,
        seconds=round(time.monotonic() - started, 3),
        format=form,
    )


@contextlib.contextmanager
def _temporary(target: Path) -> Iterator[Path]:
    """A new, empty file beside the target (same file system: the rename is atomic), readable by its owner
    only (a backup holds signing secrets and hashed tokens); removed, with what SQLite made beside it, unless
    it was renamed into place."""
    try:
        descriptor, name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".partial")
    except OSError as exc:
        raise BackupRefused(f"cannot write in {target.parent}: {exc.strerror or exc}") from None
    os.close(descriptor)
    temporary = Path(name)
    try:
        yield temporary
    finally:
        # A second signal (a dropped session may send SIGHUP, then SIGTERM) waits until the temporary file and
        # its -journal are gone, rather than stopping their removal half way; it is taken just after.
        held = signal.pthread_sigmask(signal.SIG_BLOCK, _STOP_SIGNALS)
        try:
            for leftover in (temporary, *(Path(f"{temporary}{suffix}") for suffix in _SQLITE_SIDE_FILES)):
                with contextlib.suppress(FileNotFoundError):
                    leftover.unlink()
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, held)


def _publish(temporary: Path, target: Path, *, force: bool) -> None:
    """The checked copy on disk, then at the target's name, then that name on disk."""
    try:
        _fsync(temporary)
        if force:
            os.replace(temporary, target)
        else:
            _link_new(temporary, target)
        _fsync(target.parent)
    except OSError as exc:
        raise BackupFailed(f"writing {target} failed: {exc.strerror or exc}") from None


def _link_new(temporary: Path, target: Path) -> None:
    """Rename without replacing: a file made at the target while the backup ran is kept, not overwritten."""
    try:
        os.link(temporary, target)
    except FileExistsError:
        raise BackupRefused(
            f"{target} exists (it appeared while the backup ran): give --force to replace it"
        ) from None
    except OSError:
        # A file system without hard links: the check before the copy has to do.
        if target.exists():
            raise BackupRefused(f"{target} exists: give --force to replace it") from None
        os.replace(temporary, target)
        return
    temporary.unlink()


def _fsync(path: Path) -> None:
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


# -- SQLite --------------------------------------------------------------------------------------------------


def _copy_sqlite(plan: BackupPlan, temporary: Path) -> tuple[frozenset[str], int, int]:
    """The live database copied into ``temporary`` (a standalone file in rollback-journal mode) and checked:
    its revision and counts."""
    destination = sqlite3.connect(temporary, isolation_level=None)
    try:
        with plan.database.engine.connect() as connection:
            # The engine's own connection: its busy timeout, and its check that the path still names the file
            # the server uses. No transaction of SQLAlchemy's: the backup takes its own read transaction.
            source = connection.connection.driver_connection
            assert isinstance(source, sqlite3.Connection)
            try:
                source.backup(destination, pages=-1, progress=_busy_for_at_most(plan.lock_timeout))
            except sqlite3.Error as exc:
                raise BackupFailed(f"copying the database failed: {_first_line(exc)}") from None
        # The copy is in WAL mode, as its source: one file with no -wal to keep beside it is what an archive
        # and a restore by mv want. Warroom turns WAL on again when it opens it.
        mode = destination.execute("PRAGMA journal_mode=DELETE").fetchone()[0]
    except sqlite3.Error as exc:
        raise BackupFailed(f"writing the copy in {temporary.parent} failed: {_first_line(exc)}") from None
    finally:
        destination.close()
    if mode != "delete":
        raise BackupFailed(f"the copy stayed in journal mode {mode}, not delete")
    return _check_sqlite_copy(temporary, plan.revision)


def _busy_for_at_most(seconds: float) -> Callable[[int, int, int], None]:
    """A backup progress callback that gives up once the source has been busy (locked) for ``seconds``: the
    busy timeout, as a write would wait. Python's backup loop would otherwise retry for ever."""
    busy_since: list[float] = []

    def progress(status: int, remaining: int, total: int) -> None:
        if status not in _SQLITE_BUSY:
            busy_since.clear()
        elif not busy_since:
            busy_since.append(time.monotonic())
        elif time.monotonic() - busy_since[0] > seconds:
            # Raised through sqlite3's backup, which then stops it.
            raise BackupFailed(
                f"the database stayed locked for more than {seconds:g} s (the busy timeout): try again"
            )

    return progress


def _check_sqlite_copy(copy: Path, revision: frozenset[str]) -> tuple[frozenset[str], int, int]:
    """The copy, read as a file of its own: sound, standalone, a Warroom database at the source's revision;
    its revision and counts."""
    if any(Path(f"{copy}{suffix}").exists() for suffix in ("-wal", "-journal")):
        raise BackupFailed("the copy is not a single file: SQLite left a -wal or -journal beside it")
    try:
        # Read-only, by URI: a checked file is not changed by being checked.
        connection = sqlite3.connect(f"file:{quote(str(copy))}?mode=ro", uri=True)
        try:
            found = [row[0] for row in connection.execute("PRAGMA quick_check")]
            if found != ["ok"]:
                raise BackupFailed(f"the copy failed SQLite's quick_check: {found[0]}")
            copied = _sqlite_revisions(connection)
            if copied != revision:
                raise BackupFailed(
                    f"the copy is at revision {revision_text(copied) or 'none'}, the database was at "
                    f"{revision_text(revision)}: was it migrated meanwhile? Try again"
                )
            incidents, alerts = (
                int(connection.execute(f"SELECT count(*) FROM {table}").fetchone()[0])
                for table in COUNTED_TABLES
            )
        finally:
            connection.close()
    except sqlite3.Error as exc:
        raise BackupFailed(f"the copy cannot be read back: {_first_line(exc)}") from None
    return copied, incidents, alerts


def _sqlite_revisions(connection: sqlite3.Connection) -> frozenset[str]:
    found = connection.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (migrate.VERSION_TABLE,)
    ).fetchone()
    if found is None:
        return frozenset()
    return frozenset(row[0] for row in connection.execute(f"SELECT version_num FROM {migrate.VERSION_TABLE}"))


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0][:300] if lines else type(exc).__name__


# -- PostgreSQL ----------------------------------------------------------------------------------------------


def libpq_command_url(url: str | URL) -> tuple[str, str | None]:
    """A SQLAlchemy PostgreSQL URL as libpq takes it (no ``+psycopg``), without its password; and the
    password, for PGPASSWORD: on a command line, any user of the machine could read it (``ps``)."""
    parsed = make_url(url)
    query = dict(parsed.query)
    password = parsed.password
    for name in ("password", "passwd"):
        given = query.pop(name, None)
        if given is not None and password is None:
            password = given if isinstance(given, str) else given[-1]
    # Made anew: ``URL.set`` leaves a part given as None as it was.
    plain = URL.create(
        POSTGRESQL,
        username=parsed.username,
        host=parsed.host,
        port=parsed.port,
        database=parsed.database,
        query=query,
    )
    return plain.render_as_string(hide_password=False), (str(password) if password is not None else None)


def _client_hint(major: int | None) -> str:
    package = f"postgresql-client-{major}" if major else "postgresql-client"
    version = f" {major}" if major else ""
    return (
        f"install the PostgreSQL client of the server's major version{version} or newer (Debian, Ubuntu: "
        f"{package}) and put its bin directory on PATH"
    )


def pg_dump_command() -> str:
    """Where ``pg_dump`` is; ``BackupFailed`` if it is not on PATH."""
    found = shutil.which("pg_dump")
    if found is None:
        raise BackupFailed("pg_dump is not on PATH")
    return found


def _dump_postgres(plan: BackupPlan, temporary: Path) -> tuple[frozenset[str], int, int]:
    """``pg_dump`` into ``temporary``, on a snapshot exported by a read-only transaction held open while it
    runs: the revision and counts read in that transaction are the dump's own."""
    try:
        pg_dump = pg_dump_command()
    except BackupFailed as exc:
        raise BackupFailed(f"{exc}: {_client_hint(plan.server_major)}") from None
    connection_url, password = libpq_command_url(plan.database.url)
    environment = {
        **os.environ,
        "PGCONNECT_TIMEOUT": os.environ.get("PGCONNECT_TIMEOUT", str(CONNECT_TIMEOUT)),
    }
    if password is not None:
        environment["PGPASSWORD"] = password
    engine = plan.database.engine.execution_options(
        isolation_level="REPEATABLE READ", postgresql_readonly=True
    )
    with engine.connect() as connection, connection.begin():
        snapshot = connection.execute(text("SELECT pg_export_snapshot()")).scalar_one()
        revision = frozenset(migrate.revisions(connection))
        incidents, alerts = (
            int(connection.execute(text(f"SELECT count(*) FROM {table}")).scalar_one())
            for table in COUNTED_TABLES
        )
        command = [
            pg_dump,
            "--format=custom",
            f"--file={temporary}",
            "--no-password",  # never a prompt: the password comes from PGPASSWORD or ~/.pgpass
            f"--lock-wait-timeout={max(1, round(plan.lock_timeout * 1000))}",
            f"--snapshot={snapshot}",
            f"--dbname={connection_url}",
        ]
        done = subprocess.run(command, env=environment, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        if done.stderr.strip():
            said = _first_line(Exception(done.stderr))
        elif done.returncode < 0:
            said = f"killed by {signal.Signals(-done.returncode).name}"
        else:
            said = f"exit status {done.returncode}"
        # The client hint only where it is the cure: not for a full disk or a refused login.
        hint = f" ({_client_hint(plan.server_major)})" if _VERSION_MISMATCH in done.stderr else ""
        raise BackupFailed(f"pg_dump failed: {said}{hint}")
    _check_archive(temporary, plan.server_major)
    if revision != plan.revision:
        raise BackupFailed(
            f"the database was migrated as the backup began (revision {revision_text(plan.revision)}, "
            f"then {revision_text(revision)}): try again"
        )
    return revision, incidents, alerts


def _check_archive(archive: Path, major: int | None) -> None:
    """The dump reads back as an archive listing Warroom's version table (``pg_restore --list``)."""
    pg_restore = shutil.which("pg_restore")
    if pg_restore is None:
        raise BackupFailed(f"pg_restore is not on PATH (it checks the dump): {_client_hint(major)}")
    listed = subprocess.run([pg_restore, "--list", str(archive)], capture_output=True, text=True, check=False)
    if listed.returncode != 0:
        raise BackupFailed(f"the dump cannot be read back: {_first_line(Exception(listed.stderr))}")
    if migrate.VERSION_TABLE not in listed.stdout:
        raise BackupFailed(f"the dump has no {migrate.VERSION_TABLE} table: it is not a Warroom database")
