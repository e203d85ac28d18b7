"""Run Alembic migrations from code (``warroom db upgrade`` and server start-up)."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Connection, Engine, inspect, text

from warroom import __version__

if TYPE_CHECKING:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

MIGRATIONS = Path(__file__).parent / "migrations"
VERSION_TABLE = "alembic_version"  # Alembic's default: where the database's revisions are

log = logging.getLogger("warroom.migrate")


class NewerSchema(Exception):
    """The database is at a revision this version's migrations do not have: a newer Warroom migrated it (the
    usual case after a deploy is rolled back). Nothing can be done with it here."""

    def __init__(self, revisions: list[str]) -> None:
        self.revisions = revisions
        super().__init__(
            f"the database was migrated by a newer Warroom (revision {', '.join(revisions)}, unknown to this "
            f"version {__version__}): upgrade Warroom, or restore a backup"
        )


# Alembic is imported only when a migration runs: it brings Mako and Pygments, a quarter of a second that
# every CLI command (which imports this module through the admin commands) would otherwise pay.
def alembic_config(url: str) -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    # Alembic's options go through configparser, which reads "%" as interpolation: a URL-encoded password
    # ("p%40ss") or socket path must keep its "%" as written.
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def _scripts() -> ScriptDirectory:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config("sqlite://"))


def heads() -> frozenset[str]:
    """The revisions this version's schema is at (one per branch). Reads the migration files: call it once."""
    return frozenset(_scripts().get_heads())


@functools.cache
def _heads_once() -> frozenset[str]:
    return heads()


# What to do with a database whose version table says it is at this version's schema but whose tables are
# gone (dropped by hand): ``db upgrade`` has nothing to run on it, so it cannot mend it.
TABLES_MISSING_ADVICE = "restore it from a backup, or empty it and run warroom db upgrade"


class TablesMissing(Exception):
    """The database is at this version's revision but lacks some of Warroom's tables."""

    def __init__(self, revisions: set[str] | frozenset[str], missing: list[str]) -> None:
        self.missing = missing
        super().__init__(tables_missing_problem(revisions, missing))


def tables_missing_problem(revisions: set[str] | frozenset[str], missing: list[str]) -> str:
    """The one line saying which tables a database at ``revisions`` lacks, and what to do."""
    shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
    return (
        f"the database says it is at revision {', '.join(sorted(revisions))} but has no table {shown} (were "
        f"Warroom's tables dropped?): {TABLES_MISSING_ADVICE}"
    )


def missing_tables(connection: Connection) -> list[str]:
    """Warroom's tables the database does not have, sorted. One query for all of them (``/healthz`` runs it):
    SQLite's catalogue, or on PostgreSQL each name resolved as the routes' queries resolve it (the search
    path)."""
    from sqlalchemy import bindparam

    from warroom.models import metadata

    names = sorted(metadata.tables)
    if connection.dialect.name == "sqlite":
        query = text("SELECT name FROM sqlite_master WHERE type = 'table' AND name IN :names").bindparams(
            bindparam("names", expanding=True)
        )
    else:
        query = text(
            "SELECT name FROM unnest(CAST(:names AS text[])) AS name WHERE to_regclass(quote_ident(name)) "
            "IS NOT NULL"
        )
    found = set(connection.scalars(query, {"names": names}))
    return [name for name in names if name not in found]


def at_head(engine: Engine) -> bool:
    """Whether the database's version table says it is at this version's schema (its tables may still be
    missing); False when it cannot be read."""
    try:
        with engine.connect() as connection:
            return revisions(connection) == _heads_once()
    except Exception:
        return False


def revisions(connection: Connection) -> set[str]:
    """The revisions the database's version table lists, known to this version or not (none for an empty
    database)."""
    # Read directly: Alembic's MigrationContext would log "Will assume transactional DDL" at every start.
    if not inspect(connection).has_table(VERSION_TABLE):
        return set()
    return set(connection.scalars(text(f"SELECT version_num FROM {VERSION_TABLE}")))


def _current(connection: Connection, scripts: ScriptDirectory) -> set[str]:
    """The database's revisions (none for an empty one); NewerSchema if this version does not know one."""
    current = revisions(connection)
    known = {script.revision for script in scripts.walk_revisions()}
    unknown = sorted(current - known)
    if unknown:
        raise NewerSchema(unknown)
    return current


def _named(revisions: set[str] | frozenset[str]) -> str:
    return ", ".join(sorted(revisions)) or "an empty database"


def upgrade(engine: Engine, *, timeline_key: Callable[[], bytes] | None = None) -> str | None:
    """Bring the schema to every head (domains may add branches of their own), saying so in the log when
    it changed anything; what it said (None when there was nothing to do). NewerSchema if a newer version
    migrated the database. ``timeline_key`` gives the timeline chain's key (``Settings.timeline_key``),
    asked for only if a migration seals existing timelines with it (0041)."""
    from alembic import command

    config = alembic_config(str(engine.url.render_as_string(hide_password=False)))
    if timeline_key is not None:
        config.attributes["timeline_key"] = timeline_key
    scripts = _scripts()
    target = set(scripts.get_heads())
    # A write transaction (BEGIN IMMEDIATE on SQLite) plus an advisory lock on PostgreSQL, so two
    # processes starting together do not both migrate.
    with engine.execution_options(write=True).begin() as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(7270001)"))
        before = _current(connection, scripts)
        if before == target:
            return None
        config.attributes["connection"] = connection
        command.upgrade(config, "heads")
    said = f"migrated the database from {_named(before)} to {_named(target)}"
    log.info("%s", said)
    return said


def check_tables(engine: Engine) -> None:
    """TablesMissing when the database is at this version's revision but lacks some of Warroom's tables:
    ``db upgrade`` would have nothing to run there, and must not say the database is up to date."""
    with engine.connect() as connection:
        current = revisions(connection)
        if current != _heads_once():
            return
        missing = missing_tables(connection)
    if missing:
        raise TablesMissing(current, missing)


def pending(engine: Engine) -> bool:
    """Whether the database is behind this version's schema (NewerSchema if it is ahead of it)."""
    scripts = _scripts()
    with engine.connect() as connection:
        current = _current(connection, scripts)
    return current != set(scripts.get_heads())
