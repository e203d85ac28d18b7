"""``warroom db copy``: every row of one Warroom database into another, empty one, on either engine.

The source is read in one snapshot (SQLite: one read transaction; PostgreSQL: REPEATABLE READ, read only),
the target written in one transaction: a failure anywhere leaves it without rows. Rows go through SQLAlchemy
Core with the ORM's tables, so each dialect's own type processing applies (UTC datetimes, JSON, booleans,
binary). Primary keys are kept; what hands out numbers on the target (PostgreSQL's sequences, SQLite's
``sqlite_sequence``) is moved past them, so new incidents and alerts do not collide with copied ones."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import JSON, Column, Connection, Engine, Integer, Table, func, inspect, null, select, text
from sqlalchemy import update as sql_update
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.sql.expression import bindparam

from warroom import migrate
from warroom.db import shown_location, unavailable_reason
from warroom.dbbackup import sqlite_path
from warroom.incidents import service as incident_service
from warroom.incidents.models import Incident, IncidentNumberMark
from warroom.models import metadata

# Rows read and written per round trip: memory stays flat whatever the history (a year is ~200k alerts).
BATCH = 1000

# (table, rows copied so far, rows in the source's table)
Progress = Callable[[str, int, int], None]


class CopyRefused(Exception):
    """The copy was not started and the target was not touched (exit 2)."""


class CopyFailed(Exception):
    """The copy started and failed; its transaction was rolled back, so the target holds no rows."""


@dataclass(frozen=True)
class TableCopied:
    name: str
    rows: int


def tables() -> list[Table]:
    """Warroom's tables in foreign-key order (parents first). Alembic's version table is not in the ORM's
    metadata: the target gets its own from the migrations."""
    return list(metadata.sorted_tables)


def check_source(source: Engine) -> None:
    """CopyRefused unless the source is at this version's schema (migrate.NewerSchema when a newer Warroom
    migrated it; migrate.TablesMissing when it says it is but its tables were dropped: the copy would fail
    on them after migrating the target)."""
    if migrate.pending(source):
        raise CopyRefused(
            f"the source database at {shown_location(source.url)} is not at this version's schema: "
            "run warroom db upgrade first"
        )
    migrate.check_tables(source)


def _identity(connection: Connection) -> tuple[Any, ...]:
    """What tells one PostgreSQL database from another whatever host name reached it: its server (when it
    started, its port) and its name."""
    row = connection.execute(
        text("SELECT pg_postmaster_start_time(), current_setting('port'), current_database()")
    ).one()
    return tuple(row)


def same_database(source: Engine, target: Engine) -> bool:
    if source.dialect.name != target.dialect.name:
        return False
    if source.dialect.name == "sqlite":
        here, there = source.url.database or "", target.url.database or ""
        if os.path.exists(here) and os.path.exists(there):
            return os.path.samefile(here, there)
        return Path(here).resolve() == Path(there).resolve()
    with source.connect() as one, target.connect() as other:
        return _identity(one) == _identity(other)


def rows_held(connection: Connection) -> list[str]:
    """Warroom's tables that hold at least one row (those the database has: it may be new or migrated)."""
    present = set(inspect(connection).get_table_names())
    return [
        table.name
        for table in tables()
        if table.name in present and connection.execute(select(1).select_from(table).limit(1)).first()
    ]


def check_target_url(url: str) -> None:
    """CopyRefused when a SQLite target is not a database file (``sqlite://``, ``:memory:``): the copy would
    go into memory, be reported done and be gone with the command. As ``db backup`` refuses the same URLs."""
    if make_url(url).get_backend_name() == "sqlite" and sqlite_path(url) is None:
        raise CopyRefused(
            f"the target {url!r} is not a database file: the copy would be kept nowhere; give one, such as "
            "sqlite:///var/warroom-new.db"
        )


def check_target(source: Engine, target: Engine) -> None:
    """CopyRefused when the target is the source or holds any row of Warroom's; migrate.NewerSchema when a
    newer Warroom migrated it. An absent, empty or merely migrated database is taken (a fresh migration writes
    no row: 0042's number mark is made only when incidents exist)."""
    where = shown_location(target.url)
    if same_database(source, target):
        raise CopyRefused(f"the target database at {where} is the source: give another one with --to")
    migrate.pending(target)  # NewerSchema (a newer Warroom migrated it), before anything is written
    with target.connect() as connection:
        held = rows_held(connection)
    if held:
        raise CopyRefused(
            f"the target database at {where} already holds rows ({', '.join(held)}): copy only into an empty "
            "database (a new one, or one that warroom db upgrade made)"
        )


@contextmanager
def _snapshot(source: Engine) -> Iterator[Connection]:
    """One read transaction on the source: every table as it was at one moment, so a running server's later
    writes are not half-copied (an alert without the incident it opened)."""
    with source.connect() as connection, connection.begin():
        if connection.dialect.name == "postgresql":
            # The transaction's first statement: psycopg begins it here.
            connection.exec_driver_sql("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        yield connection


def _source_counters(connection: Connection) -> dict[str, int]:
    """The source's own next-number state per table, beyond its highest id where rows were deleted: SQLite's
    ``sqlite_sequence`` (AUTOINCREMENT tables), PostgreSQL's sequences."""
    if connection.dialect.name == "sqlite":
        if not inspect(connection).has_table("sqlite_sequence"):
            return {}
        return {
            name: int(seq) for name, seq in connection.execute(text("SELECT name, seq FROM sqlite_sequence"))
        }
    counters: dict[str, int] = {}
    for table, column in _numbered_columns():
        issued = connection.execute(
            text("SELECT pg_sequence_last_value(pg_get_serial_sequence(:table, :column))"),
            {"table": _quoted(connection, table), "column": column.name},
        ).scalar()
        if issued is not None:
            counters[table.name] = int(issued)
    return counters


def _numbered_columns() -> list[tuple[Table, Column[Any]]]:
    """Single integer primary keys: the columns a database numbers itself (SERIAL, rowid)."""
    found = []
    for table in tables():
        keys = list(table.primary_key.columns)
        if len(keys) == 1 and isinstance(keys[0].type, Integer) and keys[0].autoincrement is not False:
            found.append((table, keys[0]))
    return found


def _quoted(connection: Connection, table: Table) -> str:
    return connection.dialect.identifier_preparer.format_table(table)


def _copy_table(
    source: Connection, target: Connection, table: Table, total: int, progress: Progress | None
) -> int:
    """Stream one table in primary-key order, BATCH rows at a time; the number of rows written."""
    keys = list(table.primary_key.columns)
    # JSON columns: SQL NULL and JSON null both read as None; which one it was, so each is written back.
    json_columns = [column for column in table.columns if isinstance(column.type, JSON)]
    null_flags = [column.is_(None).label(f"_null_{column.key}") for column in json_columns]
    # A row referring to a later row of its own table (an alert inhibited by a newer one) has its reference
    # set once that row is in: foreign keys are checked as each row goes in.
    own_references = [
        element.parent for element in table.foreign_keys if len(keys) == 1 and element.column is keys[0]
    ]
    later: list[dict[str, Any]] = []
    statement = select(*table.columns, *null_flags).order_by(*keys)
    result = source.execution_options(yield_per=BATCH).execute(statement)
    insert = table.insert()
    written = 0
    for partition in result.partitions():
        rows: list[dict[str, Any]] = []
        for row in partition:
            values = row._mapping
            copied = {column.key: values[column] for column in table.columns}
            for column in json_columns:
                if values[f"_null_{column.key}"]:
                    copied[column.key] = null()
                elif copied[column.key] is None:
                    copied[column.key] = JSON.NULL
            for column in own_references:
                referred = copied[column.key]
                if referred is not None and referred >= copied[keys[0].key]:
                    later.append({"_key": copied[keys[0].key], "_referred": referred, "_column": column.key})
                    copied[column.key] = None
            rows.append(copied)
        target.execute(insert, rows)
        written += len(rows)
        if progress is not None:
            progress(table.name, written, total)
    for column in own_references:
        pending = [change for change in later if change["_column"] == column.key]
        if pending:
            target.execute(
                sql_update(table)
                .where(keys[0] == bindparam("_key"))
                .values({column.key: bindparam("_referred")}),
                pending,
            )
    return written


def _move_counters(target: Connection, source_dialect: str, counters: dict[str, int]) -> None:
    """Past the copied rows, whatever hands out numbers on the target: the next incident is INC-(highest+1),
    the next alert a new id. A SQLite source's counters are carried (numbers of deleted rows stay used); a
    PostgreSQL source's only to PostgreSQL, since a number a rolled-back transaction took there would read as
    a deleted incident in SQLite's audit. The sealed incident number mark counts too."""
    mark = target.execute(select(IncidentNumberMark.highest)).scalar()
    carried = counters if source_dialect == "sqlite" or target.dialect.name == "postgresql" else {}
    floors = dict(carried)
    if mark is not None:
        incidents = Incident.__tablename__
        floors[incidents] = max(floors.get(incidents, 0), int(mark))
    if target.dialect.name == "postgresql":
        for table, column in _numbered_columns():
            sequence = target.execute(
                text("SELECT pg_get_serial_sequence(:table, :column)"),
                {"table": _quoted(target, table), "column": column.name},
            ).scalar()
            if sequence is None:
                continue
            highest = max(
                int(target.execute(select(func.max(column))).scalar() or 0), floors.get(table.name, 0)
            )
            if highest:
                target.execute(
                    text("SELECT setval(CAST(:sequence AS regclass), :value, true)"),
                    {"sequence": sequence, "value": highest},
                )
            else:
                target.execute(
                    text("SELECT setval(CAST(:sequence AS regclass), 1, false)"), {"sequence": sequence}
                )
        return
    for table, column in _numbered_columns():
        if not table.dialect_options["sqlite"].get("autoincrement"):
            continue  # a plain rowid: SQLite hands out max(id) + 1 by itself
        highest = max(int(target.execute(select(func.max(column))).scalar() or 0), floors.get(table.name, 0))
        if not highest:
            continue
        moved = target.execute(
            text("UPDATE sqlite_sequence SET seq = :value WHERE name = :name"),
            {"value": highest, "name": table.name},
        )
        if moved.rowcount == 0:
            target.execute(
                text("INSERT INTO sqlite_sequence (name, seq) VALUES (:name, :value)"),
                {"value": highest, "name": table.name},
            )


def copy_rows(source: Engine, target: Engine, *, progress: Progress | None = None) -> list[TableCopied]:
    """Every row of the source into the (empty, migrated) target, in one transaction on it: all or none.
    Counts are checked per table before it commits. CopyFailed says where it failed and why."""
    where = shown_location(target.url)
    copied: list[TableCopied] = []
    current = "the source"
    try:
        with _snapshot(source) as reading, target.execution_options(write=True).begin() as writing:
            current = "the target"
            held = rows_held(writing)  # again, inside the transaction: nothing was written since the check
            if held:
                raise CopyRefused(f"the target database at {where} already holds rows ({', '.join(held)})")
            current = "the source"
            totals = {
                table.name: int(reading.execute(select(func.count()).select_from(table)).scalar() or 0)
                for table in tables()
            }
            counters = _source_counters(reading)
            for table in tables():
                current = f"table {table.name}"
                if progress is not None:
                    progress(table.name, 0, totals[table.name])
                written = _copy_table(reading, writing, table, totals[table.name], progress)
                landed = int(writing.execute(select(func.count()).select_from(table)).scalar() or 0)
                if not written == landed == totals[table.name]:
                    raise CopyFailed(
                        f"table {table.name}: {totals[table.name]} row(s) in the source, {written} read, "
                        f"{landed} in the target"
                    )
                copied.append(TableCopied(table.name, written))
            current = "the number sequences"
            _move_counters(writing, source.dialect.name, counters)
            current = "the commit"
    except (CopyRefused, CopyFailed):
        raise
    except SQLAlchemyError as exc:
        raise CopyFailed(
            f"the copy failed at {current}, nothing was written to {where}: {unavailable_reason(exc)}"
        ) from exc
    except (ValueError, LookupError, TypeError, OverflowError) as exc:
        # A value one engine stored that the other's types refuse (a naive datetime, an unknown enum value).
        raise CopyFailed(f"the copy failed at {current}, nothing was written to {where}: {exc}") from exc
    return copied


def audit_target(target: Engine, secret_key: bytes) -> incident_service.AuditReport:
    """``warroom audit verify``'s check on the target: every timeline chain, its seal and the incident
    numbers. Keyed with the server's secret key, which the target's server must keep."""
    from sqlalchemy.orm import Session

    from warroom.settings import timeline_key_of

    with Session(target) as session:
        return incident_service.audit(session, timeline_key_of(secret_key))
