"""SQLite: the database file under a running server.

A SQLite connection keeps the file it opened, whatever its path names later. A database file removed (``rm``)
or replaced (``mv backup.db warroom.db``) under the running server would go on taking writes into a file
nothing can reach any more, and a removed ``-wal`` file takes with it every transaction not yet copied into
the database file. So each connection records the (device, inode) of the database file and of its WAL when it
opens them, and the path is compared with them cheaply (a ``stat`` or two): when a pool connection is checked
out, before each commit, and per intake batch. A connection whose files the path no longer names is dropped,
and a commit through it is refused (``DatabaseFileChanged``, an ``OperationalError``: 503 with Retry-After).

- The path names no file: every connection is refused until an operator restores the file or ``warroom db
  upgrade`` makes a new one. A connection never creates the file (SQLite would make an empty one): only the
  engine's first connection may (``db upgrade``, a first start).
- The path names another file: once this process's connections to the old one are closed (the last one to
  close takes the old ``-wal`` and ``-shm`` away; before that a new connection would read the old WAL as the
  new file's), new connections use the new file if it is a Warroom database (a restore), and the log says so.
- Whenever the path stops naming the engine's file, the first connection that notices copies the WAL's
  transactions into that file (a checkpoint through its open descriptors, wherever the file went) before it
  is dropped: a file moved away holds everything acknowledged on its own, and its WAL left at the path holds
  nothing.
- The path names the same file again (same device and inode: ``mv warroom.db x; mv x warroom.db``): it is
  used again as it is, its ``-wal`` and ``-shm`` kept. SQLite checks a WAL only against itself (its salts and
  checksums), never against the database file, so a WAL is removed only when it provably is another file's:
  one this process's connections had open beside a database that is no longer the one at the path.
- The WAL was removed: a connection that still has it open copies its transactions into the database file
  (a checkpoint) before any connection opens a new WAL; then all go on, nothing acknowledged lost.

Also kept here: whether commits that wrote have been failing (a full disk, an immutable file), for /healthz.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import threading
import weakref
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote

from warroom.clock import clock
from warroom.migrate import VERSION_TABLE

log = logging.getLogger("warroom.db")

FileId = tuple[int, int]  # (st_dev, st_ino)

# SQLite's primary result codes of a write the file refused: PERM, READONLY, IOERR, CORRUPT, FULL, CANTOPEN,
# NOTADB. Not BUSY or LOCKED: another process holding the write lock is not this node's file failing.
_FILE_FAILURES = frozenset({3, 8, 10, 11, 13, 14, 26})
# How long failed writes, with none succeeding since, keep /healthz at 503.
WRITES_FAILING_WINDOW = timedelta(minutes=1)


def file_id(path: str) -> FileId | None:
    try:
        status = os.stat(path)
    except FileNotFoundError:
        return None
    return (status.st_dev, status.st_ino)


class DatabaseFileChanged(sqlite3.OperationalError):
    """The path no longer names the file (or WAL) a connection has open, or names one that cannot be used
    yet. An ``OperationalError``: answered 503 with Retry-After, as any database that cannot be used."""


@dataclass(frozen=True)
class OpenedFiles:
    """What a connection opened: the database file, and its WAL (None: there was none yet)."""

    database: FileId
    wal: FileId | None


class WatchedConnection(sqlite3.Connection):
    """sqlite3's connection (the engine's ``factory``), knowing the files it opened and reporting whether
    each commit that wrote something succeeded."""

    files: OpenedFiles | None = None
    watch: SQLiteFile | None = None
    changes_at_begin = 0  # ``total_changes`` when its transaction began (set by the engine's begin hook)

    def commit(self) -> None:
        watch = self.watch
        wrote = watch is not None and self.in_transaction and self.total_changes != self.changes_at_begin
        try:
            super().commit()
        except sqlite3.Error as exc:
            if wrote and (getattr(exc, "sqlite_errorcode", 0) & 0xFF) in _FILE_FAILURES:
                assert watch is not None
                watch.writes.failed(exc)
            raise
        if wrote:
            assert watch is not None
            watch.writes.succeeded()

    def close(self) -> None:
        watch = self.watch
        if watch is not None:
            watch.forget(self)
        super().close()


class WriteOutcomes:
    """Whether commits that wrote have been failing: since when, why, and none succeeding since."""

    def __init__(self) -> None:
        self.first_failed_at: datetime | None = None
        self.last_failed_at: datetime | None = None
        self.reason = ""

    def failed(self, exc: BaseException) -> None:
        now = clock.now()
        if self.first_failed_at is None:
            self.first_failed_at = now
        self.last_failed_at = now
        self.reason = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__

    def succeeded(self) -> None:
        if self.first_failed_at is not None:  # the hot path: one attribute read
            self.first_failed_at = self.last_failed_at = None

    def problem(self) -> str | None:
        first, last = self.first_failed_at, self.last_failed_at
        if first is None or last is None or clock.now() - last >= WRITES_FAILING_WINDOW:
            return None
        since = first.isoformat(timespec="seconds")
        return f"writes to the database have failed since {since}, none succeeded since: {self.reason}"


class SQLiteFile:
    """The watch over one engine's database file (see the module's docstring)."""

    def __init__(self, path: str) -> None:
        self.path = os.path.abspath(path)
        self.wal = f"{self.path}-wal"
        self.shm = f"{self.path}-shm"
        # The file the engine's connections use: None until the first connection opened (or made) it.
        self.current: FileId | None = None
        self.writes = WriteOutcomes()
        # Reentrant: the pool may close a connection (``forget``) from a garbage collection that runs while
        # this thread holds it.
        self._lock = threading.RLock()
        self._rescue_lock = threading.Lock()
        self._live: weakref.WeakSet[WatchedConnection] = weakref.WeakSet()
        self._rescued_wals: set[FileId] = set()
        # Database files that left the path whose WAL was copied into them (``_save_leaving``).
        self._saved_leaving: set[FileId] = set()
        # Database files seen removed for good (no name left) while this process still had them open: a file
        # at the path with one's (device, inode) later is a new file that got the freed inode number.
        self._unlinked: set[FileId] = set()
        # The -wal and -shm files connections to the current file had open. SQLite leaves them behind when
        # the file was moved away (it checkpoints and deletes them on the last close only if it was not), and
        # a connection to a file put in its place would read the old file's WAL as its own.
        self._paired: set[FileId] = set()
        self._reported: tuple[Any, ...] | None = None
        self._problem: str | None = None
        # The path named no file at some point: the file there now, if it is the current one, is back.
        self._removed_seen = False

    # -- connecting ---------------------------------------------------------------------------------------

    def connect_arguments(self) -> str | None:
        """Before a connection opens: once the engine has a file, it opens only an existing one (a URI with
        ``mode=rw``, returned), never making an empty database in its place; None before that."""
        if self.current is None:
            create_private(self.path)
            return None
        if not os.path.exists(self.path):
            raise DatabaseFileChanged(self._removed())
        return f"file:{quote(self.path)}?mode=rw"

    def opened(self, connection: WatchedConnection) -> FileId:
        """Just after a connection opened (before any pragma writes to the file): the file it opened, refused
        if it replaced the engine's file and cannot be taken yet."""
        database = file_id(self.path)
        if database is None:
            raise DatabaseFileChanged(self._removed())
        with self._lock:
            if self.current is None:
                self.current = database
            elif database != self.current or (self._removed_seen and database in self._unlinked):
                # Another file, or one made anew that got the number of the removed one's inode.
                self._take_replacement(connection, database)
            elif self._removed_seen:
                self._back(connection, database)
            if self._unsaved_wal(database):
                raise DatabaseFileChanged(f"{self._wal_removed()}; its transactions are not saved yet")
        return database

    def record(self, connection: WatchedConnection, database: FileId) -> None:
        """Once a connection's pragmas ran (its WAL open, if the database has one): what it opened."""
        connection.files = OpenedFiles(database, file_id(self.wal))
        connection.watch = self
        shm = file_id(self.shm)
        with self._lock:
            self._live.add(connection)
            if database == self.current:
                self._paired.update(found for found in (connection.files.wal, shm) if found is not None)

    def forget(self, connection: WatchedConnection) -> None:
        with self._lock:
            self._live.discard(connection)

    def _back(self, connection: WatchedConnection, database: FileId) -> None:
        """The engine's file (same device and inode) is at its path again after the path named none: moved
        away and back. Its -wal and -shm are its own, and hold what was acknowledged before it left unless
        that was saved into it then (``_save_leaving``): used as they are, never removed (that lost them).
        Only a file seen removed for good (``_unlinked``) is known to be another one when a new file gets its
        inode number; one moved away, then deleted there, then made anew with its number, is not told apart,
        and its WAL, emptied when it left, is kept: when in doubt, nothing is removed. Called with the lock
        held."""
        reason = self._not_warroom(connection)
        if reason is not None:
            self._problem = f"{self._replaced()} by a file that is not a Warroom database ({reason})"
            raise DatabaseFileChanged(self._problem)
        self._saved_leaving.discard(database)  # saved again if it leaves again
        self._problem, self._reported, self._removed_seen = None, None, False
        log.warning(
            "the database file %s is at its path again (the same file: same device and inode); new "
            "connections use it, and its -wal and -shm, again",
            self.path,
        )

    def _not_warroom(self, connection: WatchedConnection) -> str | None:
        """Why the file ``connection`` opened is not a Warroom database, or None."""
        try:
            found = connection.execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (VERSION_TABLE,)
            ).fetchone()
        except sqlite3.DatabaseError as exc:
            return str(exc)
        return None if found is not None else "it has no Warroom schema"

    def _take_replacement(self, connection: WatchedConnection, database: FileId) -> None:
        """Another file at the path: used from now on if this process has no connection left to the old one
        and it is a Warroom database; otherwise refused (503) for now. Called with the lock held."""
        if any(other.files is not None and other.files.database == database for other in self._live):
            # A file this process still has open (not the current one) is back at its path.
            self.current = database
            self._problem, self._reported, self._removed_seen = None, None, False
            log.warning("the database file %s is back at its path; new connections use it again", self.path)
            return
        self._report(("replaced", self.current, database), self._replaced())
        if any(other.files is not None and other.files.database != database for other in self._live):
            self._problem = (
                f"{self._replaced()}; waiting for this server's connections to the old file to close"
            )
            raise DatabaseFileChanged(self._problem)
        # Before anything reads the new file (which opens the -wal and -shm at the path). Only files this
        # process's connections had open beside the old database (``_paired``): provably the old file's, not
        # this one's (SQLite would read them as its own: it checks a WAL only against itself). Whatever they
        # held was saved into the old file when it left the path (``_save_leaving``), if it still exists.
        left_behind = [name for name in (self.wal, self.shm) if file_id(name) in self._paired]
        for name in left_behind:
            with contextlib.suppress(FileNotFoundError):
                os.remove(name)
        self._paired = set()
        reason = self._not_warroom(connection)
        if reason is not None:
            self._problem = f"{self._replaced()} by a file that is not a Warroom database ({reason})"
            raise DatabaseFileChanged(self._problem)
        self.current = database
        self._unlinked.discard(database)
        self._problem, self._reported, self._removed_seen = None, None, False
        log.warning(
            "the database file %s was replaced under the running server; new connections use the Warroom "
            "database now at that path%s",
            self.path,
            f" (removed what the replaced one left: {', '.join(left_behind)})" if left_behind else "",
        )

    # -- checking ---------------------------------------------------------------------------------------

    def stale(self, files: OpenedFiles) -> str | None:
        """Why the path no longer names what a connection opened, or None (a stat or two: every checkout and
        commit calls it)."""
        database = file_id(self.path)
        if database != files.database:
            if database is None:
                return self._removed()
            with self._lock:
                self._report(("replaced", files.database, database), self._replaced())
            return self._replaced()
        if files.wal is not None and file_id(self.wal) != files.wal:
            if files.wal in self._rescued_wals:
                return "its WAL file was removed (its transactions were saved); reconnecting"
            with self._lock:
                self._report(("wal", files.wal), self._wal_removed())
            return self._wal_removed()
        return None

    def check_out(self, connection: WatchedConnection) -> tuple[str, bool] | None:
        """A pool checkout: why the connection must be dropped, and whether for the database file itself
        (else its WAL, whose transactions it saves first); None when it may be used. Raises
        ``DatabaseFileChanged`` when a removed WAL's transactions could not be saved yet."""
        files = connection.files
        if files is None:
            return None
        reason = self.stale(files)
        if reason is None:
            if files.wal is None:
                self._adopt_wal(connection, files)
            return None
        if files.database != file_id(self.path):
            self._save_leaving(connection, files.database)
            return reason, True
        if files.wal is not None:
            self._save_wal(connection, files.wal)
        return reason, False

    def _adopt_wal(self, connection: WatchedConnection, files: OpenedFiles) -> None:
        """A connection opened on a new, empty database had no WAL yet: once there is one, it is the one the
        connection uses (SQLite never swaps the WAL of a database one of its connections has open)."""
        wal = file_id(self.wal)
        if wal is None:
            return
        connection.files = OpenedFiles(files.database, wal)
        shm = file_id(self.shm)
        with self._lock:
            if files.database == self.current:
                self._paired.update(found for found in (wal, shm) if found is not None)

    def _save_leaving(self, connection: WatchedConnection, database: FileId) -> None:
        """The path no longer names ``database``, which ``connection`` still has open: copy its WAL's
        transactions into it (a checkpoint through the connection's open files, wherever the file went),
        once, before this process's connections to it close. SQLite does not on the last close of a file that
        was moved away: it leaves the -wal at the path, the only place those transactions would then be. A
        failure only leaves them there, kept (``_back``)."""
        with self._rescue_lock:
            if database in self._saved_leaving:
                return
            if _names_left(database) == 0:
                with self._lock:
                    self._unlinked.add(database)
            try:
                busy, _, _ = connection.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
            except sqlite3.Error as exc:
                log.warning("saving the WAL of the database file that left %s failed: %s", self.path, exc)
                return
            if busy:
                log.warning("saving the WAL of the database file that left %s: busy, left in it", self.path)
                return
            self._saved_leaving.add(database)

    def _save_wal(self, connection: WatchedConnection, wal: FileId) -> None:
        """Copy the transactions of a removed WAL, which ``connection`` still has open, into the database
        file (a checkpoint that also empties the WAL), before any connection starts a new WAL."""
        with self._rescue_lock:
            if wal in self._rescued_wals:
                return
            try:
                busy, _, _ = connection.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
            except sqlite3.Error as exc:
                raise DatabaseFileChanged(
                    f"{self._wal_removed()}; saving its transactions failed: {exc}"
                ) from exc
            if busy:
                raise DatabaseFileChanged(f"{self._wal_removed()}; its transactions are not saved yet (busy)")
            self._rescued_wals.add(wal)
            with self._lock:
                self._reported = None
            log.warning(
                "the transactions of the removed WAL file %s were copied into the database file %s; "
                "new connections start a new WAL",
                self.wal,
                self.path,
            )

    def _unsaved_wal(self, database: FileId) -> bool:
        """Whether a connection of this process to ``database`` holds a WAL that was removed and whose
        transactions are not saved yet: until they are, no connection may start a new WAL beside it (a
        connection never has its WAL removed by SQLite while it is open). Called with the lock held."""
        wal = file_id(self.wal)
        return any(
            files is not None
            and files.database == database
            and files.wal is not None
            and files.wal != wal
            and files.wal not in self._rescued_wals
            for files in (other.files for other in self._live)
        )

    def problem(self) -> str | None:
        """For /healthz: why the file cannot be used now, or None."""
        if self.current is None:
            return None
        database = file_id(self.path)
        if database is None:
            return self._removed()
        if database != self.current:
            return self._problem or self._replaced()
        with self._lock:
            unsaved = self._unsaved_wal(database)
        return f"{self._wal_removed()}; its transactions are not saved yet" if unsaved else None

    # -- saying it ----------------------------------------------------------------------------------------

    def _removed(self) -> str:
        self._removed_seen = True
        with self._lock:
            self._report(("removed", self.current), self._removed_reason())
        return self._removed_reason()

    def _removed_reason(self) -> str:
        return (
            f"the database file {self.path} was removed under the running server: answering 503 until it is "
            "restored or warroom db upgrade makes a new one"
        )

    def _replaced(self) -> str:
        return f"the database file {self.path} was replaced under the running server"

    def _wal_removed(self) -> str:
        return f"the WAL file {self.wal} of the database was removed under the running server"

    def _report(self, situation: tuple[Any, ...], reason: str) -> None:
        """One error line per situation, not one per request. Called with the lock held."""
        if situation != self._reported:
            self._reported = situation
            log.error("%s", reason)


def _names_left(database: FileId) -> int | None:
    """How many names (hard links) the file ``database`` this process has open has left, read through the
    process's open descriptors (Linux's /proc): 0 once it was removed (``rm``, or replaced by a rename), so
    it can never be back. None when it cannot be told (another system, or no descriptor found)."""
    try:
        descriptors = os.listdir("/proc/self/fd")
    except OSError:
        return None
    for descriptor in descriptors:
        try:
            status = os.stat(f"/proc/self/fd/{descriptor}")
        except OSError:
            continue
        if (status.st_dev, status.st_ino) == database:
            return status.st_nlink
    return None


def create_private(path: str) -> None:
    """Make the database file, empty (SQLite makes a new database in it), readable by its owner only, if
    there is none: it holds signing secrets, hashed tokens and raw evidence, and SQLite would make it
    0644 (less the umask). SQLite gives its -wal and -shm files the database file's mode, so they are 0600
    too. A file there already keeps its mode."""
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return
    except OSError:
        return  # SQLite's own open says what is wrong (a directory it cannot write to)
    os.close(descriptor)


def directory_problem(url_database: str) -> str | None:
    """Why SQLite cannot use the database file at this path although it may exist and be readable: its
    directory must be writable (SQLite makes the ``-wal`` and ``-shm`` files beside it). None otherwise."""
    if not url_database or url_database == ":memory:" or url_database.startswith("file:"):
        return None
    directory = os.path.dirname(os.path.abspath(url_database))
    if os.path.isdir(directory) and not os.access(directory, os.W_OK):
        return (
            f"its directory {directory} is not writable: SQLite keeps the -wal and -shm files beside the "
            "database, so make the directory writable by this user"
        )
    return None
