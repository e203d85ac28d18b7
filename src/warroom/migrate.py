"""Run Alembic migrations from code (``warroom db upgrade`` and server start-up)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Engine, text

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS = Path(__file__).parent / "migrations"


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


def upgrade(engine: Engine) -> None:
    """Bring the schema to every head (domains may add branches of their own)."""
    from alembic import command

    config = alembic_config(str(engine.url.render_as_string(hide_password=False)))
    # A write transaction (BEGIN IMMEDIATE on SQLite) plus an advisory lock on PostgreSQL, so two
    # processes starting together do not both migrate.
    with engine.execution_options(write=True).begin() as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(7270001)"))
        config.attributes["connection"] = connection
        command.upgrade(config, "heads")


def pending(engine: Engine) -> bool:
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    config = alembic_config(str(engine.url))
    heads = set(ScriptDirectory.from_config(config).get_heads())
    with engine.connect() as connection:
        current = set(MigrationContext.configure(connection).get_current_heads())
    return current != heads
