"""Jobs run on each process's own clock: a worker compares it with the database server's (PostgreSQL) when it
starts and then once a minute, warns when they differ by more than a couple of seconds, and exposes the
offset as ``warroom_clock_offset_seconds``."""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime, timedelta

import pytest
from prometheus_client import REGISTRY

from warroom.clock import clock
from warroom.context import AppContext
from warroom.jobs.worker import Worker, WorkerThread


def skewed(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "clock is" in r.getMessage()]


def test_a_worker_whose_clock_is_ahead_of_the_database_warns_and_says_by_how_much(
    context: AppContext, caplog: pytest.LogCaptureFixture
) -> None:
    if context.db.is_sqlite:
        pytest.skip("SQLite: one machine, one clock")
    caplog.set_level(logging.INFO, logger="warroom.jobs")
    clock.set(datetime.now(UTC) + timedelta(seconds=90))  # this machine's clock, 90 s fast
    worker = Worker(context, name="w-ahead")
    thread = WorkerThread(worker)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while not skewed(caplog) and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        thread.stop()
    lines = skewed(caplog)
    assert lines, [r.getMessage() for r in caplog.records]
    assert "clock is 90." in lines[0] or "clock is 89." in lines[0], lines[0]
    assert "ahead of the database server's" in lines[0] and "(NTP)" in lines[0]
    gauge = REGISTRY.get_sample_value("warroom_clock_offset_seconds")
    assert gauge is not None and 88 < gauge < 92

    # Once a minute, not every poll.
    checker = Worker(context, name="w-check")
    assert checker.check_clock() is not None
    assert checker.check_clock() is None

    # Back in step: one line says so, and no warning.
    clock.set(datetime.now(UTC))
    checker._clock_checked_at = None
    caplog.clear()
    offset = checker.check_clock()
    assert offset is not None and abs(offset) < 2
    assert any("agrees with the database's again" in r.getMessage() for r in caplog.records)
    assert not skewed(caplog)
    assert abs(REGISTRY.get_sample_value("warroom_clock_offset_seconds") or 99) < 2


def test_on_sqlite_there_is_nothing_to_compare(context: AppContext) -> None:
    if not context.db.is_sqlite:
        pytest.skip("PostgreSQL")
    assert Worker(context, name="w1").check_clock() is None
