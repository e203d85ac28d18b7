"""Races PostgreSQL settles by aborting a transaction: recognised as such, so the caller runs it again."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from warroom.context import AppContext
from warroom.db import is_retryable


def test_a_deadlock_is_recognised_as_retryable(context: AppContext) -> None:
    if context.db.engine.dialect.name != "postgresql":
        pytest.skip("SQLite runs one write transaction at a time: no deadlocks")
    both_hold_one = threading.Barrier(2, timeout=10)
    failures: list[BaseException] = []

    def take(first: int, second: int) -> None:
        try:
            with context.db.engine.begin() as connection:
                connection.execute(text("SET LOCAL deadlock_timeout = '100ms'"))
                connection.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": first})
                both_hold_one.wait()
                connection.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": second})
        except DBAPIError as exc:
            failures.append(exc)

    threads = [threading.Thread(target=take, args=pair) for pair in ((901, 902), (902, 901))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert len(failures) == 1  # PostgreSQL aborted one of the two; the other committed
    assert is_retryable(failures[0])
    with pytest.raises(DBAPIError) as caught, context.db.engine.begin() as connection:
        connection.execute(text("SELECT 1/0"))
    assert not is_retryable(caught.value)
