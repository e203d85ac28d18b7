"""Engine and sessions. SQLite gets WAL, foreign keys, a busy timeout and ``BEGIN IMMEDIATE`` for writes."""

from __future__ import annotations

import json
import logging
import re
import sqlite3
import sys
import weakref
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import orjson
from sqlalchemy import Connection, DateTime, Engine, MetaData, create_engine, event, text
from sqlalchemy.engine import URL, Dialect, make_url
from sqlalchemy.exc import DBAPIError, DisconnectionError, IntegrityError, OperationalError
from sqlalchemy.exc import TimeoutError as SQLAlchemyTimeoutError
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.pool import PoolProxiedConnection
from sqlalchemy.sql.expression import ClauseElement
from sqlalchemy.types import TypeDecorator

from warroom.clock import clock
from warroom.dbfile import DatabaseFileChanged, SQLiteFile, WatchedConnection
from warroom.errors import NotFound
from warroom.fields import MAX_ROW_ID as MAX_ROW_ID
from warroom.fields import parse_row_ref as parse_row_ref
from warroom.settings import DEFAULT_BUSY_TIMEOUT, make_directory
from warroom.settings import sqlite_synchronous as synchronous_level
from warroom.textsearch import FOLD_FUNCTION, fold_sql_value

if TYPE_CHECKING:
    from warroom.settings import Settings

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on both databases (SQLite stores naive text)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


RowT = TypeVar("RowT", bound=Base)


def get_or_404(session: Session, model: type[RowT], row_id: int, what: str, **options: Any) -> RowT:
    """The row with this id, or NotFound saying what is missing (``options`` go to ``Session.get``)."""
    row = session.get(model, row_id, **options)
    if row is None:
        raise NotFound(f"no {what}")
    return row


def get_by_ref(
    session: Session, model: type[RowT], ref: str | int, prefix: str, what: str, *, for_update: bool = False
) -> RowT:
    """The row a person named by number or reference (``12`` or ``ALR-12`` for prefix ``ALR``), optionally
    locked; NotFound otherwise, with how references look."""
    return get_or_404(
        session,
        model,
        parse_row_ref(ref, prefix, what),
        f"{what} {ref}",
        with_for_update=True if for_update else None,
    )


def as_sqlalchemy_error(exc: BaseException) -> BaseException:
    """A driver's own error as SQLAlchemy raises it (psycopg's UniqueViolation an ``IntegrityError``, its
    DeadlockDetected or sqlite3's "database is locked" an ``OperationalError``); anything else as it is.

    SQL run straight on the driver (``DriverStatement``, ``driver_query``, a cursor's COPY) raises the
    driver's errors unwrapped: ``unavailable``, ``is_retryable`` and ``lost_race`` look through this, so that
    they tell those apart as they do SQLAlchemy's. Called only once something failed: no cost on success."""
    if isinstance(exc, DBAPIError):
        return exc
    # A psycopg error exists only once psycopg is imported: SQLite alone never imports it.
    psycopg = sys.modules.get("psycopg")
    driver_errors: tuple[type[Exception], ...] = (sqlite3.Error, *([psycopg.Error] if psycopg else []))
    for driver_error in driver_errors:
        if isinstance(exc, driver_error):
            return DBAPIError.instance(None, None, exc, driver_error)
    return exc


def unavailable(exc: BaseException) -> bool:
    """True when the database could not be reached or used right now (down, restarting, locked past the busy
    timeout, out of connections, disk full): a condition to retry later, not a fault in the request."""
    return isinstance(as_sqlalchemy_error(exc), OperationalError | SQLAlchemyTimeoutError)


# PostgreSQL's undefined_table.
_UNDEFINED_TABLE = "42P01"


def schema_missing(exc: BaseException) -> bool:
    """True when a statement failed on a table the database does not have: its tables were dropped, or it is
    a new database never upgraded (PostgreSQL's undefined_table, a ProgrammingError; SQLite's "no such
    table", an OperationalError). Not a fault in the request, and no retry mends it: ``warroom db upgrade``
    does."""
    exc = as_sqlalchemy_error(exc)
    if not isinstance(exc, DBAPIError):
        return False
    orig = exc.orig
    return getattr(orig, "sqlstate", None) == _UNDEFINED_TABLE or str(orig).startswith("no such table")


def unavailable_reason(exc: BaseException) -> str:
    """The driver's own first line (no SQL, no parameters), for the server log."""
    lines = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    return lines[0][:300] if lines else type(exc).__name__


def utcnow() -> datetime:
    return clock.now()


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


_URL_PASSWORD_RE = re.compile(r"(?i)(://[^\s/?#@:]*):[^\s/?#@]+@")
# Query parameters that carry a password (libpq's and psycopg's ``?password=``).
_PASSWORD_PARAM_RE = re.compile(r"(?i)([?&;](?:password|passwd)=)[^&#\s]*")


def shown_url(url: str | URL) -> str:
    """A database URL as it may be printed or logged: its password (``user:pass@`` and ``?password=``)
    as ``***``. A string that does not parse as a URL is masked by pattern."""
    try:
        rendered = make_url(url).render_as_string(hide_password=True)
    except Exception:
        rendered = _URL_PASSWORD_RE.sub(r"\1:***@", str(url))
    return _PASSWORD_PARAM_RE.sub(r"\1***", rendered)


def shown_location(url: str | URL) -> str:
    """Where a database is, as a message says it: a SQLite file's path as it is on disk (to paste into
    ``ls``; the URL would show ``Z%C3%BCrich`` for ``Zürich``), any other database as ``shown_url``."""
    try:
        parsed = make_url(url)
    except Exception:
        return shown_url(url)
    file = parsed.database
    if parsed.get_backend_name() == "sqlite" and file and file != ":memory:" and not file.startswith("file:"):
        return file
    return shown_url(url)


def json_text(value: Any) -> str:
    """JSON columns' serializer: orjson is several times faster than ``json`` on the alert hot path."""
    try:
        return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()
    except orjson.JSONEncodeError:
        # orjson refuses integers beyond 64 bits, which the API's own JSON parser and the intake's
        # (``adapters.parse_json``) keep exact. Anything json cannot write still raises.
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


# PostgreSQL's "deadlock detected" and "could not serialize access": the transaction was rolled back as a
# whole and may simply be run again.
_RETRYABLE_SQLSTATES = frozenset({"40P01", "40001"})


def is_retryable(exc: BaseException) -> bool:
    """Whether a failed transaction lost a race the database resolved by aborting it (run it again)."""
    exc = as_sqlalchemy_error(exc)
    return isinstance(exc, DBAPIError) and getattr(exc.orig, "sqlstate", None) in _RETRYABLE_SQLSTATES


# PostgreSQL's server ending sessions (admin_shutdown, crash_shutdown) or refusing them (cannot_connect_now):
# a restart. Its connection_exception class (08…) is the other way a connection goes.
_SESSION_ENDED_SQLSTATES = frozenset({"57P01", "57P02", "57P03"})


def connection_lost(exc: BaseException, connection: Connection | None = None) -> bool:
    """Whether a statement failed because its connection is gone (the server restarted or ended the session,
    the network dropped it, SQLite's file was replaced under it): worth once more on a new connection.
    ``connection``: the one it ran on, if any, for a driver error that says nothing but left it broken.

    Not a lock wait that ran out (PostgreSQL's lock_timeout, SQLite's busy timeout), nor a full disk: a new
    connection would only meet them again, after as long a wait."""
    exc = as_sqlalchemy_error(exc)
    if not isinstance(exc, DBAPIError):
        return False
    if exc.connection_invalidated or isinstance(exc.orig, DatabaseFileChanged):
        return True
    sqlstate = getattr(exc.orig, "sqlstate", None) or ""
    if sqlstate.startswith("08") or sqlstate in _SESSION_ENDED_SQLSTATES:
        return True
    if connection is None:
        return False
    if connection.invalidated or connection.closed:
        return True
    try:
        driver = connection.connection.driver_connection
    except Exception:
        return True  # it cannot even be looked at
    # psycopg's: closed, or broken by a fatal error (the server's end of it went away).
    return bool(getattr(driver, "closed", False) or getattr(driver, "broken", False))


def lost_race(exc: BaseException) -> bool:
    """Whether a failed transaction lost a race to a concurrent one and may simply be run again: it inserted
    a unique key the other committed first (an ``IntegrityError``; run again, it finds the other's row), or
    the database aborted it to settle a deadlock or a serialization failure (``is_retryable``)."""
    return isinstance(as_sqlalchemy_error(exc), IntegrityError) or is_retryable(exc)


def trouble(exc: BaseException) -> str:
    """Why the database refused a transaction (one ``unavailable`` matches), as a log line says it: aborted
    by PostgreSQL to settle a deadlock or a serialization failure (``is_retryable``), it lost a race with
    another transaction, and nothing is down; else the database is unavailable. The driver's first line in
    brackets."""
    if is_retryable(exc):
        return f"lost a lock race with another transaction ({unavailable_reason(exc)})"
    return f"database unavailable ({unavailable_reason(exc)})"


_ON_COMMIT = "warroom.on_commit"


def on_commit(connection: Connection, action: Callable[[], None]) -> None:
    """Run ``action`` once the connection's transaction has committed, and never if it rolls back or its
    COMMIT fails (a full disk): for what lives outside the database and must follow only what was stored
    (metrics)."""
    connection.info.setdefault(_ON_COMMIT, []).append(action)


def on_commit_mark(connection: Connection) -> int:
    """Where the connection's on-commit actions stand, for ``drop_on_commit_after`` when a savepoint rolls
    back the work that asked for the actions after it."""
    return len(connection.info.get(_ON_COMMIT, ()))


def drop_on_commit_after(connection: Connection, mark: int) -> None:
    del connection.info.get(_ON_COMMIT, [])[mark:]


def _run_on_commit(connection: Connection | PoolProxiedConnection) -> None:
    for action in connection.info.pop(_ON_COMMIT, ()):
        try:
            action()
        except Exception:  # an effect outside the transaction must never fail it
            logging.getLogger("warroom.db").exception("an on-commit action failed")


def _drop_on_commit(connection: Connection | PoolProxiedConnection) -> None:
    connection.info.pop(_ON_COMMIT, None)


def _track_commits(engine: Engine) -> Engine:
    # Around the dialect's own COMMIT (SQLAlchemy's "commit" event comes before it): QA saw a full disk count
    # every retried delivery as stored, 26 times over, while none was.
    commit = engine.dialect.do_commit

    def commit_then_act(dbapi_connection: PoolProxiedConnection) -> None:
        try:
            commit(dbapi_connection)
        except BaseException:
            _drop_on_commit(dbapi_connection)
            raise
        _run_on_commit(dbapi_connection)

    engine.dialect.do_commit = commit_then_act  # type: ignore[method-assign]
    event.listen(engine, "rollback", _drop_on_commit)
    return engine


# Seconds to wait for PostgreSQL to accept a connection (libpq waits for ever by default).
CONNECT_TIMEOUT = 10


def create_db_engine(
    url: str,
    *,
    sqlite_synchronous: str = "FULL",
    sqlite_busy_timeout: float = DEFAULT_BUSY_TIMEOUT,
    postgres_lock_timeout: float = DEFAULT_BUSY_TIMEOUT,
) -> Engine:
    if is_sqlite(url):
        # Checked here too, for engines made without Settings: SQLite reads an unknown word as NORMAL.
        synchronous = synchronous_level(sqlite_synchronous)
        database = make_url(url).database
        watch = None
        if database and database != ":memory:":
            make_directory(Path(database).parent)  # DirectoryUnusable: one line saying why, not a traceback
            if not database.startswith("file:"):
                watch = SQLiteFile(database)
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": sqlite_busy_timeout},
            json_serializer=json_text,
        )
        _configure_sqlite(engine, synchronous, sqlite_busy_timeout, watch)
        _track_commits(engine)
        if watch is not None:
            _watch_file(engine, watch)
        return engine
    # A statement waits for another session's lock at most lock_timeout, as a SQLite write waits for the write
    # lock at most its busy timeout: a held `LOCK TABLE` (a migration, a person in psql) then gets 503s with
    # Retry-After, instead of every request hanging until the connection pool runs dry.
    options = {
        "connect_timeout": CONNECT_TIMEOUT,
        "options": f"-c lock_timeout={round(postgres_lock_timeout * 1000)}",
    }
    return _track_commits(
        create_engine(
            url,
            pool_pre_ping=True,
            pool_size=10,
            max_overflow=20,
            json_serializer=json_text,
            connect_args=options,
        )
    )


@dataclass(frozen=True)
class DriverStatement:
    """A Core statement compiled once for a dialect and run as driver SQL, many rows at a time.

    For hot paths only: SQLAlchemy's per-row parameter handling costs more than the database's own work
    on a batch of small rows. The columns' own bind processing (UTC datetimes, JSON, enums) still applies.
    """

    sql: str
    names: tuple[str, ...]  # parameter order, for positional drivers (sqlite3)
    positional: bool
    processors: Mapping[str, Callable[[Any], Any] | None]

    @classmethod
    def compile(
        cls, statement: ClauseElement, dialect: Dialect, *, column_keys: list[str] | None = None
    ) -> DriverStatement:
        # for_executemany: no implicit RETURNING, which executemany would not read anyway
        compiled = statement.compile(dialect=dialect, column_keys=column_keys, for_executemany=True)
        binds = compiled.binds  # type: ignore[attr-defined]
        # dialect_impl: what SQLAlchemy itself binds with (SQLite's DATETIME text format, for one)
        processors = {
            name: _same_as_last(processor)
            if isinstance(bind.type, UTCDateTime | DateTime) and processor is not None
            else processor
            for name, bind in binds.items()
            for processor in (bind.type.dialect_impl(dialect).bind_processor(dialect),)
        }
        positional = bool(compiled.positional)  # type: ignore[attr-defined]
        names = tuple(compiled.positiontup or ()) if positional else tuple(binds)  # type: ignore[attr-defined]
        return cls(compiled.string, names, positional, processors)

    def parameters(self, values: Mapping[str, Any]) -> tuple[Any, ...] | dict[str, Any]:
        processors = self.processors
        converted = []
        for name in self.names:
            value = values[name]
            processor = processors[name]
            converted.append(processor(value) if processor is not None and value is not None else value)
        return tuple(converted) if self.positional else dict(zip(self.names, converted, strict=True))

    def query(self, connection: Connection, values: Mapping[str, Any]) -> Sequence[Any]:
        """Run as a query; the rows as the driver returns them (tuples, no result processing)."""
        return driver_query(connection, self.sql, self.parameters(values))

    def execute_many(self, connection: Connection, rows: Sequence[Mapping[str, Any]]) -> None:
        cursor = connection.connection.cursor()
        try:
            cursor.executemany(self.sql, [self.parameters(row) for row in rows])  # type: ignore[arg-type]
        finally:
            cursor.close()


def _same_as_last(processor: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """A datetime's bind processor that reuses its last result for the same object: the rows of one intake
    batch share one ``now``, and formatting it for SQLite per row cost 7% of a storm's writer."""
    last: tuple[Any, Any] = (None, None)

    def process(value: Any) -> Any:
        nonlocal last
        seen = last  # one read and one write of a tuple: safe when two threads share the statement
        if seen[0] is value:
            return seen[1]
        result = processor(value)
        last = (value, result)
        return result

    return process


def driver_query(
    connection: Connection, sql: str, parameters: Sequence[Any] | Mapping[str, Any]
) -> Sequence[Any]:
    """Hand-written SQL straight on the driver's cursor, inside the connection's transaction."""
    cursor = connection.connection.cursor()
    try:
        cursor.execute(sql, parameters)
        return cursor.fetchall()
    finally:
        cursor.close()


def _configure_sqlite(
    engine: Engine, synchronous: str, busy_timeout: float, watch: SQLiteFile | None
) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the sqlite3 module, decide when transactions begin.
        dbapi_connection.isolation_level = None
        # Before the pragmas write to it: a file that replaced the engine's may not be usable yet.
        opened = watch.opened(dbapi_connection) if watch is not None else None
        cursor = dbapi_connection.cursor()
        # Before WAL, which writes the file's first page: a new database can then give pages that retention
        # freed back to the file system (``reclaim_free_pages``). An older file keeps its mode until
        # ``warroom db vacuum``. Set only on a file with no pages yet: on any other, setting it opens a write
        # transaction, so every connection opened while a writer held the lock (a pool growing under load)
        # waited out the busy timeout and failed with "database is locked", reads and /healthz too.
        if cursor.execute("PRAGMA page_count").fetchone()[0] == 0:
            cursor.execute("PRAGMA auto_vacuum=INCREMENTAL")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout * 1000)}")
        cursor.execute(f"PRAGMA synchronous={synchronous}")
        cursor.close()
        # Searches fold case and Unicode forms in Python: SQLite's LIKE folds ASCII letters only.
        dbapi_connection.create_function(FOLD_FUNCTION, 1, fold_sql_value, deterministic=True)
        if watch is not None and opened is not None:
            watch.record(dbapi_connection, opened)  # its WAL is open now

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        # A write transaction takes the write lock up front, so two writers queue on busy_timeout
        # instead of one failing with "database is locked" when it upgrades from a read.
        # On the driver's connection: SQLAlchemy's execution machinery cost more than SQLite's BEGIN.
        statement = "BEGIN IMMEDIATE" if connection.get_execution_options().get("write") else "BEGIN"
        driver = connection.connection.driver_connection
        if watch is not None:
            driver.changes_at_begin = driver.total_changes  # tells a commit that wrote from one that did not
        try:
            driver.execute(statement)
        except sqlite3.Error as exc:
            # Raised as SQLAlchemy raises driver errors (a lock held past busy_timeout is an
            # OperationalError), so that callers still tell an unavailable database from a fault.
            raise DBAPIError.instance(statement, (), exc, sqlite3.Error) from exc


_FILES: weakref.WeakKeyDictionary[Engine, SQLiteFile] = weakref.WeakKeyDictionary()


def _watch_file(engine: Engine, watch: SQLiteFile) -> None:
    """SQLite: refuse to use a database file removed or replaced under the running server
    (``warroom.dbfile``): no connection creates the file once the engine has one, a pool checkout drops a
    connection whose file the path no longer names, and a commit through one is refused (503) rather than
    written where nothing can read it."""
    _FILES[engine] = watch

    @event.listens_for(engine, "do_connect")
    def _on_do_connect(_dialect: Any, _record: Any, cargs: list[Any], cparams: dict[str, Any]) -> None:
        database = watch.connect_arguments()
        if database is not None:
            cargs[0] = database
            cparams["uri"] = True
        cparams["factory"] = WatchedConnection

    @event.listens_for(engine, "checkout")
    def _on_checkout(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
        stale = watch.check_out(dbapi_connection)
        if stale is not None:
            reason, whole_file = stale
            error = DisconnectionError(reason)
            # The file itself: every pooled connection is to the old one (each closed at its next checkout).
            # A WAL: each is checked at its own checkout, where one saves what the removed WAL holds.
            error.invalidate_pool = whole_file
            raise error

    @event.listens_for(engine, "commit")
    def _on_commit(connection: Connection) -> None:
        files = getattr(connection.connection.driver_connection, "files", None)
        reason = watch.stale(files) if files is not None else None
        if reason is not None:
            refused = DatabaseFileChanged(f"{reason}: the transaction was not committed")
            raise DBAPIError.instance("COMMIT", (), refused, sqlite3.Error)


def sqlite_file(engine: Engine) -> SQLiteFile | None:
    """The watch over a SQLite engine's file (None on PostgreSQL and in-memory SQLite)."""
    return _FILES.get(engine)


SQLITE_INCREMENTAL_VACUUM = 2  # PRAGMA auto_vacuum's value for INCREMENTAL


class Database:
    """Holds the engine and the two session factories: reads, and writes (IMMEDIATE on SQLite)."""

    def __init__(
        self,
        url: str,
        *,
        sqlite_synchronous: str = "FULL",
        sqlite_busy_timeout: float = DEFAULT_BUSY_TIMEOUT,
        postgres_lock_timeout: float = DEFAULT_BUSY_TIMEOUT,
    ) -> None:
        self.url = url
        # Seconds a SQLite write waits for the write lock (the intake's deadline too); None on PostgreSQL.
        self.busy_timeout: float | None = sqlite_busy_timeout if is_sqlite(url) else None
        self.engine = create_db_engine(
            url,
            sqlite_synchronous=sqlite_synchronous,
            sqlite_busy_timeout=sqlite_busy_timeout,
            postgres_lock_timeout=postgres_lock_timeout,
        )
        self.file = sqlite_file(self.engine)
        self._read = sessionmaker(self.engine, expire_on_commit=False)
        self._write = sessionmaker(self.engine.execution_options(write=True), expire_on_commit=False)

    @classmethod
    def from_settings(cls, settings: Settings) -> Database:
        return cls(
            settings.resolved_database_url,
            sqlite_synchronous=settings.sqlite_synchronous,
            sqlite_busy_timeout=settings.sqlite_busy_timeout,
            postgres_lock_timeout=settings.postgres_lock_timeout,
        )

    def set_session_info(self, **info: Any) -> None:
        """Copied into every new session's ``info`` (how subscribers find the running app context)."""
        for factory in (self._read, self._write):
            factory.configure(info=info)

    @property
    def is_sqlite(self) -> bool:
        return is_sqlite(self.url)

    @contextmanager
    def read(self) -> Iterator[Session]:
        with self._read() as session:
            yield session

    @contextmanager
    def write(self) -> Iterator[Session]:
        """A unit of work: commits on success, rolls back on any error."""
        with self._write() as session, session.begin():
            yield session

    @contextmanager
    def session_on(self, connection: Connection) -> Iterator[Session]:
        """A session inside a transaction the caller began on ``connection`` (and will commit)."""
        with self._write(bind=connection) as session:
            yield session

    def write_session(self) -> Session:
        return self._write()

    def read_session(self) -> Session:
        return self._read()

    def dispose(self) -> None:
        self.engine.dispose()

    def file_problem(self) -> str | None:
        """SQLite: why the database file cannot be used now (removed or replaced under the running server, or
        its WAL removed and not yet saved), or None; always None on PostgreSQL."""
        return self.file.problem() if self.file is not None else None

    def writes_problem(self) -> str | None:
        """SQLite: why writes are failing (the commits that wrote failed within the last minute, none
        succeeded since: a full disk, an immutable file), or None; always None on PostgreSQL."""
        return self.file.writes.problem() if self.file is not None else None

    def on_current_file(self, connection: Connection) -> bool:
        """Whether a connection kept open (the intake writer's) still has the file its path names (a stat or
        two). False: give it back (the pool's checkout then drops it, saving what a removed WAL holds)."""
        if self.file is None:
            return True
        files = getattr(connection.connection.driver_connection, "files", None)
        return files is None or self.file.stale(files) is None

    def reclaim_free_pages(self, *, pages_per_transaction: int = 2000, max_transactions: int = 100) -> int:
        """SQLite in incremental auto-vacuum mode: give free pages (rows deleted by retention) back to the
        file system, a few thousand per short write transaction so that intake never waits long; how many.
        0 on PostgreSQL (its autovacuum reuses the space) and on an older SQLite file (see ``vacuum``)."""
        if not self.is_sqlite:
            return 0
        reclaimed = 0
        with self.engine.connect() as connection:
            raw: Any = connection.connection.dbapi_connection
            # The free-page count first: it reads the file's header, which the mode's value is cached from
            # (a connection opened before ``db vacuum`` changed the mode would otherwise see the old one).
            if not raw.execute("PRAGMA freelist_count").fetchone()[0]:
                return 0
            if raw.execute("PRAGMA auto_vacuum").fetchone()[0] != SQLITE_INCREMENTAL_VACUUM:
                return 0
            for _ in range(max_transactions):
                free = raw.execute("PRAGMA freelist_count").fetchone()[0]
                if free == 0:
                    break
                # executescript steps the pragma to its end; a cursor's execute frees one page per step.
                raw.executescript(
                    f"BEGIN IMMEDIATE; PRAGMA incremental_vacuum({pages_per_transaction}); COMMIT;"
                )
                reclaimed += free - raw.execute("PRAGMA freelist_count").fetchone()[0]
        return reclaimed

    def size_bytes(self) -> int:
        """What the database takes on disk: SQLite's pages (the WAL aside), PostgreSQL's database size."""
        with self.read() as session:
            if self.is_sqlite:
                pages = session.execute(text("PRAGMA page_count")).scalar_one()
                page_size = session.execute(text("PRAGMA page_size")).scalar_one()
                return int(pages) * int(page_size)
            return int(session.execute(text("SELECT pg_database_size(current_database())")).scalar_one())

    def vacuum(self) -> None:
        """Rewrite the database compactly: SQLite's ``VACUUM`` (which also turns an older file's auto-vacuum
        mode to incremental; it takes the write lock for as long as it runs), PostgreSQL's ``VACUUM
        (ANALYZE)`` (space for reuse and fresh planner statistics, without locking out writes)."""
        with self.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            if self.is_sqlite:
                raw: Any = connection.connection.dbapi_connection
                raw.execute("PRAGMA auto_vacuum=INCREMENTAL")
                raw.execute("VACUUM")
            else:
                connection.exec_driver_sql("VACUUM (ANALYZE)")
