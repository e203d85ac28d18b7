"""PostgreSQL: an alert delivery that another session's lock keeps from being stored is answered 503 within
about one ``WARROOM_POSTGRES_LOCK_TIMEOUT``, not two. The intake's writer tried a failed batch once more on a
new connection whatever the failure, so a lock wait that ran out was waited out a second time; only a lost
connection (a restart: ``tests/alerts/test_group_commit.py``) is worth that. Nothing of the refused delivery
is stored, and the sender's retry (Retry-After) stores it once the lock is gone."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Connection, create_engine, func, select, text

from tests.alerts.conftest import make_key
from tests.test_unavailable import assert_unavailable
from warroom.alerts.models import Alert
from warroom.app import create_app
from warroom.context import AppContext
from warroom.db import Database
from warroom.orgconfig import OrgConfig
from warroom.settings import Settings

LOCK_TIMEOUT = 1.0  # seconds: small, so that the test is quick

# What the holder takes: a table lock (a migration, `LOCK TABLE` in psql) that a new alert meets, or the
# row lock of an alert that a repeat of it must update.
TABLE_LOCK = "LOCK TABLE alerts IN ACCESS EXCLUSIVE MODE"
ROW_LOCK = "SELECT id FROM alerts WHERE dedup_key = 'disk' FOR UPDATE"


@pytest.fixture
def lock_timing_out(settings: Settings, org: OrgConfig) -> Iterator[AppContext]:
    if not settings.resolved_database_url.startswith("postgresql"):
        pytest.skip(
            "PostgreSQL's lock_timeout; on SQLite a delivery's wait is bounded by its busy timeout (the "
            "deadline tests in test_unavailable.py)"
        )
    settings = settings.model_copy(update={"postgres_lock_timeout": LOCK_TIMEOUT})
    db = Database.from_settings(settings)
    yield AppContext(settings=settings, db=db, org=org)
    db.dispose()


@pytest.fixture
def holder(lock_timing_out: AppContext) -> Iterator[Connection]:
    """A second connection, as a person in psql, to hold a lock in its open transaction."""
    engine = create_engine(lock_timing_out.settings.resolved_database_url)
    connection = engine.connect()
    try:
        yield connection
    finally:
        connection.close()
        engine.dispose()


def stored(context: AppContext) -> list[tuple[str, int]]:
    with context.db.read() as session:
        return [(key, times) for key, times in session.execute(select(Alert.dedup_key, Alert.occurrences))]


@pytest.mark.parametrize(("lock", "dedup_key"), [(TABLE_LOCK, "cpu"), (ROW_LOCK, "disk")])
def test_a_delivery_a_held_lock_keeps_out_gets_503_after_one_lock_timeout_not_two(
    lock_timing_out: AppContext,
    holder: Connection,
    caplog: pytest.LogCaptureFixture,
    lock: str,
    dedup_key: str,
) -> None:
    context = lock_timing_out
    url = f"/api/v1/alerts?key={make_key(context, 'generic')}"
    alert = {"summary": f"{dedup_key} on db-1", "dedup_key": dedup_key}
    caplog.set_level(logging.INFO, logger="warroom")
    with TestClient(create_app(context=context)) as api:
        # The writer's connection is open and the alert a repeat updates exists.
        first = api.post(url, json={"summary": "disk full on db-1", "dedup_key": "disk"})
        assert first.status_code == 202, first.text
        assert stored(context) == [("disk", 1)]
        holder.execute(text(lock))
        try:
            started = time.monotonic()
            refused = api.post(url, json=alert)
            took = time.monotonic() - started
        finally:
            holder.rollback()
        assert_unavailable(refused)  # with Retry-After: the sender tries again later
        # A bound on our own waiting (one lock timeout and slack), not a claim on speed: it was two.
        assert LOCK_TIMEOUT * 0.9 < took < LOCK_TIMEOUT * 1.8, round(took, 2)
        assert not [m for m in caplog.messages if "retrying it on a new connection" in m], caplog.messages
        assert stored(context) == [("disk", 1)]  # nothing of the refused delivery
        # The sender's retry, the lock gone, is stored.
        again = api.post(url, json=alert)
        assert again.status_code == 202, again.text
    expected = [("disk", 2)] if dedup_key == "disk" else [("cpu", 1), ("disk", 1)]
    assert sorted(stored(context)) == expected
    with context.db.read() as session:
        assert session.scalar(select(func.count()).select_from(Alert)) == len(expected)
