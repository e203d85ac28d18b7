"""What follows a commit outside the database (metrics) runs only once the COMMIT itself succeeded."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from warroom.db import create_db_engine, on_commit


def test_an_action_runs_after_a_commit_and_never_after_a_commit_that_failed(tmp_path: Path) -> None:
    engine = create_db_engine(f"sqlite:///{tmp_path / 'x.db'}")
    ran: list[str] = []
    try:
        with engine.connect() as connection:
            connection.execute(text("PRAGMA foreign_keys = ON"))
            connection.execute(text("CREATE TABLE parent (id INTEGER PRIMARY KEY)"))
            connection.execute(
                text(
                    "CREATE TABLE child (id INTEGER PRIMARY KEY, parent_id INTEGER "
                    "REFERENCES parent (id) DEFERRABLE INITIALLY DEFERRED)"
                )
            )
            connection.commit()
            # The statement passes; its COMMIT fails (a deferred check, as a full disk fails a COMMIT).
            connection.execute(text("INSERT INTO child (parent_id) VALUES (7)"))
            on_commit(connection, lambda: ran.append("orphan"))
            with pytest.raises(IntegrityError):
                connection.commit()
            assert ran == []
            # SQLite keeps a transaction whose COMMIT failed open: end it on the driver's connection, which
            # keeps the info (and any action left in it) for the next transaction.
            driver = connection.connection.driver_connection
            assert driver is not None
            driver.rollback()
            connection.rollback()
            connection.execute(text("INSERT INTO parent (id) VALUES (7)"))
            on_commit(connection, lambda: ran.append("stored"))
            connection.commit()
            assert ran == ["stored"]  # the failed one's action is gone, not run with the next commit
            on_commit(connection, lambda: ran.append("rolled back"))
            connection.rollback()
            connection.commit()
            assert ran == ["stored"]
    finally:
        engine.dispose()
