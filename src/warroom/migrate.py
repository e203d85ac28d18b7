"""Run Alembic migrations from code (``warroom db upgrade`` and server start-up)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, text

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    # Alembic's options go through configparser, which reads "%" as interpolation: a URL-encoded password
    # ("p%40ss") or socket path must keep its "%" as written.
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def upgrade(engine: Engine) -> None:
    """Bring the schema to every head (domains may add branches of their own)."""
    config = alembic_config(str(engine.url.render_as_string(hide_password=False)))
    # A write transaction (BEGIN IMMEDIATE on SQLite) plus an advisory lock on PostgreSQL, so two
    # processes starting together do not both migrate.
    with engine.execution_options(write=True).begin() as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(7270001)"))
        config.attributes["connection"] = connection
        command.upgrade(config, "heads")


def pending(engine: Engine) -> bool:
    config = alembic_config(str(engine.url))
    heads = set(ScriptDirectory.from_config(config).get_heads())
    with engine.connect() as connection:
        current = set(MigrationContext.configure(connection).get_current_heads())
    return current != heads
