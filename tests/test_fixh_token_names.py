"""Two active API tokens could share a name on PostgreSQL (QA): parallel creations all passed the check
before any inserted. The database holds it too now (partial unique index, migration 0042), and the loser
gets the same 409. Real SQLite files and PostgreSQL."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

import pytest
from alembic import command
from fastapi.testclient import TestClient
from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError

from warroom import migrate
from warroom.auth import service
from warroom.auth.models import ApiToken, Role
from warroom.context import AppContext
from warroom.errors import Conflict


def test_parallel_creations_of_one_name_give_one_token(
    api: TestClient, admin: dict[str, str], context: AppContext
) -> None:
    def create(_: int) -> int:
        return api.post(
            "/api/v1/tokens", json={"name": "pgrace3", "role": "responder"}, headers=admin
        ).status_code

    with ThreadPoolExecutor(10) as pool:
        codes = list(pool.map(create, range(10)))
    assert codes.count(201) == 1 and codes.count(409) == 9, codes
    with context.db.read() as session:
        assert len(session.scalars(select(ApiToken).where(ApiToken.name == "pgrace3")).all()) == 1


def test_the_check_losing_the_race_still_answers_409(
    context: AppContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The check saw no token of the name (another request's was not committed yet): the index refuses the
    insert, and the caller gets the Conflict the check gives, its transaction usable."""
    with context.db.write() as session:
        service.create_token(session, name="twin", role=Role.responder)
    checked = service._ensure_name_free
    calls: list[str] = []

    def blind_first(session: Any, name: str) -> None:
        calls.append(name)
        if len(calls) > 1:
            checked(session, name)

    monkeypatch.setattr(service, "_ensure_name_free", blind_first)
    with context.db.write() as session:
        with pytest.raises(Conflict) as caught:
            service.create_token(session, name="twin", role=Role.responder)
        assert "already named 'twin'" in str(caught.value)
        assert session.scalar(select(ApiToken.id).where(ApiToken.name == "twin")) is not None  # still usable
    assert calls == ["twin", "twin"]


def test_the_database_refuses_a_second_active_token_of_a_name_but_not_a_revoked_one(
    context: AppContext,
) -> None:
    row = {"role": "responder", "prefix": "wr_x"}
    with context.db.write() as session:
        session.execute(insert(ApiToken).values(name="dup", token_hash="a" * 64, **row))
        session.execute(
            insert(ApiToken).values(name="dup", token_hash="b" * 64, revoked_at=datetime.now(UTC), **row)
        )
    with pytest.raises(IntegrityError), context.db.write() as session:
        session.execute(insert(ApiToken).values(name="dup", token_hash="c" * 64, **row))


def test_the_migration_renames_active_duplicates_and_leaves_revoked_ones(context: AppContext) -> None:
    engine = context.db.engine
    config = migrate.alembic_config(engine.url.render_as_string(hide_password=False))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, "0041")
        tokens = ApiToken.__table__
        row = {"role": "responder", "prefix": "wr_x"}
        connection.execute(
            insert(tokens),
            [
                {"name": "ops", "token_hash": "1" * 64, **row},
                {"name": "ops", "token_hash": "2" * 64, **row},
                {"name": "ops (2)", "token_hash": "3" * 64, **row},  # the next free number is 3
                {"name": "ops", "token_hash": "4" * 64, **row},
            ],
        )
        # (rows of their own: an executemany takes its columns from the first row)
        connection.execute(
            insert(tokens).values(name="old", token_hash="5" * 64, revoked_at=datetime.now(UTC), **row)
        )
        connection.execute(insert(tokens).values(name="old", token_hash="6" * 64, **row))
    migrate.upgrade(engine, timeline_key=lambda: context.settings.timeline_key)
    with context.db.read() as session:
        names = session.execute(select(ApiToken.token_hash, ApiToken.name).order_by(ApiToken.id)).all()
    assert [name for _, name in names] == ["ops", "ops (3)", "ops (2)", "ops (4)", "old", "old"]
