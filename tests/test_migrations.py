"""The migrations build exactly the schema the models describe, on both databases."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from warroom.context import AppContext
from warroom.migrate import alembic_config
from warroom.models import metadata


def test_one_head() -> None:
    assert ScriptDirectory.from_config(alembic_config("sqlite://")).get_heads() == ["0008"]


def test_models_match_migrations(context: AppContext) -> None:
    with context.db.engine.connect() as connection:
        migration = MigrationContext.configure(connection, opts={"compare_type": True})
        differences = compare_metadata(migration, metadata)
    assert differences == []
