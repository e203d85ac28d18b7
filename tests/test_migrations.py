"""The migrations build exactly the schema the models describe, on both databases."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from warroom import migrate
from warroom.context import AppContext
from warroom.db import Database
from warroom.migrate import alembic_config
from warroom.models import metadata


def test_one_head() -> None:
    assert ScriptDirectory.from_config(alembic_config("sqlite://")).get_heads() == ["0043"]


def test_models_match_migrations(context: AppContext) -> None:
    with context.db.engine.connect() as connection:
        migration = MigrationContext.configure(connection, opts={"compare_type": True})
        differences = compare_metadata(migration, metadata)
    assert differences == []


def test_alerts_leave_room_for_updates_in_place_on_postgresql(context: AppContext) -> None:
    # Repeat notifications rewrite an alert's row; free space on its page keeps the new version there.
    with context.db.engine.connect() as connection:
        if connection.dialect.name != "postgresql":
            pytest.skip("fillfactor is a PostgreSQL setting")
        options = connection.exec_driver_sql(
            "SELECT reloptions FROM pg_class WHERE relname = 'alerts'"
        ).scalar()
    assert options == ["fillfactor=70"]


def test_a_url_encoded_password_or_socket_path_reaches_alembic_as_written() -> None:
    """A URL carries "@" in a password as "%40"; configparser took it for interpolation and serve died."""
    url = "postgresql+psycopg://warroom:p%40ss%25word@/warroom?host=%2Fvar%2Frun%2Fpostgresql"
    assert alembic_config(url).get_main_option("sqlalchemy.url") == url


def test_a_migration_at_start_is_logged_in_one_line(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """The server migrated the database on start silently; now it says from what to what (and nothing when
    there was nothing to do)."""
    from alembic import command

    url = f"sqlite:///{tmp_path / 'warroom.db'}"
    command.upgrade(alembic_config(url), "0033")
    database = Database(url)
    caplog.set_level(logging.INFO, logger="warroom")
    try:
        migrate.upgrade(database.engine)
        [head] = migrate.heads()  # the newest revision: the test does not change with each migration
        assert [r.getMessage() for r in caplog.records if r.name == "warroom.migrate"] == [
            f"migrated the database from 0033 to {head}"
        ]
        caplog.clear()
        migrate.upgrade(database.engine)
        assert [r for r in caplog.records if r.name == "warroom.migrate"] == []
    finally:
        database.dispose()
