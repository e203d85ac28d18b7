"""A PostgreSQL URL as hosting services hand it out (``postgres://``, a bare ``postgresql://``) is read as
``postgresql+psycopg://``, psycopg 3 being the driver Warroom ships: ``postgres://`` was refused with
SQLAlchemy's "Can't load plugin: sqlalchemy.dialects:postgres". Passwords stay masked where it is printed."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, make_url, text
from typer.testing import CliRunner

from tests.conftest import POSTGRES_URL
from warroom.cli.main import app
from warroom.settings import Settings


@pytest.mark.parametrize(
    ("given", "read"),
    [
        ("postgres://u:pw@db.internal/warroom", "postgresql+psycopg://u:pw@db.internal/warroom"),
        (
            "postgresql://u@db.internal:6432/w?sslmode=require",
            "postgresql+psycopg://u@db.internal:6432/w?sslmode=require",
        ),
        ("POSTGRES://u@h/w", "postgresql+psycopg://u@h/w"),
        ("postgresql+psycopg://u@h/w", "postgresql+psycopg://u@h/w"),
        ("sqlite:////var/lib/warroom/postgres://x.db", "sqlite:////var/lib/warroom/postgres://x.db"),
    ],
)
def test_a_postgres_url_without_a_driver_is_read_with_psycopg(given: str, read: str) -> None:
    assert Settings(database_url=given).resolved_database_url == read


@pytest.mark.parametrize("scheme", ["postgres", "postgresql"])
def test_the_cli_takes_it_and_names_the_server_with_the_password_masked(
    scheme: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WARROOM_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("WARROOM_DATABASE_URL", f"{scheme}://warroom:hunter2@127.0.0.1:1/warroom")
    result = CliRunner().invoke(app, ["db", "upgrade"])
    assert result.exit_code == 1, (result.output, result.exception)
    # Port 1 refuses: the URL was taken and psycopg tried it, which is what a refusal of the URL is not.
    assert result.output.startswith(
        "error: cannot use the database at postgresql+psycopg://warroom:***@127.0.0.1:1/warroom: "
    ), result.output
    assert "hunter2" not in result.output and "plugin" not in result.output


@pytest.fixture
def postgres_database() -> Iterator[str]:
    """A database of its own on the test server, as ``postgresql+psycopg://``; dropped afterwards."""
    if not POSTGRES_URL:
        pytest.skip("WARROOM_TEST_POSTGRES_URL is not set")
    base = make_url(POSTGRES_URL)
    name = f"{base.database}_scheme"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    yield base.set(database=name).render_as_string(hide_password=False)
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def test_postgres_and_postgresql_urls_migrate_and_serve_a_real_database(
    postgres_database: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WARROOM_DATA_DIR", str(tmp_path))
    rest = postgres_database.split("://", 1)[1]
    first = CliRunner().invoke(app, ["db", "upgrade", "--database-url", f"postgres://{rest}"])
    assert first.exit_code == 0, (first.output, first.exception)
    assert "migrated the database from an empty database" in first.output
    monkeypatch.setenv("WARROOM_DATABASE_URL", f"postgresql://{rest}")
    again = CliRunner().invoke(app, ["db", "upgrade"])
    assert again.exit_code == 0 and "is up to date" in again.output, again.output
    made = CliRunner().invoke(app, ["token", "create", "--name", "ci", "--role", "viewer"])
    assert made.exit_code == 0, (made.output, made.exception)
